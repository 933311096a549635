//! What the OpenAPI document says beyond each handler's own annotation: the refusals that the
//! shared layers and extractors give on every route, and what a query string can carry. A
//! client generated from the document (and `scripts/api-contract.sh`, schemathesis) must find
//! every status it can get documented, and every request the document allows accepted.
//!
//! Added to an operation when its annotation does not list them already:
//! - `429` on every route but the probes (the rate limiter, [`crate::ratelimit`]);
//! - `401`/`403` on routes that name a security scheme (the role extractors, [`crate::auth`]);
//! - `400` on routes with parameters (the `Query`/`Path` extractors, [`crate::error`]);
//! - `400`, `413`, `415`, `422` on routes with a body (malformed JSON, the body limit, a
//!   missing `Content-Type`, a body of the wrong shape).
//!
//! Parameters: a query string cannot carry JSON `null`, so an optional query parameter is
//! "absent or a value", not nullable; an integer parameter states its type's bounds (a value
//! past them cannot be parsed and is refused).

use serde_json::{Map, Value, json};

/// The probes: outside the rate limiter and without credentials.
const PROBES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Completes `doc` in place (see the module's comment).
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    // The document is ours and always serialises; the round trip through JSON keeps this
    // module independent of utoipa's typed builders.
    let mut value = serde_json::to_value(&*doc).expect("the OpenAPI document serialises");
    if let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut() {
                if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete")
                    && let Some(op) = op.as_object_mut()
                {
                    complete_operation(path, op);
                }
            }
        }
    }
    *doc = serde_json::from_value(value).expect("the completed OpenAPI document deserialises");
}

fn complete_operation(path: &str, op: &mut Map<String, Value>) {
    let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let has_params = op.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
    let has_body = op.contains_key("requestBody");
    let mut add: Vec<(&str, &str)> = Vec::new();
    if !PROBES.contains(&path) {
        add.push(("429", "rate limited: `Retry-After` says when to try again"));
    }
    if secured {
        add.push(("401", "no credentials, or credentials that are not valid"));
        add.push(("403", "the caller's role may not do this"));
    }
    if has_params || has_body {
        add.push(("400", "a parameter or the body cannot be parsed or is out of range"));
    }
    if has_body {
        add.push(("413", "the body is larger than the edge's `body_limit_bytes`"));
        add.push(("415", "the body is not `Content-Type: application/json`"));
        add.push(("422", "the body has the wrong shape, or a field fails its check"));
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    if let Some(responses) = responses.as_object_mut() {
        for (status, description) in add {
            responses.entry(status).or_insert_with(|| {
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
                })
            });
        }
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for param in params {
            let query = param.get("in").and_then(Value::as_str) == Some("query");
            if let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) {
                if query {
                    not_nullable(schema);
                }
                integer_bounds(schema);
            }
        }
    }
}

/// `type: [T, "null"]` → `type: T`.
fn not_nullable(schema: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            schema.insert("type".into(), only);
        }
    }
}

/// The bounds an integer of the schema's `format` can take, where the schema states none.
fn integer_bounds(schema: &mut Map<String, Value>) {
    if schema.get("type").and_then(Value::as_str) != Some("integer") {
        return;
    }
    let (min, max) = match schema.get("format").and_then(Value::as_str) {
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("uint64") => (json!(0), json!(u64::MAX)),
        Some("uint32") => (json!(0), json!(u32::MAX)),
        _ => return,
    };
    schema.entry("minimum").or_insert(min);
    schema.entry("maximum").or_insert(max);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_documents_the_shared_refusals() {
        let (_, doc) = crate::routes();
        let v = serde_json::to_value(&doc).unwrap();
        let mut checked = 0;
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else { continue };
                checked += 1;
                if !PROBES.contains(&path.as_str()) {
                    assert!(responses.contains_key("429"), "{method} {path}: no 429");
                }
                if op.get("requestBody").is_some() {
                    for s in ["400", "413", "415", "422"] {
                        assert!(responses.contains_key(s), "{method} {path}: no {s}");
                    }
                }
                for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
                    if p["in"] == "query" {
                        assert!(!p["schema"]["type"].is_array(), "{method} {path}: nullable query {p}");
                    }
                }
            }
        }
        assert!(checked > 50, "only {checked} operations");
    }

    /// utoipa keys component schemas by the type's name and keeps the last one registered:
    /// two types of one name would make one route's schema lie (it did: `Performance`).
    #[test]
    fn schema_names_are_unique() {
        let mut seen: std::collections::BTreeMap<String, String> = Default::default();
        let mut dups = Vec::new();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![src];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let mut derives_schema = false;
                for line in text.lines() {
                    let line = line.trim();
                    if line.starts_with("#[derive(") && line.contains("ToSchema") {
                        derives_schema = true;
                    } else if line.starts_with("#[schema(as") {
                        derives_schema = false;
                    } else if derives_schema
                        && let Some(rest) = line.strip_prefix("pub struct ").or_else(|| line.strip_prefix("pub enum "))
                    {
                        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if let Some(first) = seen.insert(name.clone(), path.display().to_string()) {
                            dups.push(format!("{name}: {first} and {}", path.display()));
                        }
                        derives_schema = false;
                    }
                }
            }
        }
        assert!(dups.is_empty(), "schema names used twice: {dups:?}");
        assert!(seen.len() > 50, "found only {} schemas", seen.len());
    }

    #[test]
    fn an_optional_query_integer_is_bounded_and_not_nullable() {
        let mut schema = json!({ "type": ["integer", "null"], "format": "int64", "minimum": 1 });
        let s = schema.as_object_mut().unwrap();
        not_nullable(s);
        integer_bounds(s);
        assert_eq!(schema, json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX }));
    }
}
