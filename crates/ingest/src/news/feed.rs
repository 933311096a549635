//! RSS and Atom feeds (and JSON Feed), read with `feed-rs`: each entry becomes a [`Story`].

use feed_rs::model::{Entry, Link};

use super::Story;
use super::text::plain_text;

/// The stories of a feed document. `base` is the feed's URL, against which relative links are
/// resolved. An entry without a title is left out (there is nothing to show or deduplicate).
pub fn parse_feed(bytes: &[u8], base: &str) -> Result<Vec<Story>, String> {
    let parser = feed_rs::parser::Builder::new().base_uri(Some(base)).build();
    let feed = parser.parse(bytes).map_err(|e| format!("not an RSS, Atom or JSON feed: {e}"))?;
    Ok(feed.entries.iter().filter_map(story).collect())
}

fn story(e: &Entry) -> Option<Story> {
    let title = plain_text(&e.title.as_ref()?.content);
    if title.is_empty() {
        return None;
    }
    let summary = e
        .summary
        .as_ref()
        .map(|s| s.content.as_str())
        .or_else(|| e.content.as_ref().and_then(|c| c.body.as_deref()))
        .map(plain_text)
        .unwrap_or_default();
    Some(Story {
        title,
        link: link(e).unwrap_or_default(),
        summary,
        published_at: e.published.or(e.updated).map(|t| t.timestamp_millis()),
        codes: Vec::new(),
    })
}

/// The article's address: the `alternate` link (Atom) or the only link (RSS `<link>`), else an
/// RSS `<guid>` that is a URL.
fn link(e: &Entry) -> Option<String> {
    let alternate = |l: &&Link| l.rel.as_deref().is_none_or(|r| r == "alternate");
    e.links
        .iter()
        .find(alternate)
        .or_else(|| e.links.first())
        .map(|l| l.href.clone())
        .or_else(|| e.id.starts_with("http").then(|| e.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_atom_entries_become_stories() {
        let rss = br#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>T</title><link>https://example.com/</link><description>d</description>
<item><title>Bitcoin &amp; friends</title><link>https://example.com/a?utm_source=rss</link>
<description><![CDATA[<p>Prices <b>up</b></p>]]></description><pubDate>Sun, 06 Dec 2026 10:00:00 GMT</pubDate></item>
<item><title></title><link>https://example.com/untitled</link></item>
<item><title>No link</title><guid isPermaLink="true">https://example.com/guid</guid></item>
</channel></rss>"#;
        let stories = parse_feed(rss, "https://example.com/feed.xml").unwrap();
        assert_eq!(stories.len(), 2, "{stories:?}");
        assert_eq!(stories[0].title, "Bitcoin & friends");
        assert_eq!(stories[0].link, "https://example.com/a?utm_source=rss");
        assert_eq!(stories[0].summary, "Prices up");
        assert_eq!(stories[0].published_at, Some(1_796_551_200_000));
        assert_eq!(stories[1].link, "https://example.com/guid");
        assert_eq!(stories[1].published_at, None);

        let atom = br#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2026-12-06T09:00:00Z</updated>
<entry><title>Ether upgrade ships</title><id>urn:e1</id><updated>2026-12-06T09:00:00Z</updated>
<link rel="alternate" href="/posts/1"/><summary>Short</summary></entry></feed>"#;
        let stories = parse_feed(atom, "https://news.example.org/atom.xml").unwrap();
        assert_eq!(stories.len(), 1);
        assert_eq!(stories[0].link, "https://news.example.org/posts/1");
        assert_eq!(stories[0].published_at, Some(1_796_547_600_000));

        assert!(parse_feed(b"<html>not a feed</html>", "https://x.test/").unwrap_err().starts_with("not an RSS"));
    }
}
