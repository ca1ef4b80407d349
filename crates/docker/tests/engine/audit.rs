//! The self-audit `spedy-runner doctor` runs, on the real engine.

use spedy_docker::AuditStatus;

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
