//! Redaction of the job's output on the real engine: every value of the set
//! is replaced by `[REDACTED:NAME]` before a chunk leaves the executor, also
//! when the job writes it in two pieces and in its encoded forms.

use std::sync::Arc;

use base64::Engine as _;
use spedy_api::{FinalStatus, LogStream};
use spedy_secrets::Redactor;
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::docker::{assert_no_containers, probe_image, unique_runner_id};

use crate::support::{engine, run, secrets, spec, stdout, text};

#[tokio::test]
async fn every_echoed_secret_is_redacted_also_split_across_writes_and_encoded() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let (github, anthropic, quoted) = (canary("gh"), canary("anthropic"), canary("quoted"));
    // A value with characters JSON escapes: its JSON form differs from it.
    let with_quotes = format!("{quoted}\"q\\z");
    let json_form = format!("{{\"k\":{}}}", serde_json::to_string(&with_quotes).unwrap());
    assert!(!json_form.contains(&with_quotes));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&anthropic);
    let mut job = spec(
        &runner,
        &image,
        &[
            "probe",
            "echo",
            "GITHUB_TOKEN",
            "echo-split",
            "ANTHROPIC_API_KEY",
            "env",
            "print",
            &b64,
            "eprint",
            &json_form,
            "print",
            "done",
        ],
    );
    let set = secrets(&[
        ("GITHUB_TOKEN", &github),
        ("ANTHROPIC_API_KEY", &anthropic),
        ("QUOTED", &with_quotes),
    ]);
    job.redactor = Arc::new(Redactor::from_set(&set));
    job.secrets = set;
    let (outcome, chunks) = run(&engine, job).await;
    assert_eq!(outcome.expect("engine").status, FinalStatus::Succeeded);

    let all: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_absent(
        "the job's log stream",
        all.as_bytes(),
        &[&github, &anthropic, &b64, &quoted],
    );
    let out = stdout(&chunks);
    assert!(
        out.contains("GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]\n"),
        "{out}"
    );
    assert!(
        out.contains("ANTHROPIC_API_KEY=[REDACTED:ANTHROPIC_API_KEY]\n"),
        "split write: {out}"
    );
    assert!(
        out.contains("[REDACTED:ANTHROPIC_API_KEY]\ndone\n"),
        "base64 form: {out}"
    );
    let err = text(&chunks, LogStream::Stderr);
    assert!(
        err.starts_with("{\"k\":") && err.contains("[REDACTED:QUOTED]"),
        "JSON form: {err}"
    );
    // echo + echo-split + `env` (three) + base64 + JSON = 7 replacements.
    assert_eq!(all.matches("[REDACTED:").count(), 7, "{all}");
    assert_no_containers(&runner).await;
}
