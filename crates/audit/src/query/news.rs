//! Read queries for the edge's news route: stories newest first, of one symbol or all.

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Cell, Kind, NewsRow, Val};
use crate::store::AuditStore;

const COLUMNS: &str = "id, source, title, title_key, link, summary, symbols, published_at, fetched_at";
const KINDS: [Kind; 9] =
    [Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Int];

/// Which stories.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewsFilter<'a> {
    /// Stories tagged with this symbol; [`MARKET`](tradeflow_core::news::MARKET): stories
    /// tagged with none. `None`: every story.
    pub symbol: Option<&'a str>,
    /// Published at or after this time (epoch ms).
    pub since: Option<i64>,
}

fn news_of(cells: Vec<Cell>) -> Result<NewsRow, AuditError> {
    let mut c = Cells::new("news", cells);
    Ok(NewsRow {
        id: c.text()?,
        source: c.text()?,
        title: c.text()?,
        title_key: c.text()?,
        link: c.text()?,
        summary: c.text()?,
        symbols: c.text()?,
        published_at: c.int()?,
        fetched_at: c.int()?,
    })
}

/// `symbol` as a LIKE pattern matching it between the commas of `',' || symbols || ','`, its
/// own `%`, `_` and `\` escaped (a symbol may hold `_`).
fn symbol_pattern(symbol: &str) -> String {
    let mut p = String::from("%,");
    for ch in symbol.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push_str(",%");
    p
}

impl AuditStore {
    /// The newest `limit` stories that pass `filter`, newest published first.
    pub async fn news(&self, filter: NewsFilter<'_>, limit: i64) -> Result<Vec<NewsRow>, AuditError> {
        let mut conditions = vec!["published_at >= $1".to_string()];
        let since = filter.since.unwrap_or(i64::MIN);
        let pattern;
        let mut binds = vec![Val::Int(since)];
        match filter.symbol {
            Some(tradeflow_core::news::MARKET) => conditions.push("symbols = ''".into()),
            Some(symbol) => {
                pattern = symbol_pattern(symbol);
                binds.push(Val::Text(&pattern));
                conditions.push(format!("(',' || symbols || ',') LIKE ${} ESCAPE '\\'", binds.len()));
            }
            None => {}
        }
        binds.push(Val::Int(limit.max(0)));
        let sql = format!(
            "SELECT {COLUMNS} FROM news WHERE {} ORDER BY published_at DESC, id DESC LIMIT ${}",
            conditions.join(" AND "),
            binds.len()
        );
        let rows = self.select("news", &sql, &binds, &KINDS).await?;
        rows.into_iter().map(news_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::symbol_pattern;

    #[test]
    fn like_wildcards_in_a_symbol_are_escaped() {
        assert_eq!(symbol_pattern("BTCUSDT"), "%,BTCUSDT,%");
        assert_eq!(symbol_pattern("BTC_USD%"), "%,BTC\\_USD\\%,%");
    }
}
