//! Ratings of learned models' signals on SQLite (a temp file) and PostgreSQL: a signal found by
//! id or by its candle, only the model's own, one rating per user and signal (a second
//! replaces the first), counted since a time.

use tradeflow_audit::query::model_feedback::{FeedbackCounts, NewModelFeedback};
use tradeflow_audit::{AuditStore, Row, SignalRow};
use tradeflow_testkit::postgres::TestPostgres;

fn signal(t: i64, model: &str, action: &str) -> Row {
    Row::Signal(SignalRow {
        id: format!("csv:BTCUSD:1h:{t}/{model}"),
        candle_id: format!("csv:BTCUSD:1h:{t}"),
        symbol: "BTCUSD".into(),
        interval: "1h".into(),
        open_time: t,
        model: model.into(),
        model_kind: "ml".into(),
        action: action.into(),
        confidence: 0.6,
        status: "ok".into(),
        error: None,
        reasoning: String::new(),
        scores: r#"{"p_up":0.6,"version":3}"#.into(),
        features: "{}".into(),
        market: "{}".into(),
        stop_loss: None,
        take_profit: None,
        latency_us: 3,
    })
}

async fn feedback(url: &str) {
    let store = AuditStore::connect(url).await.unwrap();
    store
        .write(&[signal(0, "ml:trend", "long"), signal(3_600_000, "ml:trend", "short"), signal(0, "rsi", "long")])
        .await
        .unwrap();
    let s0 = store.model_signal("ml:trend", "csv:BTCUSD:1h:0/ml:trend").await.unwrap().unwrap();
    assert_eq!(
        (s0.symbol.as_str(), s0.interval.as_str(), s0.open_time, s0.action.as_str()),
        ("BTCUSD", "1h", 0, "long")
    );
    assert!(s0.scores.contains("\"version\":3"));
    // Another model's signal is not this model's.
    assert_eq!(store.model_signal("ml:trend", "csv:BTCUSD:1h:0/rsi").await.unwrap(), None);
    let at = store.model_signals_at("ml:trend", "BTCUSD", "1h", 3_600_000).await.unwrap();
    assert_eq!(at.iter().map(|s| s.action.as_str()).collect::<Vec<_>>(), ["short"]);
    assert!(store.model_signals_at("ml:trend", "BTCUSD", "4h", 0).await.unwrap().is_empty());
    let s1 = at[0].clone();

    assert_eq!(store.model_feedback_counts("trend", 0).await.unwrap(), FeedbackCounts::default());
    let rate = |signal, rating, by, at| NewModelFeedback {
        name: "trend",
        version: 3,
        signal,
        rating,
        comment: Some("late"),
        created_by: by,
        created_at: at,
    };
    assert!(!store.upsert_model_feedback(&rate(&s0, "good", "ann", 100)).await.unwrap());
    assert!(!store.upsert_model_feedback(&rate(&s0, "bad", "bob", 110)).await.unwrap());
    assert!(!store.upsert_model_feedback(&rate(&s1, "good", "ann", 120)).await.unwrap());
    // Ann changes her mind about s0: replaced, not added.
    assert!(store.upsert_model_feedback(&rate(&s0, "bad", "ann", 130)).await.unwrap());
    assert_eq!(
        store.model_feedback_counts("trend", 0).await.unwrap(),
        FeedbackCounts { good: 1, bad: 2, signals: 2, last_at: Some(130) }
    );
    assert_eq!(
        store.model_feedback_counts("trend", 115).await.unwrap(),
        FeedbackCounts { good: 1, bad: 1, signals: 2, last_at: Some(130) }
    );
    assert_eq!(store.model_feedback_counts("other", 0).await.unwrap(), FeedbackCounts::default());
    store.close().await;
}

#[tokio::test]
async fn sqlite_model_feedback() {
    let dir = tempfile::tempdir().unwrap();
    feedback(&format!("sqlite://{}/f.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_model_feedback() {
    let pg = TestPostgres::start();
    feedback(&pg.url()).await;
}
