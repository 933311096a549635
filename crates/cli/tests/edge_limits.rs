//! Rate limits and the body limit against a running pipeline: headers counting down, 429 with
//! Retry-After in the error format once the allowance is spent, classes limited apart,
//! oversized bodies refused with 413.

mod edge_common;

use edge_common::{Edge, Options};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits() {
    let edge = Edge::start_with(Options {
        read_per_minute: 20,
        auth_per_minute: 5,
        body_limit_bytes: 4096,
        ..Options::default()
    })
    .await;
    // `start` spent three logins of the auth allowance.

    // Reads: the remaining allowance counts down, then 429.
    let mut last = u64::MAX;
    let mut refused = None;
    for _ in 0..25 {
        let r = edge.get("/api/v1/auth/me", Some(&edge.viewer)).await;
        assert_eq!(r.headers["x-ratelimit-limit"], "20");
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        let remaining: u64 = r.headers["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        assert!(remaining < last, "remaining {remaining} after {last}");
        last = remaining;
    }
    let refused = refused.expect("the 21st read within a minute is refused");
    let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "one read comes back every 3 s: retry after {retry}");
    assert_eq!(refused.headers["x-ratelimit-remaining"], "0");
    let body = refused.expect_error(429, "rate_limited");
    assert_eq!(body["error"]["details"]["limit_per_minute"], 20);

    // Probes are never limited; the write class has its own allowance.
    edge.get("/health", None).await.expect(200);
    edge.post("/api/v1/scheduler/pause", Some(&edge.trader), None).await.expect(200);

    // Logins: two left of five, then 429 even with the right password.
    let login = json!({"username": "admin", "password": edge_common::ADMIN_PASSWORD});
    edge.post("/api/v1/auth/login", None, Some(login.clone())).await.expect(200);
    edge.post("/api/v1/auth/login", None, Some(login.clone())).await.expect(200);
    edge.post("/api/v1/auth/login", None, Some(login)).await.expect_error(429, "rate_limited");

    // A body over the limit: 413 in the error format (the write allowance is not spent yet).
    let big = "x".repeat(10_000);
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"symbol": big})))
        .await
        .expect_error(413, "payload_too_large");
}
