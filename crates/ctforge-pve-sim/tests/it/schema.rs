//! The simulator's routes and parameters checked against the official PVE 9.1
//! API schema (`../shared/pve-api/pve-api-schema.json`).

use std::collections::BTreeSet;

use ctforge_pve_sim::routes::ROUTES;
use ctforge_pve_sim::validate::{KNOWN_FORMATS, SCHEMA_SUBSET_JSON, strip_param_schema};
use serde_json::{Map, Value, json};

/// The official schema: `CTFORGE_PVE_SCHEMA`, else `../shared/pve-api/` beside the checkout,
/// else the machine's shared folder (`/work/shared`). The build never needs it; these tests do.
fn schema_path() -> String {
    let candidates = [
        std::env::var("CTFORGE_PVE_SCHEMA").unwrap_or_default(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/pve-api/pve-api-schema.json"
        )
        .to_owned(),
        "/work/shared/pve-api/pve-api-schema.json".to_owned(),
    ];
    candidates
        .into_iter()
        .find(|p| !p.is_empty() && std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("the official PVE API schema is missing: set CTFORGE_PVE_SCHEMA to pve-api-schema.json"))
}

fn official() -> Vec<Value> {
    let text = std::fs::read_to_string(schema_path()).expect("official schema readable");
    let v: Value = serde_json::from_str(&text).expect("official schema parses");
    let mut out = Vec::new();
    fn walk(n: &Value, out: &mut Vec<Value>) {
        out.push(n.clone());
        if let Some(ch) = n.get("children").and_then(Value::as_array) {
            for c in ch {
                walk(c, out);
            }
        }
    }
    for n in v.as_array().expect("array") {
        walk(n, &mut out);
    }
    out
}

fn official_method(nodes: &[Value], path: &str, method: &str) -> Option<Value> {
    nodes
        .iter()
        .find(|n| n.get("path").and_then(Value::as_str) == Some(path))
        .and_then(|n| n.get("info"))
        .and_then(|i| i.get(method))
        .cloned()
}

fn subset_entry(info: &Value) -> Value {
    let props = info
        .get("parameters")
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let stripped: Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), strip_param_schema(v)))
        .collect();
    json!({
        "parameters": {"properties": stripped},
        "proxyto": info.get("proxyto").cloned().unwrap_or(Value::Null),
        "allowtoken": info.get("allowtoken").cloned().unwrap_or(json!(1)),
    })
}

fn build_subset(nodes: &[Value]) -> Value {
    let mut m = Map::new();
    for r in ROUTES {
        let info = official_method(nodes, r.path, r.method)
            .unwrap_or_else(|| panic!("{} {} not in the official schema", r.method, r.path));
        m.insert(format!("{} {}", r.method, r.path), subset_entry(&info));
    }
    Value::Object(m)
}

/// Regenerate `src/schema_subset.json` (run with `--ignored` after changing ROUTES).
#[test]
#[ignore]
fn regenerate_schema_subset() {
    let nodes = official();
    let v = build_subset(&nodes);
    let text = serde_json::to_string_pretty(&v).expect("serialize");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema_subset.json");
    std::fs::write(path, text + "\n").expect("write subset");
}

#[test]
fn every_served_route_exists_in_official_schema() {
    let nodes = official();
    let mut seen = BTreeSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method, r.path)),
            "duplicate route {} {}",
            r.method,
            r.path
        );
        assert!(
            official_method(&nodes, r.path, r.method).is_some(),
            "{} {} is served but not in the official schema",
            r.method,
            r.path
        );
    }
    assert!(ROUTES.len() >= 45, "expected the full route table");
}

#[test]
fn every_accepted_parameter_is_documented_exactly() {
    // The validator accepts exactly the parameters of the embedded subset; the
    // subset must equal the official schema (stripped of descriptions).
    let nodes = official();
    let expected = build_subset(&nodes);
    let embedded: Value = serde_json::from_str(SCHEMA_SUBSET_JSON).expect("embedded subset parses");
    let (e, x) = (
        embedded.as_object().expect("obj"),
        expected.as_object().expect("obj"),
    );
    assert_eq!(
        e.keys().collect::<Vec<_>>(),
        x.keys().collect::<Vec<_>>(),
        "route set drifted: regenerate"
    );
    for (k, v) in x {
        assert_eq!(
            e.get(k),
            Some(v),
            "schema subset drifted for {k}: run the ignored regenerate test"
        );
        let props = v["parameters"]["properties"].as_object().expect("props");
        for (name, p) in props {
            assert!(
                p.get("type").is_some()
                    || p.get("format").is_some()
                    || p.get("enum").is_some()
                    || p.as_object().map(|o| !o.is_empty()).unwrap_or(false),
                "{k} {name}: undocumented type"
            );
        }
    }
}

#[test]
fn every_format_used_is_implemented() {
    let embedded: Value = serde_json::from_str(SCHEMA_SUBSET_JSON).expect("parses");
    let mut missing = BTreeSet::new();
    fn scan(v: &Value, missing: &mut BTreeSet<String>) {
        if let Some(o) = v.as_object() {
            for (k, val) in o {
                if k == "format"
                    && let Some(f) = val.as_str()
                    && !KNOWN_FORMATS.contains(&f)
                {
                    missing.insert(f.to_string());
                }
                scan(val, missing);
            }
        }
    }
    scan(&embedded, &mut missing);
    assert!(
        missing.is_empty(),
        "formats without a validator: {missing:?}"
    );
}

#[test]
fn path_params_are_documented_parameters() {
    let embedded: Value = serde_json::from_str(SCHEMA_SUBSET_JSON).expect("parses");
    for r in ROUTES {
        let props = &embedded[format!("{} {}", r.method, r.path)]["parameters"]["properties"];
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    props.get(name).is_some(),
                    "{} {}: path param {name} undocumented",
                    r.method,
                    r.path
                );
            }
        }
    }
}
