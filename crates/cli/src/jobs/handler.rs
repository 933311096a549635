//! The jobs worker's bus handler: one job per delivery of `jobs.requests`.
//!
//! A job holds its request unacknowledged while it runs, so the bus's guarantees are the job's:
//! a worker that dies mid-job loses its partition lease, the next owner claims the request and
//! runs the job again (`attempt + 1`); a job that keeps failing is dead-lettered. The work runs
//! on a blocking thread; this task meanwhile samples its progress (at most two reports a
//! second), watches for a cancel, a timeout or a shutdown, and records every state change in the
//! store (conditional updates, so a superseded attempt changes nothing) and on `jobs.events`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use tradeflow_audit::AuditStore;
use tradeflow_bus::{DecodeError, Delivery, EnvelopeRef, Handler, HandlerFactory, Outcome, Producer};
use tradeflow_core::control::ControlState;
use tradeflow_core::job::{JobEvent, JobKind, JobProgress, JobRequest, JobState};
use tradeflow_core::time::now_ms;

use super::config::JobsConfig;
use super::kinds::{self, Context, Failure, Output};
use super::progress::{Pace, REPORT_EVERY, Reporter};

pub const STREAM: &str = "jobs.requests";
pub const EVENTS: &str = "jobs.events";
pub const GROUP: &str = "jobs";

/// How a job attempt ends, as `tradeflow_jobs_total` counts it.
pub const OUTCOMES: [&str; 6] = ["succeeded", "cancelled", "timeout", "retried", "dead_lettered", "interrupted"];

/// `tradeflow_job*` metrics.
#[derive(Clone)]
pub struct JobMetrics {
    /// kind, outcome (succeeded, failed, cancelled, timeout, retried, dead_lettered).
    pub jobs: IntCounterVec,
    pub seconds: HistogramVec,
    pub running: IntGaugeVec,
    /// Jobs waiting to start, as the store counts them.
    pub queued: IntGauge,
    /// Submission → running, as this worker saw it.
    pub start_latency: Histogram,
}

impl JobMetrics {
    pub fn register(registry: &Registry) -> Result<JobMetrics, prometheus::Error> {
        let jobs = IntCounterVec::new(
            Opts::new(
                "tradeflow_jobs_total",
                "Job attempts ended, by kind and outcome (succeeded, cancelled, timeout, retried, dead_lettered, interrupted)",
            ),
            &["kind", "outcome"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new("tradeflow_job_seconds", "Run time of job attempts, by kind")
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
            &["kind"],
        )?;
        let running =
            IntGaugeVec::new(Opts::new("tradeflow_jobs_running", "Jobs running in this worker, by kind"), &["kind"])?;
        let queued = IntGauge::new("tradeflow_jobs_queued", "Jobs waiting to start (all workers, from the store)")?;
        let start_latency = Histogram::with_opts(
            HistogramOpts::new("tradeflow_job_start_latency_seconds", "Submission to start of a job's first attempt")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]),
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(running.clone()))?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(start_latency.clone()))?;
        // Every series from 0, so that dashboards and rates see them before the first job.
        for kind in JobKind::ALL {
            running.with_label_values(&[kind.name()]);
            seconds.with_label_values(&[kind.name()]);
            for outcome in OUTCOMES {
                jobs.with_label_values(&[kind.name(), outcome]);
            }
        }
        Ok(JobMetrics { jobs, seconds, running, queued, start_latency })
    }
}

/// What every partition's handler shares.
pub struct Shared {
    pub store: Arc<AuditStore>,
    pub producer: Producer,
    pub config: JobsConfig,
    pub control: watch::Receiver<ControlState>,
    pub metrics: JobMetrics,
    /// The worker's member name, recorded on each job it runs.
    pub worker: String,
    pub threads: usize,
    /// The demo feed, default profiles and datasets directory jobs run with.
    pub defaults: tradeflow_backtest::params::Defaults,
    /// Binance's REST client settings (downloads).
    pub binance: tradeflow_datasets::BinanceConfig,
    /// Cancelled when the process stops: a running job is interrupted and left to the next
    /// owner of its request.
    pub shutdown: CancellationToken,
}

pub struct JobsFactory(pub Arc<Shared>);

impl HandlerFactory for JobsFactory {
    type Handler = JobsHandler;

    fn create(&self, _partition: u32, _restored: Option<&[u8]>) -> Result<JobsHandler, String> {
        Ok(JobsHandler { sh: self.0.clone() })
    }
}

pub struct JobsHandler {
    sh: Arc<Shared>,
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StopReason {
    Cancelled,
    Timeout,
    Shutdown,
}

impl Handler for JobsHandler {
    type Msg = JobRequest;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<JobRequest, DecodeError> {
        envelope.open::<JobRequest>()
    }

    async fn handle(&mut self, d: &Delivery<JobRequest>) -> Outcome {
        let span = info_span!("job", task = %d.msg.task_id, kind = d.msg.kind.name(), delivery = d.deliveries);
        self.run_job(d).instrument(span).await
    }
}

impl JobsHandler {
    async fn run_job(&self, d: &Delivery<JobRequest>) -> Outcome {
        let sh = &self.sh;
        let req = &d.msg;
        let kind = req.kind.name();
        let limits = sh.config.limits(req.kind);
        if sh.control.borrow().cancels(&req.task_id, req.submitted_at) {
            // Cancelled before it started (or while a crashed attempt held it).
            if let Err(e) = sh.store.cancel_held_job(&req.task_id, now_ms()).await {
                return Outcome::Retry(format!("job store: {e}"));
            }
            info!("cancelled before it started");
            return Outcome::Done;
        }
        if d.deliveries > limits.max_attempts {
            // The attempts before this one all died with their worker (nothing recorded their
            // end): give up.
            let error = format!("gave up after {} attempts: each one's worker stopped or crashed", limits.max_attempts);
            return self.give_up(req, None, &error).await;
        }
        let attempt = match sh.store.start_job(req, &sh.worker, now_ms()).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                info!("not started: cancelled or finished already");
                return Outcome::Done;
            }
            Err(e) => return Outcome::Retry(format!("job store: {e}")),
        };
        if d.deliveries == 1 && req.submission == 1 {
            sh.metrics.start_latency.observe((now_ms() - req.submitted_at).max(0) as f64 / 1000.0);
        }
        let mut events = Events { sh, req, attempt: attempt as u32, seq: 0 };
        events.send(JobState::Running, None, None, None).await;
        info!(attempt, "job started");
        let running = sh.metrics.running.with_label_values(&[kind]);
        running.inc();
        let started = Instant::now();
        let outcome = self.supervise(req, attempt, limits.timeout(), &mut events).await;
        running.dec();
        sh.metrics.seconds.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        let now = now_ms();
        match outcome {
            Ok(output) => {
                if let Err(e) = sh
                    .store
                    .put_job_result(&req.task_id, kind, &output.result, output.report_html.as_deref(), now)
                    .await
                {
                    return self.retry_or_give_up(d, attempt, &format!("storing the result: {e}"), &mut events).await;
                }
                let summary = output.summary.to_string();
                self.end(attempt, JobState::Succeeded, None, Some(&summary), "succeeded", &mut events).await
            }
            Err((Failure::Stopped, StopReason::Cancelled)) => {
                self.end(attempt, JobState::Cancelled, Some("cancelled"), None, "cancelled", &mut events).await
            }
            Err((Failure::Stopped, StopReason::Timeout)) => {
                let error = format!("timeout: still running after {} s", limits.timeout_s);
                self.end(attempt, JobState::Failed, Some(&error), None, "timeout", &mut events).await
            }
            Err((Failure::Stopped, StopReason::Shutdown)) => {
                // Back to the queue: the next owner of the request resumes it (attempt + 1).
                let _ = sh.store.finish_job(&req.task_id, attempt, "queued", Some("worker stopped"), None, now).await;
                events
                    .send(JobState::Queued, None, Some("worker stopped; the job will be run again".into()), None)
                    .await;
                sh.metrics.jobs.with_label_values(&[kind, "interrupted"]).inc();
                Outcome::Retry("worker stopped".into())
            }
            Err((Failure::Invalid(error), _)) => {
                let error = format!("invalid parameters: {error}");
                self.give_up(req, Some((attempt, &mut events)), &error).await
            }
            Err((Failure::Failed(error), _)) => self.retry_or_give_up(d, attempt, &error, &mut events).await,
        }
    }

    /// Runs the work on a blocking thread until it ends, reporting its progress and stopping
    /// it on a cancel, at its timeout or at shutdown.
    async fn supervise(
        &self,
        req: &JobRequest,
        attempt: i64,
        timeout: std::time::Duration,
        events: &mut Events<'_>,
    ) -> Result<Output, (Failure, StopReason)> {
        let sh = &self.sh;
        let stop = Arc::new(AtomicBool::new(false));
        let (reporter, mut ticks) = Reporter::channel();
        let work = {
            let (stop, kind, params, threads) = (stop.clone(), req.kind, req.params.clone(), sh.threads);
            let (shared, actor) = (self.sh.clone(), req.submitted_by.clone());
            let runtime = tokio::runtime::Handle::current();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let ctx = Context {
                    stop: &stop,
                    progress: reporter,
                    threads,
                    defaults: &shared.defaults,
                    binance: &shared.binance,
                    runtime,
                    store: &shared.store,
                    actor: &actor,
                };
                // A panic in the work is this attempt's failure, not the worker's.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kinds::run(kind, &params, &ctx)))
                    .unwrap_or_else(|p| Err(Failure::Failed(format!("the job panicked: {}", panic_text(&p)))))
            })
        };
        tokio::pin!(work);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut control = sh.control.clone();
        let mut reason = None;
        let mut pace = Pace::new(Instant::now());
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop_as = |why: StopReason, reason: &mut Option<StopReason>| {
            if reason.is_none() {
                *reason = Some(why);
                stop.store(true, Ordering::Relaxed);
            }
        };
        let result = loop {
            tokio::select! {
                r = &mut work => break r.unwrap_or_else(|e| Err(Failure::Failed(format!("the job's thread failed: {e}")))),
                _ = every.tick() => {
                    if ticks.has_changed().unwrap_or(false) {
                        let tick = ticks.borrow_and_update().clone();
                        let p = pace.progress(&tick, Instant::now());
                        if let Err(e) = sh.store.job_progress(&req.task_id, attempt, p.fraction, &p.step, p.eta_s, now_ms()).await {
                            warn!(error = %e, "progress not stored");
                        }
                        events.send(JobState::Running, Some(p), None, None).await;
                    }
                }
                changed = control.changed() => {
                    if changed.is_ok() && control.borrow_and_update().cancels(&req.task_id, req.submitted_at) {
                        stop_as(StopReason::Cancelled, &mut reason);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if reason.is_none() => stop_as(StopReason::Timeout, &mut reason),
                _ = sh.shutdown.cancelled(), if reason.is_none() => stop_as(StopReason::Shutdown, &mut reason),
            }
        };
        match (result, reason) {
            (Err(Failure::Stopped), Some(why)) => Err((Failure::Stopped, why)),
            (Err(Failure::Stopped), None) => {
                Err((Failure::Failed("stopped without a reason".into()), StopReason::Shutdown))
            }
            (Err(f), r) => Err((f, r.unwrap_or(StopReason::Shutdown))),
            // Finished just as it was asked to stop: a finished job stays finished.
            (Ok(o), _) => Ok(o),
        }
    }

    /// A failed attempt: retried after the stream's backoff while attempts remain, else
    /// failed for good and dead-lettered.
    async fn retry_or_give_up(
        &self,
        d: &Delivery<JobRequest>,
        attempt: i64,
        error: &str,
        events: &mut Events<'_>,
    ) -> Outcome {
        let sh = &self.sh;
        let limits = sh.config.limits(d.msg.kind);
        if d.deliveries >= limits.max_attempts {
            let error = format!("failed {} times; last: {error}", limits.max_attempts);
            return self.give_up(&d.msg, Some((attempt, events)), &error).await;
        }
        warn!(error, attempt, "job attempt failed; it will be retried");
        if let Err(e) = sh.store.finish_job(&d.msg.task_id, attempt, "queued", Some(error), None, now_ms()).await {
            warn!(error = %e, "job state not stored");
        }
        events.send(JobState::Queued, None, Some(error.to_string()), None).await;
        sh.metrics.jobs.with_label_values(&[d.msg.kind.name(), "retried"]).inc();
        Outcome::Retry(error.to_string())
    }

    /// Fails the job for good; its request goes to the DLQ with `error`.
    async fn give_up(&self, req: &JobRequest, running: Option<(i64, &mut Events<'_>)>, error: &str) -> Outcome {
        let sh = &self.sh;
        match running {
            Some((attempt, events)) => {
                if let Err(e) = sh.store.finish_job(&req.task_id, attempt, "failed", Some(error), None, now_ms()).await
                {
                    return Outcome::Retry(format!("job store: {e}"));
                }
                events.send(JobState::Failed, None, Some(error.to_string()), None).await;
            }
            None => {
                // Not started by this worker: the row is `running` under a dead attempt.
                match sh.store.job(&req.task_id).await {
                    Ok(Some(job)) if job.state == "running" || job.state == "queued" => {
                        let attempt = job.attempt;
                        if let Err(e) =
                            sh.store.finish_job(&req.task_id, attempt, "failed", Some(error), None, now_ms()).await
                        {
                            return Outcome::Retry(format!("job store: {e}"));
                        }
                        let mut events = Events { sh, req, attempt: attempt as u32, seq: 1_000_000 };
                        events.send(JobState::Failed, None, Some(error.to_string()), None).await;
                    }
                    Ok(_) => {}
                    Err(e) => return Outcome::Retry(format!("job store: {e}")),
                }
            }
        }
        warn!(error, "job failed for good; its request goes to the DLQ");
        sh.metrics.jobs.with_label_values(&[req.kind.name(), "dead_lettered"]).inc();
        Outcome::Reject(error.to_string())
    }

    async fn end(
        &self,
        attempt: i64,
        state: JobState,
        error: Option<&str>,
        summary: Option<&str>,
        outcome: &str,
        events: &mut Events<'_>,
    ) -> Outcome {
        let sh = &self.sh;
        let req = events.req;
        match sh.store.finish_job(&req.task_id, attempt, state.name(), error, summary, now_ms()).await {
            Ok(true) => {}
            // Another worker took the job over (this one had lost its lease): its run counts.
            Ok(false) => {
                warn!(attempt, "the job is no longer this attempt's; its end is not recorded");
                return Outcome::Done;
            }
            Err(e) => return Outcome::Retry(format!("job store: {e}")),
        }
        events.send(state, None, error.map(str::to_string), summary.map(str::to_string)).await;
        sh.metrics.jobs.with_label_values(&[req.kind.name(), outcome]).inc();
        info!(state = state.name(), "job ended");
        Outcome::Done
    }
}

/// Publishes one attempt's events on `jobs.events`, numbered.
struct Events<'a> {
    sh: &'a Shared,
    req: &'a JobRequest,
    attempt: u32,
    seq: u64,
}

impl Events<'_> {
    async fn send(
        &mut self,
        state: JobState,
        progress: Option<JobProgress>,
        error: Option<String>,
        summary: Option<String>,
    ) {
        self.seq += 1;
        let e = JobEvent {
            task_id: self.req.task_id.clone(),
            kind: self.req.kind,
            attempt: self.attempt,
            state,
            progress,
            error,
            summary,
            worker: self.sh.worker.clone(),
            at: now_ms(),
            seq: self.seq,
        };
        // Watchers miss an event if Redis is down; the store has the state regardless.
        if let Err(err) = self.sh.producer.publish(EVENTS, &e.message_id(), &e.task_id, None, &e).await {
            warn!(error = %err, "job event not published");
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
