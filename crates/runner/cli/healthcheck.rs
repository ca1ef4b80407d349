//! `spedy-runner healthcheck` (hidden): the container image's `HEALTHCHECK`.
//!
//! The supervisor image is `FROM scratch`, with no shell and no curl, so the
//! binary checks itself: `GET /healthz` on the health address of the
//! `spedy-runner run` in the same container (SPEDY_HEALTH_ADDR, or
//! `--health-addr`, default 127.0.0.1:9477). An unspecified listen address
//! (`0.0.0.0`, `::`) is checked on loopback.
//!
//! Exit codes follow Docker's healthcheck convention, not the CLI's: 0
//! healthy, 1 unhealthy (Docker reserves 2). It reads no `.env` and no config
//! file, and needs no token: only the flag or its environment twin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::settings::{DEFAULT_HEALTH_ADDR, SettingsArgs};

/// How long the whole check may take; Docker's own timeout is longer (5 s).
const TIMEOUT: Duration = Duration::from_secs(3);

/// Arguments of `spedy-runner healthcheck`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Checks `/healthz` of the local supervisor: exit 0 when it answers 200,
/// 1 otherwise (with the reason on stderr).
pub async fn run(args: Args, global: SettingsArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    let raw = global.health_addr.as_deref().unwrap_or(DEFAULT_HEALTH_ADDR);
    let addr = target(raw)?;
    let client = spedy_client::Client::builder(&format!("http://{addr}"))
        .connect_timeout(TIMEOUT)
        .read_timeout(TIMEOUT)
        .build()
        .context("building the health check client")?;
    match tokio::time::timeout(TIMEOUT, client.healthz()).await {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(err)) => {
            eprintln!("unhealthy: http://{addr}/healthz: {err}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("unhealthy: http://{addr}/healthz did not answer within {TIMEOUT:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The address to check: the listen address, with an unspecified IP
/// replaced by loopback.
fn target(raw: &str) -> anyhow::Result<SocketAddr> {
    let mut addr: SocketAddr = raw.trim().parse().with_context(|| {
        format!("SPEDY_HEALTH_ADDR must be an address such as 127.0.0.1:9477, got {raw:?}")
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_checked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:9477").expect("valid").to_string(),
            "127.0.0.1:9477"
        );
        assert_eq!(target("[::]:1").expect("valid").to_string(), "[::1]:1");
        assert_eq!(
            target("127.0.0.2:80").expect("valid").to_string(),
            "127.0.0.2:80"
        );
        assert!(target("localhost").is_err());
    }
}
