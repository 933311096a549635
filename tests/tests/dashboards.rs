//! Every metric a Grafana dashboard queries is one the code registers: a renamed metric must
//! not leave a panel silently empty.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("tradeflow_"))
}

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn dashboards_query_only_registered_metrics() {
    let mut code = String::new();
    sources(&Path::new(ROOT).join("crates"), &mut code);
    // Registered names appear as string literals; histograms also export _bucket/_sum/_count.
    let registered: BTreeSet<&str> = code
        .split('"')
        .filter(|s| s.starts_with("tradeflow_") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    assert!(registered.contains("tradeflow_bus_acked_total"), "the scan finds registered metrics");
    let mut missing = BTreeSet::new();
    let mut queried = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for w in words(&text) {
            queried += 1;
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| w.strip_suffix(s)).unwrap_or(w);
            if !registered.contains(w) && !registered.contains(base) {
                missing.insert(format!("{}: {w}", path.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    assert!(queried > 10, "dashboards were read");
    assert!(missing.is_empty(), "dashboards query metrics nobody registers: {missing:?}");
}
