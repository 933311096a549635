//! A story's canonical link and its id: the same article reached through `http://`, a `www.`
//! host, a tracking parameter or a fragment is one link, hence one id.

use sha2::{Digest, Sha256};
use tradeflow_core::news::normalised_title;

/// Query parameters that only track where a reader came from; dropped from links. Prefixes
/// end with `_`.
const TRACKING: [&str; 12] =
    ["utm_", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "ref", "ref_src", "igshid", "_hsenc", "_hsmi"];

fn tracking(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    TRACKING.iter().any(|t| if t.ends_with('_') && t.len() > 1 { name.starts_with(t) } else { name == *t })
}

/// `link` made canonical: `https`, no `www.`, no fragment, no tracking parameters, the
/// remaining parameters sorted, no trailing `/` on a path. `None` for anything that is not an
/// absolute http(s) URL with a host (a feed's relative or `javascript:` link).
pub fn canonical_link(link: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    if let Some(bare) = host.strip_prefix("www.")
        && !bare.is_empty()
    {
        url.set_host(Some(bare)).ok()?;
    }
    // Same article either way; feeds mix both.
    url.set_scheme("https").ok()?;
    if url.port() == Some(443) || url.port() == Some(80) {
        url.set_port(None).ok()?;
    }
    url.set_fragment(None);
    let mut kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| !tracking(k)).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    kept.sort();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = url.path().to_string();
    if path.len() > 1 && path.ends_with('/') {
        url.set_path(path.trim_end_matches('/'));
    }
    Some(url.to_string())
}

/// `news:<32 hex digits>`: the first 16 bytes of SHA-256 of the canonical link, or of the
/// normalised title when there is no link.
pub fn story_id(canonical_link: &str, title: &str) -> String {
    let basis =
        if canonical_link.is_empty() { format!("title:{}", normalised_title(title)) } else { canonical_link.into() };
    let digest = Sha256::digest(basis.as_bytes());
    format!("news:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_article_under_several_spellings_is_one_link() {
        let canonical = "https://example.com/markets/btc-tops-100k";
        for spelling in [
            "https://example.com/markets/btc-tops-100k",
            "http://www.example.com/markets/btc-tops-100k/",
            "https://EXAMPLE.com:443/markets/btc-tops-100k?utm_source=rss&utm_medium=feed#comments",
            " https://example.com/markets/btc-tops-100k?fbclid=abc ",
        ] {
            assert_eq!(canonical_link(spelling).as_deref(), Some(canonical), "{spelling}");
        }
        assert_eq!(
            canonical_link("https://example.com/a?b=2&utm_campaign=x&a=1").as_deref(),
            Some("https://example.com/a?a=1&b=2")
        );
        assert_eq!(canonical_link("https://example.com/").as_deref(), Some("https://example.com/"));
        for bad in ["", "/relative/path", "javascript:alert(1)", "ftp://example.com/a", "mailto:a@b.c"] {
            assert_eq!(canonical_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_follow_the_link_or_else_the_title() {
        let a = story_id("https://example.com/a", "Title");
        assert_eq!(a.len(), "news:".len() + 32);
        assert!(a.starts_with("news:") && a[5..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_eq!(a, story_id("https://example.com/a", "Another title"));
        assert_ne!(a, story_id("https://example.com/b", "Title"));
        assert_eq!(story_id("", "Bitcoin tops $100k!"), story_id("", "BITCOIN TOPS 100K"));
        assert_ne!(story_id("", "Bitcoin tops $100k!"), story_id("", "Ether tops $5k"));
    }
}
