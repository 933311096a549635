//! Broken streams.toml files: every problem is named with its key path, all at once.

use tradeflow_bus::topology::{Topology, TopologyError};

fn problems(file: &str) -> Vec<String> {
    let path = format!("{}/tests/topologies/{file}", env!("CARGO_MANIFEST_DIR"));
    match Topology::load(&path) {
        Ok(_) => panic!("{file} should be refused"),
        Err(e) => {
            let list: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
            // The error's own text lists each problem too.
            for p in &list {
                assert!(e.to_string().contains(p.as_str()), "{e}");
            }
            list
        }
    }
}

#[test]
fn zero_partitions_is_named_with_its_key_path() {
    assert_eq!(
        problems("zero_partitions.toml"),
        vec![r#"streams."inf.signals".partitions: must be at least 1, got 0"#]
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let got = problems("many_problems.toml");
    let expected = [
        r#"colour: unknown key; expected one of: namespace, fleet, defaults, streams, groups"#,
        r#"namespace: "has space" contains ' '; use only letters, digits, '.', '_' and '-'"#,
        r#"fleet.lease_ttl_ms: must be at least twice fleet.heartbeat_ms (1000), got 1500; a lease would expire between two renewals"#,
        r#"defaults.max_deliveries: must be at least 1, got 0"#,
        r#"streams."bad{name}": "bad{name}" contains '{'; use only letters, digits, '.', '_' and '-'"#,
        r#"streams."bad{name}".groups: must list at least one consumer group"#,
        r#"streams."md.candles".description: missing; say what the stream carries"#,
        r#"streams."md.candles".groups[1]: group "inference" is listed twice"#,
        r#"streams."md.candles".partitions: expected an integer, got a string"#,
        r#"streams."md.candles".retry_backoff_max_ms: must be at least retry_backoff_ms (5000), got 100"#,
    ];
    for e in expected {
        assert!(got.iter().any(|g| g == e), "missing problem {e:?} in:\n{}", got.join("\n"));
    }
    assert_eq!(got.len(), expected.len(), "unexpected extra problems:\n{}", got.join("\n"));
}

#[test]
fn a_file_without_streams_says_so() {
    assert_eq!(problems("no_streams.toml"), vec!["streams: missing; define at least one stream"]);
}

#[test]
fn wrong_value_types_are_named() {
    let got = problems("wrong_types.toml");
    assert!(got.contains(&r#"streams."a".description: expected a string, got an integer"#.to_string()), "{got:?}");
    assert!(got.contains(&r#"streams."a".groups: expected an array of strings, got a string"#.to_string()), "{got:?}");
    assert!(got.contains(&r#"streams."a".maxlen: must be at least 1, got -5"#.to_string()), "{got:?}");
    assert!(got.contains(&r#"streams."a".claim_idle_ms: expected an integer, got a float"#.to_string()), "{got:?}");
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let path = format!("{}/tests/topologies/syntax.toml", env!("CARGO_MANIFEST_DIR"));
    let err = Topology::load(&path).unwrap_err();
    assert!(matches!(err, TopologyError::Syntax { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("syntax.toml") && text.contains("line 1"), "{text}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Topology::load("/nonexistent/streams.toml").unwrap_err();
    assert!(err.to_string().starts_with("cannot read /nonexistent/streams.toml"), "{err}");
}
