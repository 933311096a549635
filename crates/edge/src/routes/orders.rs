//! Manual orders: the edge sends an [`OrderRequest`] to the risk stage and waits for its answer.
//!
//! - `POST /trading/orders` (and, kept for existing clients, `POST /paper/orders`): an order for
//!   one account, of any executor. Risk validates it, sizes it with the account's method unless
//!   it names a size (quantity, notional or a fraction of the position), checks it like any
//!   entry and answers with an order or a typed refusal; the executor fills it like any other.
//!   An order against a position reduces or closes it (partial closes); it never reverses it.
//! - `POST /paper/positions/{account}/{symbol}/close[?fraction=F]`: a reduce-only order against
//!   the position the live view holds.
//!
//! The edge holds none of risk's checks: it parses the body, refuses a malformed one (422, with
//! the field) and passes everything else on. Idempotency: the client id (the body's
//! `client_id`, else the `X-Request-Id` header) is claimed in Redis (`SET NX`, one day) with the
//! request's fingerprint, so every edge agrees on it: the same id with another order is refused
//! (409); the same id with the same order is a replay, sent again (risk acts on a client id
//! once, so a request whose first sender died in between still arrives, and never twice). The
//! answer is waited for on the streams the tap reads (up to 5 s), never by polling the store.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use tradeflow_core::execution::Fill;
use tradeflow_core::order::{Direction, OrderType, Side};
use tradeflow_core::request::{OrderRequest, RequestSize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Trader;
use crate::error::{ApiError, Json, Path, Query};
use crate::outcomes::Seen;
use crate::routes::trading::{TradeView, find_account};
use crate::state::{AppState, Caller, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(order)).routes(routes!(paper_order)).routes(routes!(close_position))
}

/// How long an answer is waited for.
const OUTCOME_WAIT: Duration = Duration::from_secs(5);
/// How long a client id stays claimed.
const CLIENT_ID_TTL_S: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderSide {
    /// Open a long (or reduce/close a short).
    Buy,
    /// Open a short (or reduce/close a long).
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    #[default]
    Market,
    Limit,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    pub account: String,
    pub symbol: String,
    pub side: OrderSide,
    /// At most one of `quantity` (base asset), `notional` (quote, at the reference price) and
    /// `fraction` (of the open position, reduce-only); none: the account's sizing method for
    /// an entry, the whole position for an order against one.
    pub quantity: Option<f64>,
    pub notional: Option<f64>,
    pub fraction: Option<f64>,
    /// market (default) or limit (paper accounts).
    #[serde(default)]
    pub order_type: OrderKind,
    pub limit_price: Option<f64>,
    /// At most the account's leverage; exchange accounts trade at theirs.
    pub leverage: Option<f64>,
    /// A stop below the price for a buy, above for a sell; a take profit the other way.
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Only reduce or close a position, never open one.
    #[serde(default)]
    pub reduce_only: bool,
    /// Idempotency key, 1–36 letters, digits, `-` or `_`; default: the `X-Request-Id`.
    pub client_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResult {
    /// `<request id>/<account>`: the id of the order (or of its refusal).
    pub order_id: String,
    /// The request's id, `req:<account>:<client id>` (the order's `decision_id`).
    pub decision_id: String,
    pub client_id: String,
    pub account: String,
    pub symbol: String,
    /// buy or sell.
    pub side: String,
    /// `filled` (fills seen), `rejected` (risk refused it: `reason`), `accepted` (an order,
    /// not filled yet: a resting limit, a fill held for the next open) or `pending` (no answer
    /// within 5 s; look it up in `/trading/trades`).
    pub status: String,
    /// The refusal's code and message.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// open, close or reduce.
    pub intent: Option<String>,
    /// The size risk gave it.
    pub quantity: Option<f64>,
    /// The close of the bar risk priced it at (`null` before an answer, or when the account
    /// had no price of the symbol).
    pub reference_price: Option<f64>,
    pub fills: Vec<TradeView>,
    /// The client id was used before for this same order: nothing new happened.
    pub replayed: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_body", format!("{field}: {}", message.into()))
        .with_details(json!({ "field": field }))
}

/// The client id a request without one gets: its `X-Request-Id` when that is a valid client
/// id, else a digest of it (`rid-` and 32 hex digits; the same header, the same id, so a retry
/// with the header is still recognised). Request ids may be longer than a client id and hold
/// `.` or `:`; the caller did not send a client id and must not be refused for one.
fn client_id_of_request(request_id: &str) -> String {
    let valid = !request_id.is_empty()
        && request_id.len() <= tradeflow_core::request::CLIENT_ID_MAX
        && request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        return request_id.to_string();
    }
    let digest = sha2::Sha256::digest(request_id.as_bytes());
    format!("rid-{}", &hex::encode(digest)[..32])
}

/// The request a body asks for, checked as risk will (422 naming the field). Public so that
/// the fuzz target `edge_bodies` feeds bodies through the handlers' own check.
pub fn request_of(body: OrderBody, caller: &Caller) -> Result<OrderRequest, ApiError> {
    let size = match (body.quantity, body.notional, body.fraction) {
        (None, None, None) => RequestSize::Account,
        (Some(quantity), None, None) => RequestSize::Quantity { quantity },
        (None, Some(notional), None) => RequestSize::Notional { notional },
        (None, None, Some(fraction)) => RequestSize::Fraction { fraction },
        _ => return Err(invalid("quantity", "give at most one of quantity, notional and fraction")),
    };
    let client_id = body.client_id.unwrap_or_else(|| client_id_of_request(&caller.request_id));
    let r = OrderRequest {
        id: OrderRequest::id_for(&body.account, &client_id),
        client_id,
        account: body.account,
        symbol: body.symbol,
        side: match body.side {
            OrderSide::Buy => Side::Buy,
            OrderSide::Sell => Side::Sell,
        },
        size,
        order_type: match body.order_type {
            OrderKind::Market => OrderType::Market,
            OrderKind::Limit => OrderType::Limit,
        },
        limit_price: body.limit_price,
        leverage: body.leverage,
        stop_loss: body.stop_loss,
        take_profit: body.take_profit,
        reduce_only: body.reduce_only,
        requested_by: caller.identity.subject.clone(),
        requested_at: tradeflow_core::time::now_ms(),
    };
    let problems = r.validate();
    if let Some(first) = problems.first() {
        let all: Vec<Value> = problems.iter().map(|p| json!({ "field": p.field, "message": p.message })).collect();
        return Err(ApiError::unprocessable("invalid_body", first.to_string())
            .with_details(json!({ "field": first.field, "problems": all })));
    }
    Ok(r)
}

/// What makes two requests the same order (the client id and who or when aside).
fn fingerprint(r: &OrderRequest) -> String {
    json!([
        r.symbol,
        r.side,
        r.size,
        r.order_type,
        r.limit_price,
        r.leverage,
        r.stop_loss,
        r.take_profit,
        r.reduce_only
    ])
    .to_string()
}

/// Claims the client id for this order across every edge: `Ok(false)` when new, `Ok(true)`
/// for a replay of the same order, 409 for another order under the same id.
async fn claim(state: &AppState, r: &OrderRequest) -> Result<bool, ApiError> {
    let key = format!("{}:{{edge}}:order_request:{}:{}", state.bus.keys().namespace(), r.account, r.client_id);
    let print = fingerprint(r);
    let mut conn = state.bus.conn();
    let claimed: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&print)
        .arg("NX")
        .arg("EX")
        .arg(CLIENT_ID_TTL_S)
        .arg("GET")
        .query_async(&mut conn)
        .await
        .map_err(|e| ApiError::unavailable("Redis", e))?;
    match claimed {
        None => Ok(false),
        Some(earlier) if earlier == print => Ok(true),
        Some(earlier) => Err(ApiError::conflict(format!(
            "client id {:?} was used for another order of account {:?}",
            r.client_id, r.account
        ))
        .with_details(json!({ "client_id": r.client_id, "earlier": serde_json::from_str::<Value>(&earlier).ok() }))),
    }
}

fn fill_view(f: Fill) -> TradeView {
    TradeView {
        manual: true,
        id: f.id,
        order_id: f.order_id,
        account: f.account,
        symbol: f.symbol,
        side: f.side.as_str().into(),
        quantity: f.quantity,
        price: f.price,
        fee: f.fee,
        realized_pnl: f.realized_pnl,
        liquidity: f.liquidity.as_str().into(),
        reason: f.reason.as_str().into(),
        seq: f.seq as i64,
        time: f.time,
        order: None,
    }
}

/// Sends a request and waits for its answer on the tap.
async fn place(state: &AppState, r: OrderRequest) -> Result<OrderResult, ApiError> {
    let cfg = find_account(state, &r.account)?;
    let replayed = claim(state, &r).await?;
    let order_id = r.order_id();
    let mut watching = state.outcomes.watch(&order_id);
    // A replay of a request answered before this edge watched: the answer is stored (one
    // look, not a poll).
    if replayed
        && let Some(store) = state.store.clone()
        && let Some(o) = answered(&store, &r).await?
    {
        return Ok(stored_result(&r, o));
    }
    // Sent again on a replay: risk acts on a client id once, and the first sender may have
    // died before sending. Keyed by the account's profile: the risk partition that holds it.
    state.producer.publish("ens.decisions", &r.message_id(), &cfg.profile, None, &r).await?;
    let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
    let limit = r.order_type == OrderType::Limit;
    let mut seen = watching
        .until(deadline, |s| s.rejection.is_some() || (s.order.is_some() && (limit || !s.fills.is_empty())))
        .await;
    if seen == Seen::default()
        && replayed
        && let Some(store) = state.store.clone()
        && let Some(o) = answered(&store, &r).await?
    {
        return Ok(stored_result(&r, o));
    }
    let order_id = r.order_id();
    seen.fills.sort_by(|a, b| a.id.cmp(&b.id));
    let status = if seen.rejection.is_some() {
        "rejected"
    } else if !seen.fills.is_empty() {
        "filled"
    } else if seen.order.is_some() {
        "accepted"
    } else {
        "pending"
    };
    let bar = seen.order.as_ref().map(|o| &o.bar).or(seen.rejection.as_ref().map(|j| &j.bar));
    Ok(OrderResult {
        order_id,
        decision_id: r.id.clone(),
        client_id: r.client_id.clone(),
        account: r.account.clone(),
        symbol: r.symbol.clone(),
        side: r.side.as_str().into(),
        status: status.into(),
        reason: seen.rejection.as_ref().map(|j| j.reason.code().to_string()),
        message: seen.rejection.as_ref().map(|j| j.reason.to_string()),
        intent: seen.order.as_ref().map(|o| o.intent.as_str().to_string()),
        quantity: seen.order.as_ref().map(|o| o.quantity),
        reference_price: bar.filter(|b| b.close > 0.0).map(|b| b.close),
        fills: seen.fills.into_iter().map(fill_view).collect(),
        replayed,
    })
}

/// The stored answer to a request, if risk has answered it.
async fn answered(
    store: &tradeflow_audit::AuditStore,
    r: &OrderRequest,
) -> Result<Option<tradeflow_audit::query::trading::OrderOutcome>, ApiError> {
    let o = store.order_outcome(&r.account, &r.order_id()).await?;
    Ok((o.order.is_some() || o.rejection.is_some()).then_some(o))
}

fn stored_result(r: &OrderRequest, o: tradeflow_audit::query::trading::OrderOutcome) -> OrderResult {
    let status = if o.rejection.is_some() {
        "rejected"
    } else if !o.fills.is_empty() {
        "filled"
    } else if o.order.is_some() {
        "accepted"
    } else {
        "pending"
    };
    OrderResult {
        order_id: r.order_id(),
        decision_id: r.id.clone(),
        client_id: r.client_id.clone(),
        account: r.account.clone(),
        symbol: r.symbol.clone(),
        side: r.side.as_str().into(),
        status: status.into(),
        reason: o.rejection.as_ref().map(|j| j.reason.clone()),
        message: o.rejection.as_ref().map(|j| j.message.clone()),
        intent: o.order.as_ref().map(|x| x.intent.clone()),
        quantity: o.order.as_ref().map(|x| x.quantity),
        reference_price: o.order.as_ref().map(|x| x.reference_price),
        fills: o.fills.into_iter().map(|f| crate::routes::trading::fill_view(f, None)).collect(),
        replayed: true,
    }
}

fn details(r: &OrderResult) -> Value {
    json!({
        "account": r.account, "symbol": r.symbol, "side": r.side, "order_id": r.order_id,
        "client_id": r.client_id, "status": r.status, "reason": r.reason, "replayed": r.replayed,
    })
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    body: OrderBody,
) -> Result<OrderResult, ApiError> {
    let outcome = match request_of(body, caller) {
        Ok(r) => place(state, r).await,
        Err(e) => Err(e),
    };
    state
        .audited(
            caller,
            action,
            resource,
            outcome.map(|r| {
                let d = details(&r);
                (r, d)
            }),
        )
        .await
}

/// A manual order for an account (trader): risk validates, sizes or refuses it, the executor
/// fills it. Answers 202 with the outcome (waiting up to 5 s for it). 404: unknown account;
/// 409: the client id was used for another order; 422: a malformed body (`details.field`).
#[utoipa::path(post, path = "/trading/orders", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    request_body = OrderBody,
    responses(
        (status = 202, body = OrderResult),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn order(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(body): Json<OrderBody>,
) -> Result<(StatusCode, Json<OrderResult>), ApiError> {
    let caller = meta.caller(who);
    let r = submit(&state, &caller, "order", "/api/v1/trading/orders", body).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// The same as `POST /trading/orders`, under the path earlier clients use (any account).
#[utoipa::path(post, path = "/paper/orders", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    request_body = OrderBody,
    responses(
        (status = 202, body = OrderResult),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn paper_order(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(body): Json<OrderBody>,
) -> Result<(StatusCode, Json<OrderResult>), ApiError> {
    let caller = meta.caller(who);
    let r = submit(&state, &caller, "paper_order", "/api/v1/paper/orders", body).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseQuery {
    /// Fraction of the position to close, in (0, 1]; default 1 (all of it).
    pub fraction: Option<f64>,
}

/// Closes (or with `fraction`, reduces) an account's position in a symbol (trader): a
/// reduce-only order against the position the live view holds, through risk and the executor
/// (exits are never refused). 404 when there is no such account or open position.
#[utoipa::path(post, path = "/paper/positions/{account}/{symbol}/close", tag = "trading",
    security(("bearer" = []), ("api_key" = [])),
    params(("account" = String, Path, description = "account id"), ("symbol" = String, Path, description = "symbol", pattern = "^[A-Za-z0-9_./:-]{1,40}$"),
        CloseQuery),
    responses(
        (status = 202, body = OrderResult),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn close_position(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path((account, symbol)): Path<(String, String)>,
    Query(q): Query<CloseQuery>,
) -> Result<(StatusCode, Json<OrderResult>), ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/paper/positions/{account}/{symbol}/close");
    let position = state.live.positions(Some(&account)).into_iter().find(|p| p.symbol == symbol);
    let body = match position {
        None => Err(ApiError::not_found("open position", &format!("{account}/{symbol}"))),
        Some(p) => Ok(OrderBody {
            account,
            symbol,
            side: if p.direction == Direction::Long { OrderSide::Sell } else { OrderSide::Buy },
            quantity: None,
            notional: None,
            fraction: Some(q.fraction.unwrap_or(1.0)),
            order_type: OrderKind::Market,
            limit_price: None,
            leverage: None,
            stop_loss: None,
            take_profit: None,
            reduce_only: true,
            client_id: None,
        }),
    };
    let r = match body {
        Ok(body) => submit(&state, &caller, "paper_close", &resource, body).await?,
        Err(e) => state.audited(&caller, "paper_close", &resource, Err::<(OrderResult, Value), _>(e)).await?,
    };
    Ok((StatusCode::ACCEPTED, Json(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> OrderBody {
        serde_json::from_value(json!({ "account": "a", "symbol": "BTC", "side": "buy" })).unwrap()
    }

    fn caller() -> Caller {
        let who = crate::auth::Identity { subject: "t".into(), role: crate::auth::Role::Trader };
        Caller::new(who, None, None)
    }

    #[test]
    fn a_request_id_that_is_no_client_id_becomes_one() {
        assert_eq!(client_id_of_request("abc-1_X"), "abc-1_X");
        for odd in ["trace:01.02", &"x".repeat(100), ""] {
            let id = client_id_of_request(odd);
            assert!(id.starts_with("rid-") && id.len() == 36, "{id}");
            assert_eq!(id, client_id_of_request(odd), "the same header, the same id");
        }
        assert_ne!(client_id_of_request("a.b"), client_id_of_request("a.c"));
    }

    #[test]
    fn a_body_becomes_a_request_with_its_client_id() {
        let mut b = body();
        b.client_id = Some("abc-1".into());
        b.fraction = None;
        b.quantity = Some(0.5);
        let r = request_of(b, &caller()).unwrap();
        assert_eq!((r.id.as_str(), r.order_id()), ("req:a:abc-1", "req:a:abc-1/a".to_string()));
        assert_eq!(r.size, RequestSize::Quantity { quantity: 0.5 });
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let mut b = body();
        b.quantity = Some(1.0);
        b.notional = Some(1.0);
        assert_eq!(request_of(b, &caller()).unwrap_err().status, 422);
        let mut b = body();
        b.client_id = Some("no spaces".into());
        let e = request_of(b, &caller()).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.starts_with("client_id:"), "{}", e.message);
    }

    #[test]
    fn the_fingerprint_ignores_who_and_when() {
        let a = request_of(body(), &caller()).unwrap();
        let mut b = a.clone();
        b.requested_by = "someone else".into();
        b.requested_at += 1000;
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.stop_loss = Some(1.0);
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
