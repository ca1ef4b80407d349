//! The redacting log writer under a real tracing-subscriber, in both of the
//! runner's log formats: no planted canary survives, in any escaped form, and
//! the replacement names the variable.

use std::io;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use spedy_secrets::{RedactingMakeWriter, Redactor, RedactorHandle};
mod common;

use common::canary::{assert_absent, canary};
use tracing_subscriber::fmt::MakeWriter;

/// A `MakeWriter` that appends every event to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("utf8 logs")
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// An error whose chain carries the secret, as a careless `reqwest` URL might.
#[derive(Debug)]
struct Leaky(String);

impl std::fmt::Display for Leaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request to https://api.example/?token={} failed", self.0)
    }
}

impl std::error::Error for Leaky {}

/// Emits every way a value can reach a log line.
fn emit(secret: &str) {
    let err = Leaky(secret.to_owned());
    tracing::info!("message with {secret} inline");
    tracing::info!(value = %secret, "display field");
    tracing::info!(value = ?secret, "debug field");
    tracing::warn!(error = %err, "display error");
    tracing::warn!(error = ?err, "debug error");
    let span = tracing::info_span!("job", token = %secret);
    let _entered = span.enter();
    tracing::error!(nested = ?format!("quoted {secret:?}"), "inside a span");
}

fn run(json: bool, handle: RedactorHandle, secret: &str) -> String {
    let capture = Capture::default();
    let writer = RedactingMakeWriter::new(handle, capture.clone());
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false);
    let dispatch = if json {
        tracing::Dispatch::new(builder.json().with_current_span(true).finish())
    } else {
        tracing::Dispatch::new(builder.finish())
    };
    tracing::dispatcher::with_default(&dispatch, || emit(secret));
    capture.text()
}

fn check(json: bool) {
    let plain = canary("LOG");
    // A value with a quote and a backslash: JSON and Debug escape it.
    let secret = format!("{plain}\"with\\escapes/");
    let handle = RedactorHandle::new(Arc::new(Redactor::new([(
        "RUNNER_SECRET".to_owned(),
        SecretString::from(secret.as_str()),
    )])));
    let out = run(json, handle, &secret);
    assert_absent(
        if json { "json logs" } else { "text logs" },
        out.as_bytes(),
        &[&plain],
    );
    assert!(out.contains("[REDACTED:RUNNER_SECRET]"), "{out}");
    assert_eq!(out.lines().count(), 6, "{out}");
}

#[test]
fn text_logs_never_show_a_secret_in_any_field_or_error() {
    check(false);
}

#[test]
fn json_logs_never_show_a_secret_even_json_escaped() {
    check(true);
}

#[test]
fn a_redactor_set_after_the_subscriber_is_built_applies_to_later_events() {
    let plain = canary("SWAP");
    let handle = RedactorHandle::default();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(RedactingMakeWriter::new(handle.clone(), capture.clone()))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("before {plain}");
        handle.set(Arc::new(Redactor::from_pairs([("LATE", plain.as_str())])));
        tracing::info!("after {plain}");
    });
    let out = capture.text();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(&plain), "no redactor yet: {out}");
    assert!(lines[1].contains("after [REDACTED:LATE]"), "{out}");
    assert!(!lines[1].contains(&plain), "{out}");
}
