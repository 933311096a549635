//! CryptoPanic's posts endpoint, followed as its developer API documents it (read 2026-12-06):
//! `GET {base_url}/posts/?auth_token=KEY&public=true&kind=news[&currencies=BTC,ETH]` answers
//! `{"next", "previous", "results": [post, ...]}`, newest first, each post with `id`, `kind`,
//! `title`, `published_at` (RFC 3339), optionally `description`, `url` / `original_url` (the
//! article), `slug`, and its currency tags as `currencies` (older plans) or `instruments`
//! (`[{"code": "BTC", ...}]`). The base URL defaults to the developer API v2
//! (`https://cryptopanic.com/api/developer/v2`); the older `https://cryptopanic.com/api/v1`
//! answers the same shape.
//!
//! The key is read from the environment variable the configuration names and sent only as
//! the `auth_token` parameter; it never reaches a log or an error (request errors are reported
//! without their URL).

use std::fmt;

use serde::Deserialize;

use super::Story;
use super::text::plain_text;

/// The posts API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://cryptopanic.com/api/developer/v2";

/// A CryptoPanic key; prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The CryptoPanic source.
#[derive(Debug, Clone, PartialEq)]
pub struct CryptoPanicConfig {
    /// Default [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The environment variable the key came from (for messages).
    pub key_env: String,
    pub token: AuthToken,
    /// Currency codes to ask for (`BTC,ETH`); empty: every post.
    pub currencies: Vec<String>,
}

/// The request URL (with the key: never to be logged).
pub fn posts_url(config: &CryptoPanicConfig) -> Result<reqwest::Url, String> {
    let base = config.base_url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/posts/"))
        .map_err(|e| format!("cryptopanic base_url {:?} is not a URL: {e}", config.base_url))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("auth_token", &config.token.0);
        q.append_pair("public", "true");
        q.append_pair("kind", "news");
        if !config.currencies.is_empty() {
            q.append_pair("currencies", &config.currencies.join(","));
        }
    }
    Ok(url)
}

#[derive(Deserialize)]
struct Page {
    results: Vec<Post>,
}

#[derive(Deserialize)]
struct Post {
    id: Option<serde_json::Value>,
    title: Option<String>,
    published_at: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    original_url: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    currencies: Option<Vec<Code>>,
    #[serde(default)]
    instruments: Option<Vec<Code>>,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

/// The stories of a posts page. A post without a title is left out; a `published_at` that
/// does not parse is left unset (the fetch time stands in).
pub fn parse_posts(bytes: &[u8]) -> Result<Vec<Story>, String> {
    let page: Page = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a CryptoPanic posts page ({{\"results\": [...]}}): {e}"))?;
    Ok(page
        .results
        .into_iter()
        .filter_map(|p| {
            let title = plain_text(p.title.as_deref()?);
            if title.is_empty() {
                return None;
            }
            let id = p.id.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
            let own_page = match (&id, &p.slug) {
                (Some(id), Some(slug)) => Some(format!("https://cryptopanic.com/news/{id}/{slug}")),
                _ => None,
            };
            let link = p.original_url.filter(|u| !u.is_empty()).or(p.url.filter(|u| !u.is_empty())).or(own_page);
            let codes = p.currencies.into_iter().chain(p.instruments).flatten().map(|c| c.code).collect();
            Some(Story {
                title,
                link: link.unwrap_or_default(),
                summary: p.description.as_deref().map(plain_text).unwrap_or_default(),
                published_at: p
                    .published_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_millis()),
                codes,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_key_and_filters() {
        let config = CryptoPanicConfig {
            base_url: "http://127.0.0.1:9/api/developer/v2/".into(),
            key_env: "CRYPTOPANIC_KEY".into(),
            token: AuthToken::new("secret-token"),
            currencies: vec!["BTC".into(), "ETH".into()],
        };
        assert_eq!(
            posts_url(&config).unwrap().as_str(),
            "http://127.0.0.1:9/api/developer/v2/posts/?auth_token=secret-token&public=true&kind=news&currencies=BTC%2CETH"
        );
        assert!(!format!("{config:?}").contains("secret-token"));
    }

    #[test]
    fn posts_become_stories() {
        let body = br#"{"next": null, "previous": null, "results": [
            {"id": 101, "kind": "news", "title": "Bitcoin ETF inflows hit record", "slug": "Bitcoin-ETF-inflows",
             "published_at": "2026-12-06T10:00:00Z", "description": "<p>Funds <b>bought</b></p>",
             "original_url": "https://example.com/etf?utm_source=cryptopanic",
             "instruments": [{"code": "BTC", "title": "Bitcoin", "slug": "bitcoin"}]},
            {"id": 102, "kind": "news", "title": "Exchange lists new token", "slug": "Exchange-lists",
             "published_at": "not a time", "currencies": [{"code": "SOL", "title": "Solana"}]},
            {"id": 103, "kind": "news", "title": ""}
        ]}"#;
        let stories = parse_posts(body).unwrap();
        assert_eq!(stories.len(), 2);
        assert_eq!(stories[0].link, "https://example.com/etf?utm_source=cryptopanic");
        assert_eq!(stories[0].summary, "Funds bought");
        assert_eq!(stories[0].published_at, Some(1_796_551_200_000));
        assert_eq!(stories[0].codes, ["BTC"]);
        assert_eq!(stories[1].link, "https://cryptopanic.com/news/102/Exchange-lists");
        assert_eq!((stories[1].published_at, stories[1].codes.clone()), (None, vec!["SOL".to_string()]));
        assert!(
            parse_posts(b"{\"detail\": \"Invalid token\"}").unwrap_err().starts_with("not a CryptoPanic posts page")
        );
    }
}
