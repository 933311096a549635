//! Text that goes into the page: escaping, numbers with separators, the statistics in their
//! JSON order.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// `s` safe as HTML text and inside a quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `x` with `decimals` places and thousands separated by commas (`-1,234.50`); `—` when not
/// finite.
pub fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(s.len() + s.len() / 3 + 1);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if let Some(f) = frac {
        grouped.push('.');
        grouped.push_str(f);
    }
    // No "-0.00": a value that rounds to zero is shown unsigned.
    let zero = grouped.chars().all(|c| matches!(c, '0' | '.' | ','));
    if x < 0.0 && !zero { format!("-{grouped}") } else { grouped }
}

/// Places a statistic is shown with: money and percentages to the cent, counts whole, ratios
/// to three.
pub fn stat_decimals(key: &str) -> usize {
    if key.starts_with('#') {
        0
    } else if key.ends_with("[%]") || key.ends_with("[$]") {
        2
    } else {
        3
    }
}

/// A statistic as shown: numbers formatted ([`stat_decimals`]), `null` as `—`, text as is.
pub fn stat_text(key: &str, value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |x| num(x, stat_decimals(key))),
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// A JSON object's entries in the order they are written (serde_json's `Map` sorts its keys
/// unless its `preserve_order` feature is on; the statistics read best in backtesting.py's
/// order).
pub struct Ordered(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// The entries of `value`'s JSON object, in field order (empty when it is not an object).
pub fn ordered_fields(value: &impl serde::Serialize) -> Vec<(String, Value)> {
    serde_json::to_string(value)
        .ok()
        .and_then(|s| serde_json::from_str::<Ordered>(&s).ok())
        .map_or_else(Vec::new, |o| o.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("plain ▲"), "plain ▲");
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(num(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(num(-1_234.5, 2), "-1,234.50");
        assert_eq!(num(999.999, 2), "1,000.00");
        assert_eq!(num(12.0, 0), "12");
        assert_eq!(num(-0.001, 2), "0.00");
        assert_eq!(num(f64::NAN, 2), "—");
        assert_eq!(num(123.0, 3), "123.000");
    }

    #[test]
    fn statistics_keep_their_order_and_show_by_kind() {
        #[derive(serde::Serialize)]
        struct S {
            #[serde(rename = "Zeta [%]")]
            z: f64,
            #[serde(rename = "# Trades")]
            n: usize,
            #[serde(rename = "Alpha")]
            a: Option<f64>,
        }
        let fields = ordered_fields(&S { z: 12.346, n: 545, a: None });
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["Zeta [%]", "# Trades", "Alpha"]);
        let shown: Vec<String> = fields.iter().map(|(k, v)| stat_text(k, v)).collect();
        assert_eq!(shown, ["12.35", "545", "—"]);
        assert_eq!(stat_text("Sharpe Ratio", &serde_json::json!(0.51234)), "0.512");
        assert_eq!(stat_text("Start", &serde_json::json!("2017-07-01T11:00:00")), "2017-07-01T11:00:00");
    }
}
