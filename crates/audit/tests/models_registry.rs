//! The model registry on SQLite (a temp file) and PostgreSQL: versions numbered per name,
//! files read back intact, one deployed version per name, rollback to the one before.

use tradeflow_audit::AuditStore;
use tradeflow_audit::query::models::{Deployment, NewModelVersion};
use tradeflow_testkit::postgres::TestPostgres;

fn version<'a>(name: &'a str, bytes: &'a [u8], accuracy: Option<f64>) -> NewModelVersion<'a> {
    NewModelVersion {
        name,
        family: "gbt",
        parameters: r#"{"iterations":200}"#,
        feature_schema: "candle-features v1",
        feature_hash: "abc",
        train_from: 1,
        train_to: 2,
        test_from: 3,
        test_to: 4,
        test_accuracy: accuracy,
        metrics: "{}",
        created_by: "tester",
        created_at: 1000,
        bytes,
    }
}

async fn registry(url: &str) {
    let store = AuditStore::connect(url).await.unwrap();
    let file: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    assert_eq!(store.insert_model_version(&version("trend", &file, Some(0.7))).await.unwrap(), 1);
    assert_eq!(store.insert_model_version(&version("trend", b"two", None)).await.unwrap(), 2);
    assert_eq!(store.insert_model_version(&version("other", b"x", None)).await.unwrap(), 1);
    assert_eq!(store.insert_model_version(&version("trend", b"three", None)).await.unwrap(), 3);
    assert_eq!(store.model_file("trend", 1).await.unwrap(), Some(file));
    assert_eq!(store.model_file("trend", 9).await.unwrap(), None);
    let listed = store.model_versions(Some("trend")).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| (v.version, v.state.as_str())).collect::<Vec<_>>(),
        [(1, "trained"), (2, "trained"), (3, "trained")]
    );
    assert_eq!(listed[0].test_accuracy, Some(0.7));
    assert_eq!(listed[0].size_bytes, 5000);
    assert_eq!(store.model_versions(None).await.unwrap().len(), 4);

    assert_eq!(store.deploy_model("trend", 9, "op", false, 10).await.unwrap(), None);
    let d = store.deploy_model("trend", 1, "op", false, 10).await.unwrap();
    assert_eq!(d, Some(Deployment { previous: None, deployed: 1 }));
    let d = store.deploy_model("trend", 2, "admin", true, 20).await.unwrap();
    assert_eq!(d, Some(Deployment { previous: Some(1), deployed: 2 }));
    let states = |rows: Vec<tradeflow_audit::query::models::ModelVersionRow>| {
        rows.into_iter().map(|v| (v.version, v.state, v.forced)).collect::<Vec<_>>()
    };
    assert_eq!(
        states(store.model_versions(Some("trend")).await.unwrap()),
        [(1, "retired".into(), false), (2, "deployed".into(), true), (3, "trained".into(), false)]
    );
    assert_eq!(store.deployed_models().await.unwrap(), [("trend".to_string(), 2)]);
    assert_eq!(store.rollback_target("trend").await.unwrap(), Some(1));
    assert_eq!(store.rollback_target("other").await.unwrap(), None);
    let d = store.deploy_model("trend", 1, "op", false, 30).await.unwrap();
    assert_eq!(d, Some(Deployment { previous: Some(2), deployed: 1 }));
    assert_eq!(store.deployed_of("trend").await.unwrap(), Some(1));
    assert_eq!(store.deployed_of("other").await.unwrap(), None);
    let v1 = store.model_version("trend", 1).await.unwrap().unwrap();
    assert_eq!((v1.deployed_at, v1.deployed_by.as_deref()), (Some(30), Some("op")));
    store.close().await;
}

#[tokio::test]
async fn sqlite_registry() {
    let dir = tempfile::tempdir().unwrap();
    registry(&format!("sqlite://{}/r.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_registry() {
    let pg = TestPostgres::start();
    registry(&pg.url()).await;
}
