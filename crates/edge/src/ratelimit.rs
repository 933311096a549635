//! Rate limits per route class and client address (GCRA, the `governor` crate).
//!
//! Classes: `auth` (`POST /api/v1/auth/login`: slows password guessing), `write` (any method but
//! GET/HEAD/OPTIONS), `read` (the rest) and `probe` (`/health`, `/ready`, `/metrics`: they need
//! no credentials, so an allowance of their own per address keeps them from being a free way
//! to load Redis and the database; the default, 600 a minute, is far above what an
//! orchestrator and Prometheus send). Every limited API response carries `X-RateLimit-Limit`
//! (per minute), `X-RateLimit-Remaining` (what may be sent at once now) and
//! `X-RateLimit-Reset` (seconds until the allowance is whole again); probe answers carry them
//! only when refused. A refusal is 429 with `Retry-After` in the error format.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitConfig;
use crate::error::ApiError;
use crate::request_id::ClientIp;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
    Auth,
    Probe,
}

struct Limiter {
    per_minute: u32,
    keyed: Keyed,
}

impl Limiter {
    fn new(per_minute: u32) -> Limiter {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter { per_minute: n.get(), keyed: RateLimiter::keyed(Quota::per_minute(n)).with_middleware() }
    }

    /// Seconds one unit of allowance takes to come back.
    fn replenish_s(&self) -> f64 {
        60.0 / self.per_minute as f64
    }
}

/// The limiters of the three classes.
pub struct RateLimits {
    read: Limiter,
    write: Limiter,
    auth: Limiter,
    probe: Limiter,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            read: Limiter::new(config.read_per_minute),
            write: Limiter::new(config.write_per_minute),
            auth: Limiter::new(config.auth_per_minute),
            probe: Limiter::new(config.probe_per_minute),
            clock: DefaultClock::default(),
        })
    }

    fn limiter(&self, class: Class) -> &Limiter {
        match class {
            Class::Read => &self.read,
            Class::Write => &self.write,
            Class::Auth => &self.auth,
            Class::Probe => &self.probe,
        }
    }

    /// Forgets callers whose allowance is whole again (keeps memory bounded).
    pub fn forget_idle(&self) {
        for l in [&self.read, &self.write, &self.auth, &self.probe] {
            l.keyed.retain_recent();
            l.keyed.shrink_to_fit();
        }
    }
}

pub fn classify(method: &Method, path: &str) -> Class {
    if matches!(path, "/health" | "/ready" | "/metrics") {
        return Class::Probe;
    }
    if path == "/api/v1/auth/login" {
        return Class::Auth;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) { Class::Read } else { Class::Write }
}

fn set(response: &mut Response, name: &'static str, value: u64) {
    response.headers_mut().insert(name, HeaderValue::from(value));
}

/// Middleware: checks the caller's allowance for the route class.
pub async fn limit(State(limits): State<Arc<RateLimits>>, request: Request, next: Next) -> Response {
    let class = classify(request.method(), request.uri().path());
    let ip = request.extensions().get::<ClientIp>().map(|c| c.0).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let limiter = limits.limiter(class);
    match limiter.keyed.check_key(&ip) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity() as u64;
            let used = (limiter.per_minute as u64).saturating_sub(remaining);
            let reset = (used as f64 * limiter.replenish_s()).ceil() as u64;
            let mut response = next.run(request).await;
            if class == Class::Probe {
                return response;
            }
            set(&mut response, "x-ratelimit-limit", limiter.per_minute as u64);
            set(&mut response, "x-ratelimit-remaining", remaining);
            set(&mut response, "x-ratelimit-reset", reset);
            response
        }
        Err(not_until) => {
            let wait: Duration = not_until.wait_time_from(limits.clock.now());
            let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = ApiError::rate_limited(limiter.per_minute, retry).into_response();
            set(&mut response, "x-ratelimit-limit", limiter.per_minute as u64);
            set(&mut response, "x-ratelimit-remaining", 0);
            set(&mut response, "x-ratelimit-reset", (limiter.per_minute as f64 * limiter.replenish_s()).ceil() as u64);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(&Method::GET, "/health"), Class::Probe);
        assert_eq!(classify(&Method::GET, "/ready"), Class::Probe);
        assert_eq!(classify(&Method::GET, "/metrics"), Class::Probe);
        assert_eq!(classify(&Method::POST, "/api/v1/auth/login"), Class::Auth);
        assert_eq!(classify(&Method::GET, "/api/v1/streams"), Class::Read);
        assert_eq!(classify(&Method::GET, "/api/v1/auth/me"), Class::Read);
        assert_eq!(classify(&Method::DELETE, "/api/v1/streams/x/dlq"), Class::Write);
    }

    #[test]
    fn allowance_runs_out_per_address() {
        let limits = RateLimits::new(&RateLimitConfig {
            read_per_minute: 3,
            write_per_minute: 1,
            auth_per_minute: 1,
            probe_per_minute: 2,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let l = limits.limiter(Class::Read);
        let left: Vec<u32> = (0..3).map(|_| l.keyed.check_key(&a).unwrap().remaining_burst_capacity()).collect();
        assert_eq!(left, [2, 1, 0]);
        assert!(l.keyed.check_key(&a).is_err());
        assert!(l.keyed.check_key(&b).is_ok(), "another address has its own allowance");
        assert!(limits.limiter(Class::Write).keyed.check_key(&a).is_ok(), "classes are separate");
        let probe = limits.limiter(Class::Probe);
        assert!(probe.keyed.check_key(&a).is_ok() && probe.keyed.check_key(&a).is_ok());
        assert!(probe.keyed.check_key(&a).is_err(), "probes have an allowance too");
    }
}
