//! The client against a server that breaks the contract. Each bad answer is
//! its own test; each asserts the typed error, its class (transient or
//! fatal) and that its text says what happened.

use std::time::{Duration, Instant};

use spedy_client::{Client, Error, RunnerApi};

use crate::broken::{Broken, Reply, answer, json};

pub const TOKEN: &str = "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij";

/// A runner handle with a read timeout generous enough for a loaded
/// machine: only the timeout tests use a short one.
pub fn runner(server: &Broken) -> RunnerApi {
    runner_with_read_timeout(server, Duration::from_secs(10))
}

/// A runner handle whose read timeout is 300 ms, for the timeout tests.
fn impatient_runner(server: &Broken) -> RunnerApi {
    runner_with_read_timeout(server, Duration::from_millis(300))
}

fn runner_with_read_timeout(server: &Broken, read: Duration) -> RunnerApi {
    let client = Client::builder(&server.url())
        .read_timeout(read)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client.runner(TOKEN.parse().unwrap())
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn garbage_json_from_bootstrap_is_a_transient_protocol_error() {
    let server = Broken::start(json("200 OK", "{\"runner\": garbage")).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains("POST /runners/bootstrap"), "{text}");
    assert!(text.contains("is not valid JSON"), "{text}");
}

#[tokio::test]
async fn json_of_the_wrong_shape_names_the_field_that_breaks_the_contract() {
    let server = Broken::start(json("200 OK", r#"{"ready": "yes", "checks": []}"#)).await;
    let err = runner(&server).readiness().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("`ready`"), "{err}");
}

#[tokio::test]
async fn an_html_page_instead_of_json_is_a_protocol_error_naming_the_content_type() {
    let page = answer(
        "200 OK",
        "text/html; charset=utf-8",
        "",
        b"<html>proxy login</html>",
    );
    let server = Broken::start(Reply::Raw(page)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("expected application/json, got `text/html`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_500_is_a_transient_server_error_with_its_status() {
    let server = Broken::start(json("500 Internal Server Error", "oops")).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                status: 500,
                endpoint: "POST /runners/bootstrap"
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_503_without_a_contract_body_is_unavailable() {
    let page = answer("503 Service Unavailable", "text/html", "", b"<h1>down</h1>");
    let server = Broken::start(Reply::Raw(page)).await;
    let err = runner(&server).heartbeat("job_1").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_2_mib_bootstrap_with_content_length_is_refused_over_1_mib() {
    let body = vec![b' '; 2 * MIB];
    let server = Broken::start(Reply::Raw(answer("200 OK", "application/json", "", &body))).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(
        matches!(err, Error::BodyTooLarge { limit, .. } if limit == MIB),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("larger than 1 MiB"), "{text}");
    assert!(text.contains("POST /runners/bootstrap"), "{text}");
}

#[tokio::test]
async fn a_2_mib_chunked_bootstrap_without_content_length_is_refused_while_streaming() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let server = Broken::start(Reply::Chunked {
        head: head.to_owned(),
        body_len: 2 * MIB,
    })
    .await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(
        matches!(err, Error::BodyTooLarge { limit, .. } if limit == MIB),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_chunked_bootstrap_just_under_the_cap_is_read_to_the_end() {
    // The same streaming path at exactly the cap: it is read whole, and
    // refused only because `xxx…` is not JSON.
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let server = Broken::start(Reply::Chunked {
        head: head.to_owned(),
        body_len: MIB,
    })
    .await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("is not valid JSON"), "{err}");
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_hits_the_read_timeout() {
    let server = Broken::start(Reply::Stall(Vec::new())).await;
    let started = Instant::now();
    let err = impatient_runner(&server).bootstrap().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                endpoint: "POST /runners/bootstrap"
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_stalls_in_the_middle_of_the_body_hits_the_read_timeout() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"runner\":";
    let server = Broken::start(Reply::Stall(head.to_vec())).await;
    let err = impatient_runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn the_claim_long_poll_waits_longer_than_the_read_timeout() {
    // The read timeout is 300 ms, the claim asks for 1 s: the stall must be
    // given 1 s + the margin, not 300 ms.
    let server = Broken::start(Reply::Stall(Vec::new())).await;
    let api = impatient_runner(&server);
    let poll = tokio::time::timeout(Duration::from_millis(900), api.claim(1)).await;
    assert!(poll.is_err(), "the claim gave up before wait_s: {poll:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_rate_limited_with_the_delay() {
    let body = r#"{"error":{"code":"rate_limited","message":"slow down"}}"#;
    let reply = answer(
        "429 Too Many Requests",
        "application/json",
        "retry-after: 7\r\n",
        body.as_bytes(),
    );
    let server = Broken::start(Reply::Raw(reply)).await;
    let err = runner(&server).claim(0).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.to_string().contains("retry after 7 s"), "{err}");
}

#[tokio::test]
async fn a_429_with_an_http_date_is_rate_limited_until_that_date() {
    let at = std::time::SystemTime::now() + Duration::from_secs(120);
    let header = format!("retry-after: {}\r\n", httpdate_fmt(at));
    let reply = answer("429 Too Many Requests", "text/plain", &header, b"slow");
    let server = Broken::start(Reply::Raw(reply)).await;
    let err = runner(&server).claim(0).await.unwrap_err();
    let Error::RateLimited {
        retry_after: Some(d),
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(
        d > Duration::from_secs(100) && d <= Duration::from_secs(120),
        "{d:?}"
    );
}

fn httpdate_fmt(t: std::time::SystemTime) -> String {
    // RFC 9110 IMF-fixdate, written by hand so the test does not reuse the
    // parser's own crate to produce its input.
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    dt.format(&fmt).unwrap()
}

#[tokio::test]
async fn an_error_body_with_an_unknown_code_is_a_protocol_error() {
    let body = r#"{"error":{"code":"quota_exceeded","message":"you are out of credits"}}"#;
    let server = Broken::start(json("402 Payment Required", body)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("unexpected status 402"), "{err}");
}

#[tokio::test]
async fn an_unknown_code_on_a_known_status_maps_by_the_status() {
    let body = r#"{"error":{"code":"token_expired","message":"expired"}}"#;
    let server = Broken::start(json("401 Unauthorized", body)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken), "{err:?}");
}

#[tokio::test]
async fn a_409_with_a_link_is_anthropic_key_missing_and_shows_the_link() {
    let body = r#"{"error":{"code":"anthropic_key_missing","message":"no key","link":"https://app.spedy.ai/settings/runners/secrets"}}"#;
    let server = Broken::start(json("409 Conflict", body)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(
        matches!(&err, Error::AnthropicKeyMissing { link: Some(l) } if l == "https://app.spedy.ai/settings/runners/secrets"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("https://app.spedy.ai/settings/runners/secrets"),
        "{err}"
    );
}

#[tokio::test]
async fn a_401_is_fatal_and_says_how_to_get_a_new_token() {
    let body = r#"{"error":{"code":"invalid_token","message":"unknown token"}}"#;
    let server = Broken::start(json("401 Unauthorized", body)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("spedy-runner setup"), "{err}");
}

#[tokio::test]
async fn an_error_body_over_its_cap_still_maps_by_status() {
    let body = vec![b'x'; 256 * 1024];
    let server = Broken::start(Reply::Raw(answer(
        "403 Forbidden",
        "application/json",
        "",
        &body,
    )))
    .await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden), "{err:?}");
}

#[tokio::test]
async fn an_unexpected_success_status_is_a_protocol_error() {
    let server = Broken::start(json("202 Accepted", "{}")).await;
    let err = runner(&server).claim(0).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("unexpected status 202"), "{err}");
}

#[tokio::test]
async fn a_claim_answered_with_204_is_no_job() {
    let server = Broken::start(Reply::Raw(
        b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_vec(),
    ))
    .await;
    assert_eq!(runner(&server).claim(0).await.unwrap(), None);
    let req = &server.requests()[0];
    assert!(req.starts_with("POST /runners/jobs/claim "), "{req}");
    assert!(req.ends_with(r#"{"wait_s":0}"#), "{req}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let reply = answer(
        "302 Found",
        "text/plain",
        "location: http://127.0.0.1:9/elsewhere\r\n",
        b"",
    );
    let server = Broken::start(Reply::Raw(reply)).await;
    let err = runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("unexpected status 302"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_connect_error() {
    // Bind, learn the port, close: nothing listens there any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(&format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let err = client.healthz().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connect {
                endpoint: "GET /healthz",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn job_ids_are_percent_encoded_into_one_path_segment() {
    let server = Broken::start(json("200 OK", r#"{"cancel":true}"#)).await;
    let hb = runner(&server).heartbeat("job_1/../../x?y").await.unwrap();
    assert!(hb.cancel);
    let req = &server.requests()[0];
    assert!(
        req.starts_with("POST /runners/jobs/job_1%2F..%2F..%2Fx%3Fy/heartbeat "),
        "{req}"
    );
}

#[tokio::test]
async fn a_503_whose_body_stalls_is_still_unavailable() {
    let head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"error\":";
    let server = Broken::start(Reply::Stall(head.to_vec())).await;
    let err = impatient_runner(&server).bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
}
