use axum::http::{Method, StatusCode};
use spedy_platform::routes::routes;

use crate::common::App;

/// Bodies a careless or hostile caller might send.
fn garbage_bodies() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"null".to_vec(),
        b"{}".to_vec(),
        b"[]".to_vec(),
        b"\"string\"".to_vec(),
        b"{\"seq\": 18446744073709551615, \"chunks\": []}".to_vec(),
        b"{\"wait_s\": 1e400}".to_vec(),
        b"{\"duration_ms\": -1, \"status\": \"succeeded\"}".to_vec(),
        "[".repeat(10_000).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{\"value\": \"\\ud800\"}".to_vec(),
        b"{\"name\": \"\", \"pool_size\": 4294967296, \"backend\": \"anthropic_api\"}".to_vec(),
    ]
}

/// Path parameters that are odd but routable.
fn odd_params() -> Vec<&'static str> {
    vec!["x", "%FF%FE", "%00", "..", "job_%20", "a%2Fb", "ÄÖÜ"]
}

#[tokio::test]
async fn no_route_answers_a_server_error_to_garbage_from_either_kind_of_token() {
    let app = App::new();
    let (_, runner) = app.create_runner("local_claude").await;
    let admin = app.admin.clone();
    let mut checked = 0;
    for route in routes() {
        let method: Method = route.method.parse().unwrap();
        let paths: Vec<String> = if route.path.contains('{') {
            odd_params()
                .into_iter()
                .map(|p| {
                    let start = route.path.find('{').unwrap();
                    let end = route.path.find('}').unwrap();
                    format!("{}{p}{}", &route.path[..start], &route.path[end + 1..])
                })
                .collect()
        } else {
            vec![route.path.to_owned()]
        };
        for path in &paths {
            for token in [None, Some(admin.as_str()), Some(runner.as_str())] {
                for body in garbage_bodies() {
                    let a = app.raw(method.clone(), path, token, body).await;
                    assert!(!a.status.is_server_error(), "{method} {path}: {a:?}");
                    if a.status != StatusCode::OK && a.status != StatusCode::NO_CONTENT {
                        assert!(
                            a.json["error"]["code"].is_string() || a.status.is_success(),
                            "{method} {path} answered {} without the error body",
                            a.status
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
