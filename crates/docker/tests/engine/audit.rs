//! The self-audit `spedy-runner doctor` runs, on the real engine.

use spedy_docker::{AuditStatus, Injection};

use crate::support::engine;

#[tokio::test]
async fn the_self_audit_passes_on_this_engine_and_checks_the_engines_files_when_readable() {
    let report = engine().await.self_audit().await;
    println!("{report}");
    assert!(report.ok(), "{report}");
    let status = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} in {report}"))
            .status
    };
    assert_eq!(status("handoff"), AuditStatus::Pass);
    assert_eq!(status("inspect"), AuditStatus::Pass);
    assert_eq!(status("removed"), AuditStatus::Pass);
    for id in ["engine_files", "runtime_bundle"] {
        assert_ne!(status(id), AuditStatus::Fail);
    }
}

#[tokio::test]
async fn the_self_audit_of_the_env_path_fails_and_names_where_the_value_is_seen() {
    let report = engine().await.self_audit_of(Injection::Env).await;
    println!("{report}");
    assert!(!report.ok(), "the env path exposes values: {report}");
    let check = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .expect("the check ran")
            .clone()
    };
    assert_eq!(
        check("handoff").status,
        AuditStatus::Pass,
        "the job still gets the value"
    );
    let inspect = check("inspect");
    assert_eq!(inspect.status, AuditStatus::Fail);
    assert!(
        inspect
            .fix
            .expect("a fix line")
            .contains("SPEDY_INJECTION=stdin")
    );
    let files = check("engine_files");
    match files.status {
        AuditStatus::Fail => assert!(files.detail.contains("config.v2.json"), "{}", files.detail),
        AuditStatus::Skipped => println!("engine files not readable here: {}", files.detail),
        AuditStatus::Pass => panic!("config.v2.json holds Env on this path: {}", files.detail),
    }
    assert_eq!(check("removed").status, AuditStatus::Pass);
}
