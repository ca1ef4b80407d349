use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{App, job_spec};

async fn claim(app: &App, token: &str, wait_s: u64) -> Option<Value> {
    let a = app
        .runner(
            token,
            Method::POST,
            "/runners/jobs/claim",
            json!({"wait_s": wait_s}),
        )
        .await;
    match a.status {
        StatusCode::OK => Some(a.json["job"].clone()),
        StatusCode::NO_CONTENT => None,
        other => panic!("claim answered {other}: {a:?}"),
    }
}

async fn get(app: &App, id: &str) -> Value {
    let a = app
        .admin(Method::GET, &format!("/jobs/{id}"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    a.json
}

#[tokio::test]
async fn a_claim_with_nothing_queued_answers_204() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    assert!(claim(&app, &token, 0).await.is_none());
}

#[tokio::test]
async fn a_claimed_job_carries_its_spec_and_becomes_running() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let spec = json!({
        "image": "img:1", "command": null, "env": {"MODE": "fast"},
        "repo": {"url": "https://github.com/o/r", "provider": "github"},
        "scope": "project:p1", "timeout_s": 30
    });
    let id = app.enqueue(spec).await;
    assert!(id.starts_with("job_"));
    assert_eq!(get(&app, &id).await["status"], "queued");
    let job = claim(&app, &token, 0).await.unwrap();
    assert_eq!(job["id"], id);
    assert_eq!(job["image"], "img:1");
    assert!(job["command"].is_null());
    assert_eq!(job["env"]["MODE"], "fast");
    assert_eq!(job["repo"]["provider"], "github");
    assert_eq!(job["scope"], "project:p1");
    assert_eq!(job["timeout_s"], 30);
    assert_eq!(get(&app, &id).await["status"], "running");
    assert!(claim(&app, &token, 0).await.is_none(), "taken once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_claim_wakes_at_once_when_a_job_is_enqueued() {
    let app = Arc::new(App::with(|c| c.max_claim_wait_s = 20));
    let (_, token) = app.create_runner("local_claude").await;
    let waiter = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let job = claim(&app, &token, 20).await;
            (job, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = app.enqueue(job_spec()).await;
    let (job, waited) = waiter.await.unwrap();
    assert_eq!(job.expect("the waiting claim got the job")["id"], id);
    // Not a speed check: 20 s would mean it only saw the job at its deadline.
    assert!(waited < Duration::from_secs(15), "{waited:?}");
}

#[tokio::test]
async fn a_claim_waits_no_longer_than_the_platforms_cap() {
    let app = App::with(|c| c.max_claim_wait_s = 0);
    let (_, token) = app.create_runner("local_claude").await;
    assert!(claim(&app, &token, 3600).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claims_at_once_against_ten_jobs_give_each_job_to_exactly_one_claimer() {
    let app = Arc::new(App::new());
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(app.create_runner("local_claude").await.1);
    }
    let mut ids = HashSet::new();
    for _ in 0..10 {
        ids.insert(app.enqueue(job_spec()).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = Arc::clone(&app);
        let token = tokens[i % tokens.len()].clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            claim(&app, &token, 1).await
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(job) = t.await.unwrap() {
            claimed.push(job["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(claimed.len(), 10, "{claimed:?}");
    let unique: HashSet<String> = claimed.into_iter().collect();
    assert_eq!(unique, ids);
}

#[tokio::test]
async fn logs_posted_twice_with_the_same_seq_are_stored_once_in_seq_order() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let id = app.enqueue(job_spec()).await;
    claim(&app, &token, 0).await.unwrap();
    let path = format!("/runners/jobs/{id}/logs");
    let post =
        |seq: u64, text: &str| json!({"seq": seq, "chunks": [{"stream": "stdout", "text": text}]});
    for (seq, text) in [
        (0, "one\n"),
        (2, "three\n"),
        (1, "two\n"),
        (1, "DUPLICATE\n"),
    ] {
        let a = app
            .runner(&token, Method::POST, &path, post(seq, text))
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    }
    let a = app
        .runner(
            &token,
            Method::POST,
            &path,
            json!({"seq": 3, "chunks": [
                {"stream": "stdout", "text": "a"}, {"stream": "stderr", "text": "b\n"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, &id).await["log"], "one\ntwo\nthree\nab\n");
}

#[tokio::test]
async fn complete_called_twice_keeps_the_first_result() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let id = app.enqueue(job_spec()).await;
    claim(&app, &token, 0).await.unwrap();
    let path = format!("/runners/jobs/{id}/complete");
    let first = json!({"status": "failed", "exit_code": 3, "duration_ms": 1200,
                       "error": null, "usage": {"input_tokens": 10}});
    let second = json!({"status": "succeeded", "exit_code": 0, "duration_ms": 5,
                        "error": null, "usage": null});
    for body in [first, second] {
        let a = app.runner(&token, Method::POST, &path, body).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    }
    let view = get(&app, &id).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["exit_code"], 3);
    assert_eq!(view["usage"]["input_tokens"], 10);
    assert!(view["error"].is_null());
}

#[tokio::test]
async fn heartbeat_answers_cancel_after_an_admin_cancels_a_running_job() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let id = app.enqueue(job_spec()).await;
    claim(&app, &token, 0).await.unwrap();
    let hb = format!("/runners/jobs/{id}/heartbeat");
    let a = app.runner(&token, Method::POST, &hb, Value::Null).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json, json!({"cancel": false}));
    let a = app
        .admin(Method::POST, &format!("/jobs/{id}/cancel"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, &id).await["status"],
        "running",
        "until the runner reports"
    );
    let a = app.runner(&token, Method::POST, &hb, Value::Null).await;
    assert_eq!(a.json, json!({"cancel": true}));
    let done = json!({"status": "cancelled", "exit_code": null, "duration_ms": 10, "error": null});
    app.runner(
        &token,
        Method::POST,
        &format!("/runners/jobs/{id}/complete"),
        done,
    )
    .await;
    assert_eq!(get(&app, &id).await["status"], "cancelled");
}

#[tokio::test]
async fn cancelling_a_queued_job_finishes_it_at_once_and_no_runner_gets_it() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let id = app.enqueue(job_spec()).await;
    let a = app
        .admin(Method::POST, &format!("/jobs/{id}/cancel"), Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, &id).await["status"], "cancelled");
    assert!(claim(&app, &token, 0).await.is_none());
    let a = app
        .admin(Method::POST, "/jobs/job_unknown/cancel", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_runner_may_only_touch_the_jobs_it_claimed() {
    let app = App::new();
    let (_, mine) = app.create_runner("local_claude").await;
    let (_, other) = app.create_runner("local_claude").await;
    let queued = app.enqueue(job_spec()).await;
    let id = app.enqueue(job_spec()).await;
    // FIFO: the first claim takes the first job.
    let first = claim(&app, &mine, 0).await.unwrap();
    assert_eq!(first["id"], queued);
    let second = claim(&app, &mine, 0).await.unwrap();
    assert_eq!(second["id"], id);
    let logs = json!({"seq": 0, "chunks": [{"stream": "stdout", "text": "x"}]});
    let done = json!({"status": "succeeded", "exit_code": 0, "duration_ms": 1, "error": null});
    for (path, body) in [
        (format!("/runners/jobs/{id}/logs"), logs.clone()),
        (format!("/runners/jobs/{id}/heartbeat"), Value::Null),
        (format!("/runners/jobs/{id}/complete"), done.clone()),
    ] {
        let a = app.runner(&other, Method::POST, &path, body.clone()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {a:?}");
        assert_eq!(a.code(), "forbidden");
        let unknown = path.replace(&id, "job_doesnotexist");
        let a = app.runner(&mine, Method::POST, &unknown, body).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{unknown}: {a:?}");
        assert_eq!(a.code(), "not_found");
    }
    assert_eq!(get(&app, &id).await["status"], "running", "nothing changed");
    assert_eq!(get(&app, &id).await["log"], "");
}

#[tokio::test]
async fn getting_an_unknown_job_answers_404() {
    let app = App::new();
    let a = app.admin(Method::GET, "/jobs/job_nope", Value::Null).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
}
