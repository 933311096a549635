//! A download job's parameters as data (`POST /api/v1/tasks/download`, `POST /data/download`):
//! what `tradeflow data download --binance SYMBOL:INTERVAL --from DATE [--to DATE]` says, checked
//! into a [`DownloadRequest`] with every problem named.

use serde::{Deserialize, Serialize};
use tradeflow_core::market::Interval;

use crate::download::DownloadRequest;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadParams {
    /// Binance spot symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Bar interval, e.g. `1h`.
    pub interval: String,
    /// `YYYY-MM-DD` (UTC) or epoch ms: the first bar.
    pub from: String,
    /// `YYYY-MM-DD` (UTC) or epoch ms, exclusive; absent: up to now.
    #[serde(default)]
    pub to: Option<String>,
}

impl DownloadParams {
    /// From JSON, every problem named by its field.
    pub fn from_json(json: &serde_json::Value) -> Result<DownloadParams, Vec<String>> {
        serde_json::from_value(json.clone()).map_err(|e| vec![format!("params: {e}")])
    }

    pub fn request(&self) -> Result<DownloadRequest, Vec<String>> {
        let mut problems = Vec::new();
        let symbol = self.symbol.trim().to_uppercase();
        if symbol.is_empty() || symbol.len() > 20 || !symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!("symbol {:?}: expected a Binance spot symbol such as BTCUSDT", self.symbol));
        }
        let interval = self.interval.parse::<Interval>().map_err(|e| problems.push(format!("interval: {e}"))).ok();
        let time = |field: &str, s: &str, problems: &mut Vec<String>| {
            tradeflow_core::time::parse_day_or_ms(s).map_err(|e| problems.push(format!("{field}: {e}"))).ok()
        };
        let from = time("from", &self.from, &mut problems);
        let to = self.to.as_deref().and_then(|t| time("to", t, &mut problems));
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            problems.push(format!("from {f} is not before to {t}: the range is empty"));
        }
        match (interval, from) {
            (Some(interval), Some(from)) if problems.is_empty() => Ok(DownloadRequest { symbol, interval, from, to }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let p = DownloadParams::from_json(&serde_json::json!({
            "symbol": "BTC/USDT", "interval": "7x", "from": "2024-13-01", "to": "yesterday"
        }))
        .unwrap();
        let problems = p.request().unwrap_err().join("\n");
        for field in ["symbol", "interval:", "from:", "to:"] {
            assert!(problems.contains(field), "{field} missing: {problems}");
        }
        assert!(
            DownloadParams::from_json(&serde_json::json!({"symbol": "X", "interval": "1h", "from": "1", "bogus": 1}))
                .unwrap_err()[0]
                .contains("bogus")
        );
        let ok =
            DownloadParams { symbol: "btcusdt".into(), interval: "1h".into(), from: "2024-01-01".into(), to: None };
        let r = ok.request().unwrap();
        assert_eq!((r.symbol.as_str(), r.from, r.to), ("BTCUSDT", 1_704_067_200_000, None));
    }
}
