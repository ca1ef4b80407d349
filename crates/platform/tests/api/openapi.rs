use std::collections::BTreeSet;

use spedy_platform::routes::{Route, routes};

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("reading docs/openapi.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("openapi.yaml is YAML");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true),
        "OpenAPI 3.1"
    );
    let paths = doc["paths"].as_mapping().expect("a `paths` mapping");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings");
        let item = item.as_mapping().expect("a path item is a mapping");
        for (key, _) in item {
            let key = key.as_str().expect("keys are strings");
            if METHODS.contains(&key) {
                out.insert((key.to_uppercase(), path.to_owned()));
            } else {
                assert!(
                    ["parameters", "summary", "description"].contains(&key),
                    "unexpected key {key} under {path}"
                );
            }
        }
    }
    out
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|Route { method, path }| (method.to_owned(), path.to_owned()))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in docs/openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn the_route_table_has_no_duplicates() {
    let all = routes();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), unique.len());
}
