//! Feed summaries as plain text: RSS descriptions are often HTML (a paragraph, an image, a
//! "read more" link). Tags are dropped, the common entities decoded; what reaches a prompt or
//! the API is text, never markup.

/// `html` without tags, comments, scripts or styles, with `&amp;`-style entities decoded and
/// whitespace runs made single spaces.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if after.starts_with("<!--") {
            after.find("-->").map(|i| i + 3)
        } else if lower.starts_with("<script") || lower.starts_with("<style") {
            let close = if lower.starts_with("<script") { "</script>" } else { "</style>" };
            after.to_ascii_lowercase().find(close).map(|i| i + close.len())
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(n) => {
                // A tag separates words ("<p>a</p><p>b</p>" is "a b").
                out.push(' ');
                rest = &after[n..];
            }
            // An unclosed `<` is text ("a < b").
            None => {
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    decode_entities(&out).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let decoded = after.get(1..12).and_then(|window| {
            let semi = window.find(';')?;
            let name = &window[..semi];
            let ch = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" | "#39" => '\'',
                "nbsp" => ' ',
                "ndash" => '–',
                "mdash" => '—',
                "hellip" => '…',
                "rsquo" => '’',
                "lsquo" => '‘',
                "rdquo" => '”',
                "ldquo" => '“',
                _ => {
                    let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => name.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((ch, semi + 2))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text() {
        assert_eq!(
            plain_text("<p>Bitcoin <b>tops</b> $100k</p><p>Read&nbsp;more &amp; more</p><img src=\"x.png\"/>"),
            "Bitcoin tops $100k Read more & more"
        );
        assert_eq!(plain_text("a < b &lt;c&gt; &#8217; &#x2019; &bogus; & done"), "a < b <c> ’ ’ &bogus; & done");
        assert_eq!(plain_text("x<!-- hidden -->y<script>alert('z')</script><STYLE>p{}</STYLE>w"), "x y w");
        assert_eq!(plain_text("  plain\n\n text  "), "plain text");
    }
}
