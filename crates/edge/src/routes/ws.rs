//! `GET /ws` (the WebSocket, see [`crate::hub`] for the protocol) and `GET /ws/stats`.
//! The WebSocket takes the viewer role like every read: a token in `Authorization`, an
//! `X-API-Key`, or `?token=` (browsers cannot set headers on a WebSocket).

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Viewer;
use crate::error::{ApiError, Json, Query};
use crate::hub::WsStats;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ws)).routes(routes!(stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// A JWT, for clients that cannot send headers.
    pub token: Option<String>,
}

/// The event stream (WebSocket upgrade).
#[utoipa::path(get, path = "/ws", tag = "websocket", params(WsQuery), responses(
    (status = 101, description = "switching to the WebSocket protocol"),
    (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody, description = "max_clients reached"),
))]
async fn ws(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    if let Some(token) = q.token
        && !parts.headers.contains_key(AUTHORIZATION)
    {
        let v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::unauthorized("the token is not a valid header value"))?;
        parts.headers.insert(AUTHORIZATION, v);
    }
    let _who = <Viewer as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await?;
    let upgrade =
        <WebSocketUpgrade as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
            .await
            .map_err(|e: axum::extract::ws::rejection::WebSocketUpgradeRejection| {
            ApiError::bad_request("not_a_websocket", e.body_text())
        })?;
    if !state.hub.has_room() {
        return Err(ApiError::unavailable("websocket", format!("{} clients connected", state.hub.client_count())));
    }
    let hub = state.hub.clone();
    // Clients send a few small requests; tungstenite zeroes its whole read buffer (128 KiB by
    // default) on reads, which was 43 % of the edge's CPU when fanning out to 1,000 clients.
    // Messages larger than the buffer still arrive whole (it grows); the limit is separate.
    let upgrade = upgrade.read_buffer_size(4096).max_message_size(64 << 10).max_frame_size(64 << 10);
    Ok(upgrade.on_upgrade(move |socket| hub.serve(socket)))
}

/// Clients, queues, drops and deliveries of the WebSocket hub.
#[utoipa::path(get, path = "/ws/stats", tag = "websocket", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = WsStats),
    (status = 401, body = crate::error::ErrorBody),
))]
async fn stats(State(state): State<AppState>, _who: Viewer) -> Json<WsStats> {
    Json(state.hub.stats())
}
