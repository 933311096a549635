//! `tradeflow bench jobs`: the job system's latencies on a private Redis and SQLite store, a
//! jobs worker and an audit writer in this process.
//! - start: a request's submission (`submitted_at`) to its start (`started_at` in the store),
//!   jobs submitted one after another (each waits for the previous to end);
//! - events: a `jobs.events` message's `at` (the worker publishing it) to its arrival on a tap,
//!   over every event of those jobs and of a hyperopt that reports progress;
//! - cancel: a `cancel_task` command sent to the job being `cancelled` in the store, for a
//!   running hyperopt.
//!
//! Times are the store's and the events' millisecond clocks (one machine): a figure below a
//! millisecond reads as 0 or 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::control::send_command;
use tradeflow_bus::tap::{From, Tap};
use tradeflow_bus::{Bus, BusMetrics, Producer};
use tradeflow_core::Payload;
use tradeflow_core::control::{Command, ControlCommand};
use tradeflow_core::job::{JobEvent, JobKind, JobRequest};
use tradeflow_core::time::now_ms;

use crate::config::Settings;

#[derive(Args)]
pub struct JobsBenchArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Backtest jobs submitted one after another (the start latency's samples).
    #[arg(long, default_value_t = 50)]
    jobs: usize,
    /// Cancels measured (each of a running hyperopt).
    #[arg(long, default_value_t = 5)]
    cancels: usize,
}

/// A short backtest: the SMA crossover over the demo feed's first 300 hours.
fn small_backtest() -> serde_json::Value {
    json!({"strategy": "sma_cross", "to": "1499985600000"})
}

/// A search long enough to be cancelled while it reports progress.
fn long_search(trials: usize) -> serde_json::Value {
    json!({
        "backtest": {"strategy": "sma_cross"},
        "space": "[param]\n\"rules.sma_cross.fast\" = { int = [3, 40] }\n\"rules.sma_cross.slow\" = { int = [41, 120] }\n",
        "method": "random",
        "trials": trials,
        "jobs": 1,
    })
}

fn percentiles(mut v: Vec<f64>) -> serde_json::Value {
    if v.is_empty() {
        return json!({"n": 0, "p50": null, "p95": null, "p99": null, "max": null, "reason": "no samples"});
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"n": v.len(), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": v[v.len() - 1]})
}

pub async fn run(settings: &Settings, args: &JobsBenchArgs) -> anyhow::Result<()> {
    let (url, _port, _server) = crate::bench::bench_redis(settings).await?;
    let topology = settings.topology.clone().with_namespace(&format!("benchjobs{}", std::process::id()))?;
    let bus = Bus::connect(&url, topology).await?;
    bus.init().await?;
    let dir = tempfile::Builder::new().prefix("tradeflow-bench-jobs-").tempdir()?;
    let store = crate::stages::audit_store(&format!("sqlite://{}", dir.path().join("jobs.db").display())).await?;
    let registry = prometheus::Registry::new();
    let bus_metrics = BusMetrics::register(&registry)?;
    let stop = CancellationToken::new();
    let worker = {
        let setup = crate::jobs::Setup {
            threads: Some(1),
            member_name: Some("bench-jobs".into()),
            ..crate::jobs::Setup::for_up(settings.jobs.clone(), dir.path())
        };
        let (bus, registry, bus_metrics, store, stop) =
            (bus.clone(), registry.clone(), bus_metrics.clone(), store.clone(), stop.clone());
        tokio::spawn(async move { crate::jobs::run(&bus, &registry, &bus_metrics, store, setup, stop).await })
    };
    let audit = {
        let (bus, registry, bus_metrics, store, stop) =
            (bus.clone(), registry.clone(), bus_metrics.clone(), store.clone(), stop.clone());
        tokio::spawn(async move { crate::stages::run_audit(&bus, &registry, &bus_metrics, store, None, stop).await })
    };
    let mut tap = Tap::open(&bus, &["jobs.events"], From::Now, Duration::from_millis(100)).await?;
    let events: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    let reader = {
        let (events, stop) = (events.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(batch) = tap.next().await else { continue };
                let now = now_ms();
                for t in batch {
                    if t.envelope.kind == JobEvent::KIND
                        && let Ok(e) = t.envelope.open::<JobEvent>()
                    {
                        events.lock().unwrap_or_else(|e| e.into_inner()).push((now - e.at) as f64);
                    }
                }
            }
        })
    };
    let producer = Producer::new(bus.clone(), "bench");
    let submit = |kind: JobKind, params: serde_json::Value| {
        let now = now_ms();
        JobRequest {
            task_id: JobRequest::new_task_id(now),
            kind,
            params: params.to_string(),
            submitted_by: "bench".into(),
            role: "admin".into(),
            submitted_at: now,
            submission: 1,
        }
    };
    let wait_state = |id: String, states: &'static [&'static str], within: Duration| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            loop {
                if let Some(j) = store.job(&id).await?
                    && states.contains(&j.state.as_str())
                {
                    return Ok::<_, anyhow::Error>(j);
                }
                anyhow::ensure!(started.elapsed() < within, "job {id} not {states:?} within {within:?}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };

    let mut starts = Vec::new();
    let mut runs = Vec::new();
    let wall = Instant::now();
    for i in 0..args.jobs {
        let r = submit(JobKind::Backtest, small_backtest());
        producer.publish("jobs.requests", &r.message_id(), &r.task_id, None, &r).await?;
        let j = wait_state(r.task_id.clone(), &["succeeded", "failed", "cancelled"], Duration::from_secs(120)).await?;
        anyhow::ensure!(j.state == "succeeded", "backtest job {i} {}: {:?}", j.state, j.error);
        let started = j.started_at.context("a finished job without started_at")?;
        starts.push((started - r.submitted_at) as f64);
        runs.push((j.finished_at.unwrap_or(started) - started) as f64);
        if !args.json && (i + 1) % 10 == 0 {
            eprintln!("bench jobs: {} backtest jobs done", i + 1);
        }
    }
    let jobs_per_s = args.jobs as f64 / wall.elapsed().as_secs_f64().max(1e-9);

    let mut cancels = Vec::new();
    for _ in 0..args.cancels {
        let r = submit(JobKind::Hyperopt, long_search(5_000));
        producer.publish("jobs.requests", &r.message_id(), &r.task_id, None, &r).await?;
        let started = Instant::now();
        loop {
            let j = store.job(&r.task_id).await?;
            if j.as_ref().is_some_and(|j| j.progress.unwrap_or(0.0) > 0.0) {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the search did not report progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = Instant::now();
        let c = ControlCommand::new(Command::CancelTask { task: r.task_id.clone() }, "bench", None, now_ms());
        send_command(&producer, &c).await?;
        wait_state(r.task_id.clone(), &["cancelled"], Duration::from_secs(30)).await?;
        cancels.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    // The last events' arrival.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    worker.await.context("jobs worker")??;
    audit.await.context("audit writer")??;
    let _ = reader.await;
    let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
    let report = json!({
        "jobs": args.jobs,
        "backtest_jobs_per_s": jobs_per_s,
        "start_latency_ms": percentiles(starts),
        "backtest_run_ms": percentiles(runs),
        "event_latency_ms": percentiles(events),
        "cancel_latency_ms": percentiles(cancels),
        "store": "sqlite",
    });
    if args.json {
        println!("{report}");
    } else {
        eprintln!("{}", serde_json::to_string_pretty(&report)?);
    }
    store.close().await;
    Ok(())
}
