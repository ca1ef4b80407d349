//! Canaries planted in every type of this crate that holds a value, and in
//! every kind of `.env` error: none shows up in `Debug` (plain or `{:#?}`),
//! in an error message, or in an error's source chain.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::canary::{assert_absent, canary};
use secrecy::SecretString;
use spedy_api::{Backend, GitProvider, JobSpec, Repo, WireBundle};
use spedy_secrets::{
    LocalOverrides, Redactor, RedactorHandle, SecretBundle, SecretSet, StreamRedactor, dotenv,
    entitled, redaction_set,
};

fn wire(values: &[&str]) -> WireBundle {
    let json = serde_json::json!({
        "version": "v1", "issued_at": "2026-12-03T12:00:00Z", "refresh_after_s": 900,
        "secrets": [
            {"env": "ANTHROPIC_API_KEY", "value": values[0], "kind": "anthropic", "scope": "org"},
            {"env": "GITHUB_TOKEN", "value": values[1], "kind": "git", "provider": "github", "scope": "org",
             "expires_at": "2999-01-01T00:00:00Z"},
            {"env": "CUSTOM", "value": values[2], "kind": "custom", "scope": "project:p1"}
        ]
    });
    serde_json::from_value(json).expect("a valid wire bundle")
}

#[test]
fn no_type_that_holds_a_value_shows_it_in_debug() {
    let c: Vec<String> = ["VAULT_A", "VAULT_G", "VAULT_C", "FILE", "ENV"]
        .iter()
        .map(|l| canary(l))
        .collect();
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    let bundle = SecretBundle::from_wire(wire(&refs[..3]));
    let file = dotenv::parse(
        &format!("LOCAL_ONE={}\nexport LOCAL_TWO=\"{}\"\n", c[3], c[3]),
        Path::new("/etc/spedy/.env"),
        |_| None,
    )
    .expect("parses");
    let overrides = LocalOverrides::collect(
        file.clone(),
        vec![("GITHUB_TOKEN".to_owned(), c[4].clone())],
        &bundle.names(),
    );
    let job = JobSpec {
        image: "img".into(),
        command: None,
        env: Default::default(),
        repo: Some(Repo {
            url: "https://github.com/o/r".into(),
            provider: GitProvider::Github,
        }),
        scope: None,
        timeout_s: 1,
    };
    let set = entitled(&bundle, &overrides, &job, Backend::AnthropicApi);
    assert_eq!(set.len(), 4, "{set:?}");
    let redactor = Arc::new(redaction_set(&bundle, &overrides));
    let handle = RedactorHandle::new(redactor.clone());
    let mut stream = StreamRedactor::new(redactor.clone());
    let pushed = stream.push(format!("tail {}", c[0]).as_bytes());
    let manual: SecretSet = [("X", SecretString::from(c[0].as_str()))]
        .into_iter()
        .collect();
    let debug = format!(
        "{bundle:?}{bundle:#?}{:?}{file:?}{file:#?}{overrides:?}{overrides:#?}{set:?}{set:#?}\
         {redactor:?}{handle:?}{stream:?}{manual:?}{:?}",
        bundle.entries(),
        bundle.without_expired(time::OffsetDateTime::now_utc()),
    );
    assert_absent("Debug output", debug.as_bytes(), &refs);
    let mut out = pushed;
    out.extend(stream.finish());
    assert_absent("a redacted stream", &out, &refs);
}

#[test]
fn no_dotenv_error_shows_the_line_it_refuses() {
    let c = canary("DOTENV");
    let cases = [
        format!("{c} is not a statement\n"),
        format!("KEY=\"{c}\n"),
        format!("KEY='{c}\n"),
        format!("KEY=\"x\"{c}\n"),
        format!("KEY=${{{c}\n"),
        format!("KEY=${{NOPE:?{c}}}\n"),
        format!("KEY {c}=1\n"),
    ];
    for text in &cases {
        let err = dotenv::parse(text, Path::new("/etc/spedy/.env"), |_| None).expect_err(text);
        let mut shown = format!("{err} {err:?} {err:#?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            shown.push_str(&s.to_string());
            source = s.source();
        }
        assert_absent("a .env error", shown.as_bytes(), &[&c]);
        assert!(shown.contains("/etc/spedy/.env"), "{shown}");
    }
}

#[test]
fn a_redactor_built_from_canaries_redacts_them_in_every_form() {
    use base64::Engine as _;
    let c = canary("FORMS");
    let value = format!("{c}/\"x y\\");
    let r = Redactor::from_pairs([("NAME", value.as_str())]);
    let encoded = [
        value.clone(),
        serde_json::to_string(&value).expect("json"),
        format!("{value:?}"),
        base64::engine::general_purpose::STANDARD.encode(&value),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("u:{value}")),
    ];
    for text in encoded {
        let out = String::from_utf8_lossy(&r.redact(text.as_bytes())).into_owned();
        // One replacement, plus at most a few bytes of quotes or base64
        // characters that mix the value's bits with its neighbours'.
        assert!(out.contains("[REDACTED:NAME]"), "{text} -> {out}");
        assert!(out.len() <= "[REDACTED:NAME]".len() + 6, "{text} -> {out}");
        assert_absent("a redacted form", out.as_bytes(), &[&c]);
    }
}

#[test]
fn debug_of_a_stream_never_shows_the_bytes_it_holds_back() {
    let c = canary("STREAM");
    let r = Arc::new(Redactor::from_pairs([("LONG", "x".repeat(200).as_str())]));
    let mut stream = StreamRedactor::new(r);
    assert!(
        stream.push(c.as_bytes()).is_empty(),
        "all of it is held back"
    );
    let debug = format!("{stream:?} {stream:#?}");
    assert!(
        debug.contains(&format!("held_back: {}", c.len())),
        "{debug}"
    );
    // Held bytes would show as numbers; check for those too.
    let as_numbers = format!("{:?}", &c.as_bytes()[..8]);
    assert!(
        !debug.contains(&as_numbers[1..as_numbers.len() - 1]),
        "{debug}"
    );
    assert_absent("Debug of a stream", debug.as_bytes(), &[&c]);
    assert_eq!(stream.finish(), c.as_bytes());
}
