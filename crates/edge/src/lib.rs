//! tradeflow's HTTP edge: a thin axum service over the pipeline.
//!
//! It reads state from Redis (stream health, dead letters, fleet heartbeats, a tap of the
//! pipeline's streams folded into [`live::Live`]) and from the SQL audit store, and acts only
//! by sending messages: operator commands on `ctl.commands`, dead-letter replays, manual paper
//! orders as decisions. No stage logic lives here.
//!
//! - [`config`]: the `[edge]` configuration; [`auth`]: users, API keys, JWT, roles;
//!   [`ratelimit`]: per-class limits; [`error`]: the one error format; [`request_id`]: ids and
//!   the access log; [`secret`]: secrets from the OS generator, constant-time comparison;
//! - [`live`]: the live view; [`hub`]: WebSocket fan-out; [`llm_usage`]: every process's LLM
//!   spending, through Redis; [`routes`]: the handlers, one module
//!   per area, each contributing its routes and their OpenAPI description.

pub mod auth;
pub mod config;
mod contract;
pub mod error;
pub mod headers;
pub mod hub;
pub mod live;
pub mod llm_usage;
pub mod login_guard;
pub mod outcomes;
pub mod quota;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod secret;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};
use tradeflow_bus::tap::{From, Tap};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use config::EdgeConfig;
pub use state::{AppState, EdgeMetrics, Pipeline};

/// Streams the edge taps (prices, news, signals, decisions, orders, fills, alerts, commands).
/// Within one millisecond a read keeps this order: a stage's output before the events it
/// wrote beside it (an ensemble's decisions before the cycle_complete of the same batch).
pub const TAPPED: [&str; 10] = [
    "md.candles",
    // News stories, for the `news` channel.
    "md.news",
    "inf.signals",
    "ens.decisions",
    "risk.orders",
    "exec.fills",
    "sys.events",
    "ctl.commands",
    // Analysis cycles' steps (and risk's account alerts).
    "audit.events",
    // Jobs' state changes and progress, for the `tasks` channel.
    "jobs.events",
];

#[derive(OpenApi)]
#[openapi(
    info(title = "tradeflow edge", description = "REST and WebSocket API of the tradeflow pipeline. Errors: `{\"error\": {\"code\", \"message\", \"details\"}, \"request_id\"}`."),
    modifiers(&Security),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// The router and its OpenAPI document, before layers.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let api = routes::api_v1();
    let (router, mut doc) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", api).merge(routes::root()).split_for_parts();
    unique_operation_ids(&mut doc);
    contract::complete(&mut doc);
    (router, doc)
}

/// Operation ids from method and path (`get_api_v1_streams_name_dlq_stats`): handler names
/// repeat across modules (`stats`, `status`), and OpenAPI wants the ids unique.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let slug: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect::<String>()
            .split('_')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        for (method, op) in [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("patch", item.patch.as_mut()),
            ("delete", item.delete.as_mut()),
        ] {
            if let Some(op) = op {
                op.operation_id = Some(format!("{method}_{slug}"));
            }
        }
    }
}

/// The whole service: routes, `/openapi.json`, `/docs`, and the layers.
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let cors = cors_layer(&state.config);
    let limits = ratelimit::RateLimits::new(&state.config.rate_limit);
    let cleanup = limits.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            cleanup.forget_idle();
        }
    });
    let body_limit = state.config.body_limit_bytes;
    let router = router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(limits, ratelimit::limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state);
    let router = match cors {
        Some(c) => router.layer(c),
        None => router,
    };
    router
        .layer(middleware::from_fn(error::envelope_errors))
        .layer(middleware::from_fn(headers::secure))
        .layer(middleware::from_fn(request_id::tag_requests))
}

fn cors_layer(config: &EdgeConfig) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origin = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static("x-api-key")])
            .expose_headers([
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static("x-ratelimit-limit"),
                header::HeaderName::from_static("x-ratelimit-remaining"),
                header::HeaderName::from_static("x-ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Middleware: request count and duration per route template.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    state.metrics.requests.with_label_values(&[route, method.as_str(), response.status().as_str()]).inc();
    state.metrics.request_seconds.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    response
}

/// Opens the tap on the pipeline's streams (retrying until Redis answers or `stop`).
pub async fn open_tap(state: &AppState, stop: &CancellationToken) -> Option<Tap> {
    let streams: Vec<&str> = TAPPED.iter().copied().filter(|s| state.bus.topology().stream(s).is_ok()).collect();
    loop {
        match Tap::open(&state.bus, &streams, From::Now, Duration::from_millis(250)).await {
            // A burst per read well below a client's queue, so that only a client that stays
            // behind is dropped, not one that met a burst.
            Ok(t) => {
                state.live.tap_read();
                return Some(t.with_count((state.config.ws.client_queue / 4).clamp(1, 1000)));
            }
            Err(e) => {
                state.live.tap_failed(tradeflow_core::time::now_ms());
                warn!(error = %e, "edge tap cannot start; retrying");
                tokio::select! { _ = stop.cancelled() => return None, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            }
        }
    }
}

/// Follows the pipeline's streams into the live view and the WebSocket hub until `stop`.
pub async fn run_tap(state: AppState, mut tap: Tap, stop: CancellationToken) {
    loop {
        let batch = tokio::select! { _ = stop.cancelled() => return, b = tap.next() => b };
        match batch {
            Ok(batch) => {
                state.live.tap_read();
                let mut events = Vec::with_capacity(batch.len());
                for t in &batch {
                    state.live.apply(&t.envelope);
                    state
                        .scheduler
                        .observe(&t.envelope, || state.live.prices().into_iter().map(|p| p.symbol).collect());
                    state.outcomes.observe(&t.envelope);
                    events.extend(hub::Event::from_tapped(t));
                }
                state.hub.publish_all(events);
            }
            Err(e) => {
                state.live.tap_failed(tradeflow_core::time::now_ms());
                warn!(error = %e, "edge tap read failed; reconnecting");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            }
        }
    }
}

/// Publishes `status_update` to WebSocket clients every `ws.status_interval_s` until `stop`.
pub async fn run_status(state: AppState, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(state.config.ws.status_interval_s));
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = every.tick() => {} }
        let status = routes::control::status_snapshot(&state);
        let body = serde_json::json!({
            "type": "status_update",
            "channel": "status",
            "symbol": null,
            "time": tradeflow_core::time::now_ms(),
            "data": status,
        });
        if let Some(e) = hub::Event::new("status", None, &body) {
            state.hub.publish(e);
        }
    }
}

/// Opens the tap, seeds the live view from the store, starts the tap's reader, the status
/// publisher and the background tasks, and returns the server: it serves on `listener` until
/// `stop` (then finishes the requests in flight). The tap is open when this returns, so a
/// caller that starts feeding the pipeline afterwards loses nothing to the live view.
pub async fn start(
    state: AppState,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>> + Send + 'static> {
    // The tap's start is fixed before the seed reads the store, so that nothing falls between
    // the two (a message seen by both is folded twice, which the live view allows).
    let tap = open_tap(&state, &stop).await;
    if let Err(e) = routes::seed(&state).await {
        warn!(error = %e, "the live view could not be seeded from the store; it fills as messages arrive");
    }
    let serving = &state.serving;
    serving.set_stop(stop.clone());
    if let Some(tap) = tap {
        serving.watch("tap", tokio::spawn(run_tap(state.clone(), tap, stop.clone())));
    }
    serving.watch("status publisher", tokio::spawn(run_status(state.clone(), stop.clone())));
    serving.watch("monitor", tokio::spawn(routes::monitoring::run_background(state.clone(), stop.clone())));
    // Hit rates come from the store; an edge without one has none to measure (and a task
    // that ended at once would read as a failure in /health).
    if state.store.is_some() {
        serving.watch("model hit rates", tokio::spawn(routes::models::run_hit_rates(state.clone(), stop.clone())));
    }
    // This process's LLM usage (the pipeline's under `tradeflow up`, the edge's own analyses),
    // for the cost statistics of every edge.
    let (st, bus) = (state.clone(), state.bus.clone());
    let usage = tokio::spawn(llm_usage::run_publisher(bus, move || st.ai.llm_families(&st), stop.clone()));
    let addr = listener.local_addr()?;
    info!(%addr, "edge listening");
    let app = app(state);
    // TCP_NODELAY on every connection: a WebSocket client gets many small writes in a row, and
    // with Nagle's algorithm on each waited for the previous one's delayed ACK (up to 40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    Ok(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        // The LLM usage's last publication (it runs once more when stopped).
        let _ = usage.await;
        served
    })
}

/// Shared handles, for building an [`AppState`].
pub type Shared<T> = Arc<T>;
