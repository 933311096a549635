//! Streams and dead letters: what the topology declares, how each stream is doing, how fast
//! messages flow, and the dead-letter queues with replay and purge.
//!
//! - `GET /streams`, `/streams/{name}/config`, `/streams/{name}/health`, `/health/streams`
//!   (the whole system with its issues), `/streams/metrics` (messages per minute, measured);
//! - `GET /streams/{name}/dlq/stats`, `/streams/{name}/dlq/messages`; `POST
//!   /streams/{name}/dlq/replay` (trader); `DELETE /streams/{name}/dlq` (admin).
//!
//! A stream name the topology does not declare is a 404. Issues of a stream, and its status
//! (the bus's rules, [`inspect::issues_of`], which `tradeflow streams health` applies too):
//! - `missing_partition`, `missing_group` (critical → `unhealthy`): `streams init` was not run
//!   or a key was deleted; consumers of that partition cannot work;
//! - `dead_letters` (warning → `degraded`): the DLQ holds messages;
//! - `lag` (warning): a group has more than [`inspect::LAG_DEGRADED`] entries not yet delivered;
//! - `no_workers` (warning): a group has entries waiting (lag or pending) and no live fleet
//!   member (heartbeat expiry in the future by Redis time) consumes it.
//!
//! Dead-letter ids are `<partition>/<entry id>` as listed (a bare entry id is accepted when
//! only one partition has it), the same as `tradeflow dlq replay --id`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_bus::dlq::{DeadLetter, Dlq, ReplaySelector};
use tradeflow_bus::inspect::{self, GroupSummary, Issue, StreamHealth, status_of};
use tradeflow_bus::reply::EntryId;
use tradeflow_bus::topology::StreamSpec;
use tradeflow_bus::{Bus, BusError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Trader, Viewer};
use crate::error::{ApiError, Json, Page, Path, Query};
use crate::state::{AppState, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_streams))
        .routes(routes!(stream_config))
        .routes(routes!(stream_health))
        .routes(routes!(system_health))
        .routes(routes!(stream_metrics))
        .routes(routes!(dlq_stats))
        .routes(routes!(dlq_messages))
        .routes(routes!(dlq_replay))
        .routes(routes!(dlq_purge))
}

/// The reasons a message is dead-lettered with (see `tradeflow_bus::dlq::DeadLetterReason`).
pub const DLQ_REASONS: [&str; 3] = ["decode_error", "max_deliveries", "rejected"];

/// At most this many ids in one replay request.
pub const MAX_REPLAY_IDS: usize = 1000;

fn spec<'a>(state: &'a AppState, name: &str) -> Result<&'a StreamSpec, ApiError> {
    Ok(state.bus.topology().stream(name)?)
}

// ---------------------------------------------------------------------------------------------
// Health of streams, issues, statuses.

/// One stream in a listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamSummary {
    pub name: String,
    pub description: String,
    /// What the partition key is (`symbol`, `account`, ...).
    pub key: String,
    pub partitions: u32,
    pub groups: Vec<String>,
    /// Approximate MAXLEN of each partition.
    pub maxlen: u64,
    /// Entries in all partitions.
    pub length: u64,
    pub dlq_length: u64,
    pub pending: u64,
    /// Entries not yet delivered, summed over groups and partitions (where Redis knows it).
    pub lag: u64,
    /// `healthy`, `degraded` or `unhealthy` (see the module's issues).
    pub status: &'static str,
    pub issues: usize,
}

fn summary(spec: &StreamSpec, h: &StreamHealth, groups: &[GroupSummary], issues: &[Issue]) -> StreamSummary {
    StreamSummary {
        name: spec.name.clone(),
        description: spec.description.clone(),
        key: spec.key.clone(),
        partitions: spec.partitions,
        groups: spec.groups.clone(),
        maxlen: spec.maxlen,
        length: h.length,
        dlq_length: h.dlq_length,
        pending: h.pending,
        lag: groups.iter().map(|g| g.lag).sum(),
        status: status_of(issues),
        issues: issues.len(),
    }
}

struct Looked {
    health: StreamHealth,
    groups: Vec<GroupSummary>,
    issues: Vec<Issue>,
}

/// The stream's health, groups and issues by the bus's rules (the CLI's `streams health`
/// applies the same).
async fn look(bus: &Bus, spec: &StreamSpec) -> Result<Looked, ApiError> {
    let a = inspect::assess(bus, &spec.name).await?;
    Ok(Looked { health: a.health, groups: a.group_summaries, issues: a.issues })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamList {
    pub total: usize,
    pub streams: Vec<StreamSummary>,
}

/// Every stream of the topology with its size, lag, dead letters and status.
#[utoipa::path(get, path = "/streams", tag = "streams", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = StreamList),
    (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn list_streams(State(state): State<AppState>, _who: Viewer) -> Result<Json<StreamList>, ApiError> {
    let mut streams = Vec::new();
    for spec in state.bus.topology().streams.values() {
        let l = look(&state.bus, spec).await?;
        streams.push(summary(spec, &l.health, &l.groups, &l.issues));
    }
    Ok(Json(StreamList { total: streams.len(), streams }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamConfig {
    pub name: String,
    pub description: String,
    pub key: String,
    pub partitions: u32,
    pub groups: Vec<String>,
    pub maxlen: u64,
    pub max_deliveries: u32,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub claim_idle_ms: u64,
    pub dlq_maxlen: u64,
    pub read_count: usize,
    pub block_ms: u64,
    /// Most messages packed into one stream entry (1: no packing).
    pub pack_max: usize,
    /// Entries every group has acknowledged are trimmed (the partition holds its backlog).
    pub trim_acked: bool,
    /// How long acknowledged entries stay anyway, for readers without a group.
    pub trim_grace_ms: u64,
    /// How each group of `groups` reads this stream (`[groups.<name>]`), in the same order.
    pub group_settings: Vec<GroupSettings>,
    /// Redis keys of the partitions, in partition order.
    pub redis_keys: Vec<String>,
    /// Redis keys of the dead-letter partitions.
    pub dlq_keys: Vec<String>,
    pub fleet_heartbeat_ms: u64,
    pub fleet_lease_ttl_ms: u64,
}

/// How one consumer group reads (streams.toml `[groups.<name>]`, defaults applied).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSettings {
    pub group: String,
    /// Wait after a read that did not fill `read_count` (0: read again at once).
    pub linger_ms: u64,
    /// Most messages per handler batch: the group's `batch_max`, else the stream's `read_count`.
    pub batch_max: usize,
}

/// A stream's configuration from `streams.toml` (404 for an unknown stream).
#[utoipa::path(get, path = "/streams/{name}/config", tag = "streams", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name, e.g. md.candles")),
    responses(
        (status = 200, body = StreamConfig),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn stream_config(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
) -> Result<Json<StreamConfig>, ApiError> {
    let s = spec(&state, &name)?;
    let keys = state.bus.keys();
    let ms = |d: Duration| d.as_millis() as u64;
    let fleet = &state.bus.topology().fleet;
    Ok(Json(StreamConfig {
        name: s.name.clone(),
        description: s.description.clone(),
        key: s.key.clone(),
        partitions: s.partitions,
        groups: s.groups.clone(),
        maxlen: s.maxlen,
        max_deliveries: s.max_deliveries,
        retry_backoff_ms: ms(s.retry_backoff),
        retry_backoff_max_ms: ms(s.retry_backoff_max),
        claim_idle_ms: ms(s.claim_idle),
        dlq_maxlen: s.dlq_maxlen,
        read_count: s.read_count,
        block_ms: ms(s.block),
        pack_max: s.pack_max,
        trim_acked: s.trim_acked,
        trim_grace_ms: ms(s.trim_grace),
        group_settings: s
            .groups
            .iter()
            .map(|g| {
                let spec = state.bus.topology().group(g);
                GroupSettings {
                    group: g.clone(),
                    linger_ms: ms(spec.linger),
                    batch_max: spec.batch_max.unwrap_or(s.read_count),
                }
            })
            .collect(),
        redis_keys: keys.partitions(s),
        dlq_keys: (0..s.partitions).map(|p| keys.dlq(&s.name, p)).collect(),
        fleet_heartbeat_ms: ms(fleet.heartbeat),
        fleet_lease_ttl_ms: ms(fleet.lease_ttl),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerView {
    pub name: String,
    pub pending: u64,
    pub idle_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionGroupView {
    pub group: String,
    /// False when the group is missing on this partition.
    pub exists: bool,
    pub pending: u64,
    /// Entries not yet delivered; null when Redis cannot tell.
    pub lag: Option<u64>,
    pub last_delivered_id: Option<String>,
    pub consumers: Vec<ConsumerView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionView {
    pub partition: u32,
    pub key: String,
    pub exists: bool,
    pub length: u64,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub dlq_length: u64,
    pub groups: Vec<PartitionGroupView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamHealthView {
    pub stream: String,
    pub description: String,
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: &'static str,
    pub issues: Vec<Issue>,
    pub length: u64,
    pub dlq_length: u64,
    pub pending: u64,
    pub lag: u64,
    pub groups: Vec<GroupSummary>,
    pub partitions: Vec<PartitionView>,
}

/// One stream's health: per group (live workers, pending, lag) and per partition (length,
/// ids, groups, consumers, dead letters), with its issues.
#[utoipa::path(get, path = "/streams/{name}/health", tag = "streams", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name")),
    responses(
        (status = 200, body = StreamHealthView),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn stream_health(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
) -> Result<Json<StreamHealthView>, ApiError> {
    let s = spec(&state, &name)?;
    let Looked { health, groups, issues } = look(&state.bus, s).await?;
    let lag = groups.iter().map(|g| g.lag).sum();
    let partitions = health
        .partitions
        .into_iter()
        .map(|p| PartitionView {
            partition: p.partition,
            key: p.key,
            exists: p.exists,
            length: p.length,
            first_id: p.first_id,
            last_id: p.last_id,
            dlq_length: p.dlq_length,
            groups: p
                .groups
                .into_iter()
                .map(|g| PartitionGroupView {
                    group: g.group,
                    exists: g.exists,
                    pending: g.pending,
                    lag: g.lag,
                    last_delivered_id: g.last_delivered_id,
                    consumers: g
                        .consumers
                        .into_iter()
                        .map(|c| ConsumerView { name: c.name, pending: c.pending, idle_ms: c.idle_ms })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(StreamHealthView {
        stream: health.stream,
        description: health.description,
        status: status_of(&issues),
        issues,
        length: health.length,
        dlq_length: health.dlq_length,
        pending: health.pending,
        lag,
        groups,
        partitions,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStreamsHealth {
    /// `unhealthy` if any stream is, else `degraded` if any stream is, else `healthy`.
    pub status: &'static str,
    pub total_streams: usize,
    pub total_partitions: u64,
    /// (stream, group) pairs.
    pub total_groups: usize,
    pub total_length: u64,
    pub total_lag: u64,
    pub total_pending: u64,
    pub dlq_messages: u64,
    pub issues: Vec<Issue>,
    pub streams: Vec<StreamSummary>,
}

/// The whole bus: totals over every stream, every issue, each stream's summary. Always 200
/// when Redis answers (a report, not a probe: see `/monitoring/health`).
#[utoipa::path(get, path = "/health/streams", tag = "streams", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SystemStreamsHealth),
    (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn system_health(State(state): State<AppState>, _who: Viewer) -> Result<Json<SystemStreamsHealth>, ApiError> {
    let mut streams = Vec::new();
    let mut issues = Vec::new();
    for spec in state.bus.topology().streams.values() {
        let l = look(&state.bus, spec).await?;
        streams.push(summary(spec, &l.health, &l.groups, &l.issues));
        issues.extend(l.issues);
    }
    Ok(Json(SystemStreamsHealth {
        status: status_of(&issues),
        total_streams: streams.len(),
        total_partitions: streams.iter().map(|s| u64::from(s.partitions)).sum(),
        total_groups: streams.iter().map(|s| s.groups.len()).sum(),
        total_length: streams.iter().map(|s| s.length).sum(),
        total_lag: streams.iter().map(|s| s.lag).sum(),
        total_pending: streams.iter().map(|s| s.pending).sum(),
        dlq_messages: streams.iter().map(|s| s.dlq_length).sum(),
        issues,
        streams,
    }))
}

// ---------------------------------------------------------------------------------------------
// Rates.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Measurement window in seconds, 10 to 600 (default 60).
    #[param(minimum = 10, maximum = 600)]
    pub window_s: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamRate {
    pub stream: String,
    /// Messages added per minute over the window; null until a sample old enough exists
    /// (the edge samples every few seconds from its start).
    pub messages_per_minute: Option<f64>,
    /// Seconds the rate was measured over (at most the window).
    pub measured_over_s: f64,
    /// Messages added in that time.
    pub added: u64,
    /// Messages ever added (XINFO STREAM `entries-added`).
    pub entries_added: u64,
    pub length: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamMetrics {
    pub window_s: u64,
    pub sampled_every_s: u64,
    pub streams: Vec<StreamRate>,
}

/// Messages per minute per stream, measured: the count of messages added now against the
/// edge's sample from about `window_s` ago.
#[utoipa::path(get, path = "/streams/metrics", tag = "streams", security(("bearer" = []), ("api_key" = [])),
    params(MetricsQuery),
    responses(
        (status = 200, body = StreamMetrics),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn stream_metrics(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<StreamMetrics>, ApiError> {
    let window = q.window_s.unwrap_or(60);
    if !(10..=600).contains(&window) {
        return Err(ApiError::bad_request("invalid_query", format!("window_s: expected 10 to 600, got {window}"))
            .with_details(json!({ "field": "window_s", "min": 10, "max": 600, "got": window })));
    }
    let window = Duration::from_secs(window as u64);
    let mut streams = Vec::new();
    for name in state.bus.topology().streams.keys() {
        let now = inspect::stream_counters(&state.bus, name).await?;
        let at = std::time::Instant::now();
        let base = state.monitor.base_sample(name, window, at);
        let (rate, over, added) = match base {
            Some((then, c)) => {
                let over = at.duration_since(then).as_secs_f64();
                let added = now.entries_added.saturating_sub(c.entries_added);
                let rate = (over >= 1.0).then(|| (added as f64) * 60.0 / over);
                (rate, over, added)
            }
            None => (None, 0.0, 0),
        };
        streams.push(StreamRate {
            stream: name.clone(),
            messages_per_minute: rate.map(|r| (r * 100.0).round() / 100.0),
            // Rounded down: a rate is given from a full second on, and 0.96 s shown as 1.0
            // beside no rate would contradict itself.
            measured_over_s: (over * 10.0).floor() / 10.0,
            added,
            entries_added: now.entries_added,
            length: now.length,
        });
    }
    Ok(Json(StreamMetrics {
        window_s: window.as_secs(),
        sampled_every_s: crate::routes::monitoring::SAMPLE_EVERY.as_secs(),
        streams,
    }))
}

// ---------------------------------------------------------------------------------------------
// Dead letters.

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqStatsView {
    pub stream: String,
    pub total: u64,
    /// Counts by `dead_letter_reason`.
    pub by_reason: BTreeMap<String, u64>,
    /// Counts by partition number.
    pub by_partition: BTreeMap<String, u64>,
    /// Epoch ms.
    pub oldest_failed_at: Option<i64>,
    pub newest_failed_at: Option<i64>,
}

/// Counts of a stream's dead letters by reason and partition.
#[utoipa::path(get, path = "/streams/{name}/dlq/stats", tag = "dead letters", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name")),
    responses(
        (status = 200, body = DlqStatsView),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn dlq_stats(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
) -> Result<Json<DlqStatsView>, ApiError> {
    spec(&state, &name)?;
    let s = Dlq::new(&state.bus).stats(&name).await?;
    Ok(Json(DlqStatsView {
        stream: s.stream,
        total: s.total,
        by_reason: s.by_reason,
        by_partition: s.by_partition.into_iter().map(|(p, n)| (p.to_string(), n)).collect(),
        oldest_failed_at: s.oldest_failed_at,
        newest_failed_at: s.newest_failed_at,
    }))
}

/// A dead letter.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// `<partition>/<dlq entry id>`: what replay takes in `ids`.
    pub id: String,
    pub partition: u32,
    /// `decode_error`, `max_deliveries` or `rejected`.
    pub dead_letter_reason: String,
    pub error: String,
    pub failed_at: i64,
    pub original_stream: String,
    pub original_message_id: String,
    /// The envelope's message id, when it could be read.
    pub message_id: String,
    pub group: String,
    pub service_name: String,
    pub final_retry_count: u32,
    /// The envelope header, when the payload decodes.
    #[schema(value_type = Option<Object>)]
    pub envelope: Option<Value>,
    /// The payload as JSON (or a description of undecodable bytes).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub payload_bytes: usize,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        DeadLetterView {
            id: d.id,
            partition: d.partition,
            dead_letter_reason: d.dead_letter_reason,
            error: d.error,
            failed_at: d.failed_at,
            original_stream: d.original_stream,
            original_message_id: d.original_message_id,
            message_id: d.message_id,
            group: d.group,
            service_name: d.service_name,
            final_retry_count: d.final_retry_count,
            envelope: d.envelope,
            payload: d.payload,
            payload_bytes: d.payload_bytes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqPage {
    pub stream: String,
    /// Dead letters in the DLQ.
    pub total: u64,
    pub limit: i64,
    pub offset: i64,
    /// Oldest first.
    pub messages: Vec<DeadLetterView>,
}

/// A stream's dead letters, oldest first, payloads decoded to JSON (`limit` 1..=1000, default
/// 50; `offset`).
#[utoipa::path(get, path = "/streams/{name}/dlq/messages", tag = "dead letters", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name"), Page),
    responses(
        (status = 200, body = DlqPage),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn dlq_messages(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<DlqPage>, ApiError> {
    spec(&state, &name)?;
    let (limit, offset) = page.resolve(50)?;
    let total = inspect::dlq_length(&state.bus, &name).await?;
    let messages = if (offset as u64) < total {
        let letters = Dlq::new(&state.bus).list(&name, (offset + limit) as usize).await?;
        letters.into_iter().skip(offset as usize).map(DeadLetterView::from).collect()
    } else {
        Vec::new()
    };
    Ok(Json(DlqPage { stream: name, total, limit, offset, messages }))
}

/// Which dead letters to replay: exactly one of the three.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Dead-letter ids, `<partition>/<entry id>` as listed (1 to 1000).
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Option<Vec<String>>,
    /// `true`: every dead letter of the stream.
    pub all: Option<bool>,
    /// Those with this `dead_letter_reason`: `decode_error`, `max_deliveries`, `rejected`.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    pub stream: String,
    /// `ids`, `all` or `reason`.
    pub selector: &'static str,
    /// Dead letters put back on the stream (and removed from the DLQ).
    pub replayed: Vec<String>,
    /// Dead letters left in the DLQ, with why (e.g. no payload to replay).
    pub skipped: Vec<Skipped>,
    /// Requested ids that are not in the DLQ.
    pub not_found: Vec<String>,
    /// Dead letters left in the stream's DLQ.
    pub dlq_remaining: u64,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::unprocessable("invalid_body", format!("{field}: {message}"))
        .with_details(json!({ "field": field, "reason": message }))
}

/// Checks one dead-letter id as `Dlq::replay` parses it: `<partition>/<entry id>` with an
/// existing partition, or a bare entry id.
fn check_dlq_id(spec: &StreamSpec, field: &str, id: &str) -> Result<(), ApiError> {
    let entry = match id.split_once('/') {
        Some((p, e)) => {
            let p: u32 = p.parse().map_err(|_| invalid(field, format!("partition {p:?} is not a number")))?;
            if p >= spec.partitions {
                return Err(invalid(
                    field,
                    format!("stream {} has {} partition(s); partition {p} does not exist", spec.name, spec.partitions),
                ));
            }
            e
        }
        None => id,
    };
    if EntryId::parse(entry).is_none() {
        return Err(invalid(field, format!("{id:?} is not a dead-letter id (<partition>/<entry id>)")));
    }
    Ok(())
}

/// Puts dead letters back on their stream: `{"ids": [...]}`, `{"all": true}` or `{"reason":
/// "decode_error"}` — exactly one (422 naming the field otherwise). 404 when none of the
/// given ids is in the DLQ.
#[utoipa::path(post, path = "/streams/{name}/dlq/replay", tag = "dead letters", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name")),
    request_body = ReplayRequest,
    responses(
        (status = 200, body = ReplayResult),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn dlq_replay(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(name): Path<String>,
    Json(body): Json<ReplayRequest>,
) -> Result<Json<ReplayResult>, ApiError> {
    let s = spec(&state, &name)?.clone();
    let given = [body.ids.is_some(), body.all.is_some(), body.reason.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::unprocessable("invalid_body", "give exactly one of `ids`, `all`, `reason`")
            .with_details(json!({ "field": "ids|all|reason", "reason": "exactly one is required" })));
    }
    let dlq = Dlq::new(&state.bus);
    let mut result = ReplayResult {
        stream: name.clone(),
        selector: "ids",
        replayed: Vec::new(),
        skipped: Vec::new(),
        not_found: Vec::new(),
        dlq_remaining: 0,
    };
    if let Some(ids) = &body.ids {
        if ids.is_empty() || ids.len() > MAX_REPLAY_IDS {
            return Err(invalid("ids", format!("expected 1 to {MAX_REPLAY_IDS} ids, got {}", ids.len())));
        }
        for (i, id) in ids.iter().enumerate() {
            check_dlq_id(&s, &format!("ids[{i}]"), id)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            match dlq.replay(&name, &ReplaySelector::Id(id.clone())).await {
                Ok(r) => result.replayed.extend(r.replayed),
                Err(BusError::DeadLetterNotFound { .. }) => result.not_found.push(id.clone()),
                // Ambiguous bare id, or no payload to replay.
                Err(BusError::Invalid(reason)) => result.skipped.push(Skipped { id: id.clone(), reason }),
                Err(e) => return Err(e.into()),
            }
        }
        if result.replayed.is_empty() && result.skipped.is_empty() {
            return Err(ApiError::not_found("dead letter", &result.not_found.join(", "))
                .with_details(json!({ "resource": "dead letter", "stream": name, "ids": result.not_found })));
        }
    } else {
        let selector = match (body.all, &body.reason) {
            (Some(false), _) => return Err(invalid("all", "must be true (or give `ids` or `reason`)")),
            (Some(true), _) => {
                result.selector = "all";
                ReplaySelector::All
            }
            (None, r) => {
                let r = r.as_deref().unwrap_or_default();
                if !DLQ_REASONS.contains(&r) {
                    return Err(invalid("reason", format!("expected one of {DLQ_REASONS:?}, got {r:?}")));
                }
                result.selector = "reason";
                ReplaySelector::Reason(r.to_string())
            }
        };
        let r = dlq.replay(&name, &selector).await?;
        result.replayed = r.replayed;
        result.skipped = r.skipped.into_iter().map(|(id, reason)| Skipped { id, reason }).collect();
    }
    result.dlq_remaining = inspect::dlq_length(&state.bus, &name).await?;
    let details = json!({
        "selector": result.selector,
        "ids": body.ids,
        "reason": body.reason,
        "replayed": result.replayed.len(),
        "skipped": result.skipped.len(),
        "not_found": result.not_found.len(),
    });
    state.audit(&meta.caller(who), "dlq.replay", &format!("/streams/{name}/dlq"), "ok", details).await?;
    Ok(Json(result))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    pub stream: String,
    /// Dead letters deleted.
    pub purged: u64,
}

/// Deletes every dead letter of a stream (admin).
#[utoipa::path(delete, path = "/streams/{name}/dlq", tag = "dead letters", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "logical stream name")),
    responses(
        (status = 200, body = PurgeResult),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn dlq_purge(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    Path(name): Path<String>,
) -> Result<Json<PurgeResult>, ApiError> {
    spec(&state, &name)?;
    let purged = Dlq::new(&state.bus).purge(&name).await?;
    state
        .audit(&meta.caller(who), "dlq.purge", &format!("/streams/{name}/dlq"), "ok", json!({ "purged": purged }))
        .await?;
    Ok(Json(PurgeResult { stream: name, purged }))
}
