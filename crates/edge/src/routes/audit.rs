//! `GET /audit`: the audit log (logins, account changes, manual orders, operator commands,
//! dead-letter replays ...), newest first, filtered and paged.
//!
//! Filters: `actor` and `action` (exact), `start_date` and `end_date` (inclusive), each either
//! epoch milliseconds (`1767225600000`) or an RFC 3339 time (`2026-01-01T00:00:00Z`,
//! `2026-01-01T01:00:00.5+01:00`); anything else is a 400. Pages: `page` ≥ 1 (default 1),
//! `per_page` 1 to 200 (default 50). The answer: `{items, page, per_page, total}`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_audit::AuditLogRow;
use tradeflow_audit::query::trading::AuditFilter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_log))
}

pub const MAX_PER_PAGE: i64 = 200;
/// The last page asked for: far past any store's rows, and its offset cannot overflow.
pub const MAX_PAGE: i64 = 1_000_000;
const DEFAULT_PER_PAGE: i64 = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact actor (user name, `key:<name>`, `cli`).
    pub actor: Option<String>,
    /// Exact action (`login`, `account_create`, `paper_order`, `pause`, ...).
    pub action: Option<String>,
    /// From (inclusive): epoch ms or RFC 3339.
    #[param(
        pattern = "^(-?[0-9]{1,15}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    pub start_date: Option<String>,
    /// To (inclusive): epoch ms or RFC 3339.
    #[param(
        pattern = "^(-?[0-9]{1,15}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    pub end_date: Option<String>,
    /// 1 or more (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub ip: Option<String>,
    /// ok, refused, failed, accepted (a command).
    pub status: String,
    /// JSON (as stored; a string when it is not JSON).
    #[schema(value_type = Object)]
    pub details: Value,
    /// Epoch ms.
    pub time: i64,
}

impl From<AuditLogRow> for AuditEntry {
    fn from(r: AuditLogRow) -> Self {
        let details = serde_json::from_str(&r.details).unwrap_or(Value::String(r.details));
        AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            ip: r.ip,
            status: r.status,
            details,
            time: r.time,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub page: i64,
    pub per_page: i64,
    /// Rows matching the filters, on every page.
    pub total: i64,
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// An RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `t`, `z` and a space for
/// `T` accepted) as epoch ms; fractions below a millisecond are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) { std::str::from_utf8(part).ok()?.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i];
        ms = format!("{:0<3}", &frac[..frac.len().min(3)]).parse::<i64>().ok()?;
    }
    let offset_min = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let secs =
        tradeflow_core::time::days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec.min(59)
            - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// Epoch ms (an integer) or RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = s.trim();
    if !t.is_empty() && t.trim_start_matches('-').bytes().all(|c| c.is_ascii_digit()) {
        return t.parse().ok();
    }
    parse_rfc3339(t)
}

/// A time parameter: epoch milliseconds or an RFC 3339 time, refused with 400 naming the field.
pub(crate) fn time_param(field: &'static str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    parse_time(v).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!("{field}: {v:?} is neither epoch milliseconds nor an RFC 3339 time (2026-01-01T00:00:00Z)"),
        )
        .with_details(json!({ "field": field, "got": v }))
    })
}

/// The audit log, newest first: who did what, from where, with what outcome (admin: it holds
/// the callers' addresses and names).
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = []), ("api_key" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn audit_log(
    State(state): State<AppState>,
    _who: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = q.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request("invalid_query", format!("page: expected 1 to {MAX_PAGE}, got {page}"))
            .with_details(json!({ "field": "page", "min": 1, "max": MAX_PAGE, "got": page })));
    }
    let per_page = crate::error::check_limit("per_page", q.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
    let start = time_param("start_date", q.start_date.as_deref())?;
    let end = time_param("end_date", q.end_date.as_deref())?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::bad_request("invalid_query", "start_date is after end_date")
            .with_details(json!({ "field": "start_date", "start": s, "end": e })));
    }
    let offset = (page - 1).checked_mul(per_page).ok_or_else(|| {
        ApiError::bad_request("invalid_query", format!("page: {page} is too large"))
            .with_details(json!({ "field": "page", "got": page }))
    })?;
    let filter = AuditFilter { actor: q.actor.as_deref(), action: q.action.as_deref(), start, end };
    let (rows, total) = state.store()?.audit_rows(filter, per_page, offset).await?;
    Ok(Json(AuditPage { items: rows.into_iter().map(AuditEntry::from).collect(), page, per_page, total }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_epoch_ms_or_rfc3339() {
        assert_eq!(parse_time("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(parse_time("-5"), Some(-5));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(parse_time("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000));
        assert_eq!(parse_time("2025-12-31t19:30:00.5-04:30"), Some(1_767_225_600_500));
        assert_eq!(parse_time("2024-02-29 12:00:00.123456z"), Some(1_709_208_000_123));
        for bad in [
            "",
            "yesterday",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+1:00",
            "2026-01-01T00:00:00Zjunk",
            "12ab",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
