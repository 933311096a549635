//! LLM usage of every process, so that any edge can report what the whole pipeline spends.
//!
//! Each process that runs LLM analysts (`worker inference`, `tradeflow up`, an edge's
//! on-demand analyses) publishes its `tradeflow_llm_*` counters, every
//! [`PUBLISH_EVERY`] and once more when it stops, as one field of the Redis hash
//! `<namespace>:{edge}:llm_usage`: the field is the process (`host:pid:start`), the value its
//! [`ProcessUsage`] as JSON. The counters are cumulative over the process's life, so the sum of
//! the fields is what was spent since the hash began; a process that stopped keeps its field
//! (its spending happened). `GET /ai/cost/statistics` adds them up, with this process's own
//! counters read live.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::proto::MetricFamily;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tradeflow_bus::Bus;
use utoipa::ToSchema;

/// How often a process publishes its counters.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// One analyst's counters in one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnalystUsage {
    /// Requests (and analyses made without one) by outcome.
    pub requests: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// HTTP requests timed, and the sum of their durations.
    pub http_requests: u64,
    pub request_seconds_sum: f64,
}

impl AnalystUsage {
    pub fn add(&mut self, other: &AnalystUsage) {
        for (k, v) in &other.requests {
            *self.requests.entry(k.clone()).or_default() += v;
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
        self.http_requests += other.http_requests;
        self.request_seconds_sum += other.request_seconds_sum;
    }
}

/// What one process published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessUsage {
    /// `host:pid:start` (start in epoch ms).
    pub process: String,
    /// When it published this (epoch ms).
    pub updated_at: i64,
    pub analysts: BTreeMap<String, AnalystUsage>,
}

impl ProcessUsage {
    pub fn cost_usd(&self) -> f64 {
        self.analysts.values().map(|a| a.cost_usd).sum()
    }
}

/// This process's name in the hash.
pub fn process_id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        format!("{host}:{}:{}", std::process::id(), tradeflow_core::time::now_ms())
    });
    &ID
}

/// The hash's key.
pub fn key(bus: &Bus) -> String {
    format!("{}:{{edge}}:llm_usage", bus.keys().namespace())
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value()).unwrap_or("")
}

/// The `tradeflow_llm_*` counters of `families`, per analyst.
pub fn collect(families: &[MetricFamily]) -> BTreeMap<String, AnalystUsage> {
    let mut by: BTreeMap<String, AnalystUsage> = BTreeMap::new();
    for family in families {
        let name = family.name();
        if !name.starts_with("tradeflow_llm_") {
            continue;
        }
        for m in family.get_metric() {
            let a = by.entry(label(m, "analyst").to_string()).or_default();
            match name {
                "tradeflow_llm_requests_total" => {
                    *a.requests.entry(label(m, "outcome").into()).or_default() += m.get_counter().get_value() as u64;
                }
                "tradeflow_llm_tokens_total" => match label(m, "kind") {
                    "input" => a.input_tokens += m.get_counter().get_value() as u64,
                    "output" => a.output_tokens += m.get_counter().get_value() as u64,
                    _ => {}
                },
                "tradeflow_llm_cost_usd_total" => a.cost_usd += m.get_counter().get_value(),
                "tradeflow_llm_request_seconds" => {
                    a.http_requests += m.get_histogram().get_sample_count();
                    a.request_seconds_sum += m.get_histogram().get_sample_sum();
                }
                _ => {}
            }
        }
    }
    by
}

/// Writes this process's counters (nothing when it has no analyst).
pub async fn publish(bus: &Bus, analysts: BTreeMap<String, AnalystUsage>) -> Result<(), redis::RedisError> {
    if analysts.is_empty() {
        return Ok(());
    }
    let usage = ProcessUsage { process: process_id().into(), updated_at: tradeflow_core::time::now_ms(), analysts };
    let json = serde_json::to_string(&usage).unwrap_or_default();
    redis::cmd("HSET").arg(key(bus)).arg(process_id()).arg(json).query_async::<()>(&mut bus.conn()).await
}

/// What every process published (fields that do not parse are skipped).
pub async fn read_all(bus: &Bus) -> Result<Vec<ProcessUsage>, redis::RedisError> {
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL").arg(key(bus)).query_async(&mut bus.conn()).await?;
    Ok(fields.values().filter_map(|v| serde_json::from_str(v).ok()).collect())
}

/// Publishes `gather()`'s counters every [`PUBLISH_EVERY`] until `stop`, then once more.
pub async fn run_publisher(bus: Bus, gather: impl Fn() -> Vec<MetricFamily> + Send, stop: CancellationToken) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! { _ = stop.cancelled() => true, _ = every.tick() => false };
        if let Err(e) = publish(&bus, collect(&gather())).await {
            tracing::debug!(error = %e, "LLM usage not published; retrying at the next tick");
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_collected_per_analyst() {
        let registry = prometheus::Registry::new();
        let m = tradeflow_inference::llm::LlmMetrics::register(&registry).unwrap();
        m.tokens.with_label_values(&["gpt", "input"]).inc_by(1000);
        m.tokens.with_label_values(&["gpt", "output"]).inc_by(10);
        m.cost_usd.with_label_values(&["gpt"]).inc_by(0.25);
        m.requests.with_label_values(&["gpt", "ok"]).inc_by(3);
        m.request_seconds.with_label_values(&["gpt"]).observe(0.5);
        let by = collect(&registry.gather());
        let gpt = &by["gpt"];
        assert_eq!((gpt.input_tokens, gpt.output_tokens, gpt.requests["ok"], gpt.http_requests), (1000, 10, 3, 1));
        assert!((gpt.cost_usd - 0.25).abs() < 1e-12 && (gpt.request_seconds_sum - 0.5).abs() < 1e-12);
        let mut sum = gpt.clone();
        sum.add(gpt);
        assert_eq!((sum.input_tokens, sum.requests["ok"]), (2000, 6));
    }
}
