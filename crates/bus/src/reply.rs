//! Parsing of raw stream replies.
//!
//! The typed reply structs of redis-rs cannot represent a pending entry whose body was trimmed
//! away (XREADGROUP returns `[id, nil]` for it), so the consumer reads `redis::Value` and parses
//! it here, with errors instead of panics on any shape it does not expect.

use redis::Value;

use crate::error::BusError;

/// A stream entry id, `ms-seq`. Ordered numerically, not as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry as Redis returned it. `fields` is `None` when the entry was deleted or trimmed
/// from the stream while still pending.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    pub id: EntryId,
    pub fields: Option<Vec<(String, Vec<u8>)>>,
}

impl RawEntry {
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields.as_ref()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    pub fn field_names(&self) -> String {
        match &self.fields {
            None => String::new(),
            Some(f) => f.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
        }
    }
}

fn bad(op: &'static str, reason: impl Into<String>) -> BusError {
    BusError::Reply { op, reason: reason.into() }
}

pub(crate) fn as_bytes<'v>(op: &'static str, v: &'v Value) -> Result<&'v [u8], BusError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        other => Err(bad(op, format!("expected a string, got {other:?}"))),
    }
}

pub(crate) fn as_string(op: &'static str, v: &Value) -> Result<String, BusError> {
    Ok(String::from_utf8_lossy(as_bytes(op, v)?).into_owned())
}

pub(crate) fn as_int(op: &'static str, v: &Value) -> Result<i64, BusError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(op, "expected an integer string")),
        Value::Nil => Ok(0),
        other => Err(bad(op, format!("expected an integer, got {other:?}"))),
    }
}

pub(crate) fn as_array<'v>(op: &'static str, v: &'v Value) -> Result<&'v [Value], BusError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(&[]),
        other => Err(bad(op, format!("expected an array, got {other:?}"))),
    }
}

pub(crate) fn entry_id(op: &'static str, v: &Value) -> Result<EntryId, BusError> {
    let s = as_string(op, v)?;
    EntryId::parse(&s).ok_or_else(|| bad(op, format!("{s:?} is not a stream entry id")))
}

/// `[id, [f1, v1, ...] | nil]`, taken apart without copying the field values.
fn into_entry(op: &'static str, v: Value) -> Result<RawEntry, BusError> {
    let parts = into_array(op, v)?;
    let Ok::<[Value; 2], _>([id, body]) = parts.try_into() else {
        return Err(bad(op, "entry does not have 2 parts (id and fields)"));
    };
    let id = entry_id(op, &id)?;
    let fields = match body {
        Value::Nil => None,
        body => {
            let flat = into_array(op, body)?;
            if flat.len() % 2 != 0 {
                return Err(bad(op, "entry has an odd number of field items"));
            }
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut items = flat.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                let value = match value {
                    Value::BulkString(b) => b,
                    other => as_bytes(op, &other)?.to_vec(),
                };
                fields.push((as_string(op, &name)?, value));
            }
            Some(fields)
        }
    };
    Ok(RawEntry { id, fields })
}

fn into_array(op: &'static str, v: Value) -> Result<Vec<Value>, BusError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad(op, format!("expected an array, got {other:?}"))),
    }
}

/// A list of entries (XRANGE, XCLAIM, ...), moved out of the reply: the read paths use this.
pub(crate) fn into_entries(op: &'static str, v: Value) -> Result<Vec<RawEntry>, BusError> {
    into_array(op, v)?.into_iter().map(|e| into_entry(op, e)).collect()
}

/// A list of entries from a borrowed reply (inspection paths; it copies the reply).
pub fn entries(op: &'static str, v: &Value) -> Result<Vec<RawEntry>, BusError> {
    into_entries(op, v.clone())
}

/// XREADGROUP/XREAD on one stream: `nil` or `[[key, [entries]]]`.
pub(crate) fn xread_one(v: Value) -> Result<Vec<RawEntry>, BusError> {
    const OP: &str = "XREADGROUP";
    match into_array(OP, v)?.into_iter().next() {
        None => Ok(Vec::new()),
        Some(s) => match into_array(OP, s)?.into_iter().nth(1) {
            None => Err(bad(OP, "stream reply lacks its entries")),
            Some(list) => into_entries(OP, list),
        },
    }
}

/// One row of the extended XPENDING form.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub id: EntryId,
    pub consumer: String,
    pub idle_ms: u64,
    pub deliveries: u32,
}

pub(crate) fn xpending_rows(v: &Value) -> Result<Vec<PendingRow>, BusError> {
    const OP: &str = "XPENDING";
    as_array(OP, v)?
        .iter()
        .map(|row| {
            let r = as_array(OP, row)?;
            if r.len() != 4 {
                return Err(bad(OP, format!("pending row has {} items, expected 4", r.len())));
            }
            Ok(PendingRow {
                id: entry_id(OP, &r[0])?,
                consumer: as_string(OP, &r[1])?,
                idle_ms: as_int(OP, &r[2])?.max(0) as u64,
                deliveries: as_int(OP, &r[3])?.clamp(0, u32::MAX as i64) as u32,
            })
        })
        .collect()
}

/// Summary form of XPENDING: total and per-consumer counts.
pub(crate) fn xpending_summary(v: &Value) -> Result<(u64, Vec<(String, u64)>), BusError> {
    const OP: &str = "XPENDING";
    let parts = as_array(OP, v)?;
    let total = parts.first().map(|t| as_int(OP, t)).transpose()?.unwrap_or(0).max(0) as u64;
    let mut consumers = Vec::new();
    if let Some(list) = parts.get(3) {
        for c in as_array(OP, list)? {
            let pair = as_array(OP, c)?;
            if pair.len() == 2 {
                consumers.push((as_string(OP, &pair[0])?, as_int(OP, &pair[1])?.max(0) as u64));
            }
        }
    }
    Ok((total, consumers))
}

/// XAUTOCLAIM ... JUSTID: `[cursor, [ids], [deleted ids]]`.
pub(crate) fn xautoclaim_justid(v: &Value) -> Result<(EntryId, Vec<EntryId>, Vec<EntryId>), BusError> {
    const OP: &str = "XAUTOCLAIM";
    let parts = as_array(OP, v)?;
    if parts.len() < 2 {
        return Err(bad(OP, "reply has fewer than 2 parts"));
    }
    let cursor = entry_id(OP, &parts[0])?;
    let ids = as_array(OP, &parts[1])?.iter().map(|i| entry_id(OP, i)).collect::<Result<_, _>>()?;
    let deleted = match parts.get(2) {
        Some(d) => as_array(OP, d)?.iter().map(|i| entry_id(OP, i)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok((cursor, ids, deleted))
}

/// A flat `[k1, v1, k2, v2, ...]` reply (XINFO) as pairs.
pub(crate) fn flat_map(op: &'static str, v: &Value) -> Result<Vec<(String, Value)>, BusError> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Ok((as_string(op, k)?, v.clone()))).collect(),
        v => {
            let a = as_array(op, v)?;
            a.chunks(2).map(|c| Ok((as_string(op, &c[0])?, c.get(1).cloned().unwrap_or(Value::Nil)))).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entry_ids_order_numerically() {
        let a = EntryId::parse("9-0").unwrap();
        let b = EntryId::parse("10-0").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "10-0");
        assert_eq!(EntryId::parse("x-1"), None);
    }

    #[test]
    fn trimmed_entries_parse_as_bodiless() {
        let v = Value::Array(vec![Value::Array(vec![
            bs("s"),
            Value::Array(vec![
                Value::Array(vec![bs("1-0"), Value::Nil]),
                Value::Array(vec![bs("2-0"), Value::Array(vec![bs("e"), bs("xyz")])]),
            ]),
        ])]);
        let e = xread_one(v).unwrap();
        assert_eq!(e[0].fields, None);
        assert_eq!(e[1].field("e"), Some(&b"xyz"[..]));
        assert_eq!(xread_one(Value::Nil).unwrap(), vec![]);
    }

    #[test]
    fn odd_shapes_are_errors_not_panics() {
        assert!(xread_one(Value::Int(3)).is_err());
        assert!(into_entry("t", Value::Array(vec![bs("1-0")])).is_err());
        assert!(into_entry("t", Value::Array(vec![bs("1-0"), Value::Array(vec![bs("e")])])).is_err());
        assert!(xpending_rows(&Value::Array(vec![Value::Array(vec![bs("1-0")])])).is_err());
    }
}
