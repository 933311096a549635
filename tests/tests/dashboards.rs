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

/// The datasource uid provisioned in grafana/provisioning/datasources/prometheus.yml.
const DATASOURCE_UID: &str = "prometheus";

/// Every dashboard is Grafana dashboard JSON that provisioning loads as it is: a unique uid, a
/// schemaVersion, unique panel ids, the datasource named by uid (a name breaks when the
/// datasource is renamed), and every panel that shows data has a unit and a description (what
/// an operator reads in the panel's tooltip).
#[test]
fn dashboards_are_valid_grafana_json_with_units_and_descriptions() {
    let provisioned =
        std::fs::read_to_string(Path::new(ROOT).join("grafana/provisioning/datasources/prometheus.yml")).unwrap();
    assert!(
        provisioned.contains(&format!("uid: {DATASOURCE_UID}")),
        "the datasource uid the dashboards use is provisioned"
    );
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files += 1;
        let dash: serde_json::Value = match serde_json::from_str(&std::fs::read_to_string(&path).unwrap()) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        let mut bad = |what: String| problems.push(format!("{name}: {what}"));
        match dash["uid"].as_str() {
            Some(uid) if !uid.is_empty() => {
                if !uids.insert(uid.to_string()) {
                    bad(format!("uid {uid} is used by another dashboard"));
                }
            }
            _ => bad("no uid".into()),
        }
        if dash["title"].as_str().is_none_or(str::is_empty) {
            bad("no title".into());
        }
        if dash["schemaVersion"].as_u64().is_none_or(|v| v < 30) {
            bad(format!("schemaVersion {} (an integer, 30 or later)", dash["schemaVersion"]));
        }
        let mut panels = Vec::new();
        flatten(&dash["panels"], &mut panels);
        if panels.is_empty() {
            bad("no panels".into());
        }
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("(untitled)");
            let Some(id) = p["id"].as_u64() else {
                bad(format!("panel {title:?} has no integer id"));
                continue;
            };
            if !ids.insert(id) {
                bad(format!("panel id {id} ({title:?}) is not unique"));
            }
            if p["type"] == "row" {
                continue;
            }
            let panel = format!("panel {id} {title:?}");
            if p["datasource"]["uid"] != DATASOURCE_UID {
                bad(format!("{panel}: datasource {} is not {{\"uid\": \"{DATASOURCE_UID}\"}}", p["datasource"]));
            }
            if p["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                bad(format!("{panel}: no description"));
            }
            if p["fieldConfig"]["defaults"]["unit"].as_str().is_none_or(str::is_empty) {
                bad(format!("{panel}: no unit (fieldConfig.defaults.unit)"));
            }
            let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            if targets.is_empty() {
                bad(format!("{panel}: no targets"));
            }
            for t in targets {
                if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                    bad(format!("{panel}: target {} has no expr", t["refId"]));
                }
                if !t["datasource"].is_null() && t["datasource"]["uid"] != DATASOURCE_UID {
                    bad(format!("{panel}: target {} datasource {} is not by uid", t["refId"], t["datasource"]));
                }
            }
        }
        for v in dash["templating"]["list"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if v["type"] == "query" && v["datasource"]["uid"] != DATASOURCE_UID {
                bad(format!("variable {}: datasource {} is not by uid", v["name"], v["datasource"]));
            }
        }
    }
    assert!(files >= 5, "dashboards were read ({files})");
    assert!(problems.is_empty(), "dashboards:\n{}", problems.join("\n"));
}

/// Panels and the panels of rows, in order.
fn flatten<'a>(panels: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    for p in panels.as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(p);
        flatten(&p["panels"], out);
    }
}
