//! A canary token and a canary secret never appear in any error's text
//! (`Display`, `Debug`, and the whole source chain), even when the server
//! echoes the request back in every way an error answer allows.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use spedy_api::{AdminToken, PutSecretRequest, RunnerToken};
use spedy_client::{Client, Error};
use spedy_testkit::canary::canary;

use crate::broken::{Broken, Reply, answer};

/// A well-formed token whose body is a canary: `rnt_`/`sat_` + 40 letters
/// and digits, starting with `CANARY`.
fn canary_token(prefix: &str) -> String {
    let random = canary("T").rsplit('_').next().unwrap().to_owned();
    let body = format!("CANARY{random}abcdefghijklmnop");
    format!("{prefix}{}", &body[..40])
}

/// Every way a broken server can put the request back into an error answer.
fn echoes() -> Vec<(&'static str, Reply)> {
    fn echo(f: fn(&str) -> Vec<u8>) -> Reply {
        Reply::Echo(Arc::new(f))
    }
    fn quoted(request: &str) -> String {
        serde_json::to_string(request).unwrap()
    }
    vec![
        (
            "500 echoing the request",
            echo(|r| answer("500 Internal Server Error", "text/plain", "", r.as_bytes())),
        ),
        (
            "422 echoing the request in its message",
            echo(|r| {
                let body = format!(
                    r#"{{"error":{{"code":"invalid_request","message":{}}}}}"#,
                    quoted(r)
                );
                answer(
                    "422 Unprocessable Entity",
                    "application/json",
                    "",
                    body.as_bytes(),
                )
            }),
        ),
        (
            "409 echoing the request in its link",
            echo(|r| {
                let body = format!(
                    r#"{{"error":{{"code":"anthropic_key_missing","message":"m","link":{}}}}}"#,
                    quoted(r)
                );
                answer("409 Conflict", "application/json", "", body.as_bytes())
            }),
        ),
        (
            "400 with an unknown code echoing the request",
            echo(|r| {
                let body = format!(
                    r#"{{"error":{{"code":{},"message":{}}}}}"#,
                    quoted(r),
                    quoted(r)
                );
                answer("400 Bad Request", "application/json", "", body.as_bytes())
            }),
        ),
        (
            "200 garbage echoing the request",
            echo(|r| answer("200 OK", "application/json", "", format!("x{r}").as_bytes())),
        ),
        (
            "200 wrong-typed JSON echoing the request as a value",
            echo(|r| {
                let body = format!(
                    r#"{{"ready":{},"checks":[],"runner":{},"secrets":{}}}"#,
                    quoted(r),
                    quoted(r),
                    quoted(r)
                );
                answer("200 OK", "application/json", "", body.as_bytes())
            }),
        ),
        (
            "200 with the request as its content type",
            echo(|r| {
                let ct: String = r.chars().filter(|c| c.is_ascii_graphic()).collect();
                answer("200 OK", &ct, "", b"{}")
            }),
        ),
        (
            "429 echoing the request",
            echo(|r| {
                answer(
                    "429 Too Many Requests",
                    "text/plain",
                    "retry-after: soon\r\n",
                    r.as_bytes(),
                )
            }),
        ),
    ]
}

/// Display, `{:?}`, and each source's Display and Debug.
fn all_text(err: &Error) -> String {
    let mut out = format!("{err}\n{err:?}\n{err:#?}");
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        out.push_str(&format!("\n{e}\n{e:?}"));
        next = e.source();
    }
    out
}

fn assert_clean(place: &str, text: &str, canaries: &[&str]) {
    for c in canaries {
        assert!(!text.contains(c), "{c} leaked into {place}:\n{text}");
    }
    assert!(
        !text.contains("CANARY"),
        "a canary leaked into {place}:\n{text}"
    );
}

#[tokio::test]
async fn a_canary_runner_token_never_appears_in_an_error_even_when_the_server_echoes_it() {
    let token = canary_token("rnt_");
    for (case, reply) in echoes() {
        let server = Broken::start(reply).await;
        let client = Client::builder(&server.url())
            .read_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let api = client.runner(RunnerToken::parse(&token).unwrap());
        let err = match api.readiness().await {
            Err(e) => e,
            Ok(r) => panic!("{case}: a broken answer was accepted: {r:?}"),
        };
        let seen = server.requests().join("\n");
        assert!(seen.contains(&token), "{case}: the token was not even sent");
        assert_clean(case, &all_text(&err), &[&token]);
        assert_clean(case, &format!("{api:?} {client:?}"), &[&token]);
    }
}

#[tokio::test]
async fn a_canary_secret_written_to_the_vault_never_appears_in_an_error() {
    let admin = canary_token("sat_");
    let value = canary("VALUE");
    for (case, reply) in echoes() {
        let server = Broken::start(reply).await;
        let client = Client::builder(&server.url()).build().unwrap();
        let api = client.admin(AdminToken::parse(&admin).unwrap());
        let request = PutSecretRequest {
            value: SecretString::from(value.clone()),
            kind: None,
            scope: None,
        };
        let err = match api.put_secret("MY_SECRET", &request).await {
            Err(e) => e,
            Ok(r) => panic!("{case}: a broken answer was accepted: {r:?}"),
        };
        let seen = server.requests().join("\n");
        assert!(seen.contains(&value), "{case}: the value was not even sent");
        assert_clean(case, &all_text(&err), &[&admin, &value]);
        assert_clean(case, &format!("{api:?} {request:?}"), &[&admin, &value]);
    }
}
