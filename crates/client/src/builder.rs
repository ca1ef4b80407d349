//! [`ClientBuilder`]: the checked settings of a [`Client`].
//!
//! Owns the checks done once, before any request: the URL's scheme and host
//! (plain `http://` only for loopback), the extra CA file, the timeouts and
//! the user agent. It does no network I/O.
//!
//! Invariants of a built client: the base URL has no user info, query or
//! fragment (so a URL never carries a secret into an error), redirects are
//! not followed (a redirect could carry the `Authorization` header elsewhere),
//! and a loopback platform is reached without any proxy (a proxy from
//! `HTTP_PROXY` would see the token in clear).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, USER_AGENT};
use url::{Host, Url};

use crate::client::{Client, Inner};
use crate::error::Error;

/// The default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default read timeout: how long to wait for an answer's headers, and
/// for each piece of its body. The claim long-poll waits `wait_s` plus
/// [`CLAIM_MARGIN`] instead, when that is longer.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// What the claim long-poll adds to `wait_s` before it gives up on the answer.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// The default `User-Agent`.
pub const DEFAULT_USER_AGENT: &str = concat!("spedy-client/", env!("CARGO_PKG_VERSION"));

/// Settings for a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct ClientBuilder {
    base_url: String,
    extra_ca: Option<PathBuf>,
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
}

impl ClientBuilder {
    pub(crate) fn new(base_url: &str) -> Self {
        ClientBuilder {
            base_url: base_url.to_owned(),
            extra_ca: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }

    /// Trusts the CA certificates in this PEM file *in addition to* the
    /// system's roots: for a platform behind a corporate TLS-inspecting
    /// proxy. The file is read by [`build`](Self::build).
    pub fn extra_ca_pem(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_ca = Some(path.into());
        self
    }

    /// How long to wait for a connection (TCP and TLS). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for an answer to start, and between two pieces of
    /// its body. Default 60 s.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The `User-Agent` header. Default `spedy-client/<version>`.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// Refuses a URL that is not `http(s)://`, that holds a user name,
    /// password, query or fragment, or that is plain `http://` for a host
    /// other than 127.0.0.0/8, `::1` or `localhost`. Reads the extra CA file.
    pub fn build(self) -> Result<Client, Error> {
        let base = check_url(&self.base_url)?;
        let agent = HeaderValue::from_str(&self.user_agent).map_err(|_| Error::Config {
            reason: "the user agent holds characters not allowed in an HTTP header".to_owned(),
        })?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers([(USER_AGENT, agent)].into_iter().collect());
        if is_loopback(&base) {
            http = http.no_proxy();
        }
        if let Some(path) = &self.extra_ca {
            http = http.tls_certs_merge(read_ca(path)?);
        }
        let http = http.build().map_err(|e| Error::Tls {
            source: e.without_url(),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                read_timeout: self.read_timeout,
            }),
        })
    }
}

/// Parses and checks the platform URL; the result's path ends with `/` so
/// that routes join under it.
fn check_url(raw: &str) -> Result<Url, Error> {
    let mut url = Url::parse(raw.trim()).map_err(|e| Error::Config {
        reason: format!("the platform URL is not a valid URL ({e})"),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config {
            reason: "the platform URL must not hold a user name or password".to_owned(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config {
            reason: "the platform URL must not hold a query (`?…`) or fragment (`#…`)".to_owned(),
        });
    }
    let host = match url.host() {
        Some(h) => h.to_string(),
        None => {
            return Err(Error::Config {
                reason: "the platform URL has no host".to_owned(),
            });
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(Error::InsecureUrl { host }),
        other => {
            return Err(Error::Config {
                reason: format!("the platform URL must start with https:// (not {other}://)"),
            });
        }
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether the URL's host is 127.0.0.0/8, `::1` (or an IPv4-mapped loopback)
/// or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().is_loopback(),
        None => false,
    }
}

/// Reads a PEM bundle of CA certificates.
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::CaFileRead {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason| Error::CaFileInvalid {
        path: path.to_owned(),
        reason,
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| invalid("is not a valid PEM certificate bundle"))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate"));
    }
    // A PEM block of valid base64 that is no certificate passes the parse
    // above and would only fail in `build()`, as if the system store were
    // the problem. A client trusting only these certificates builds them
    // into a root store now, so the error can name the file.
    reqwest::Client::builder()
        .tls_certs_only(certs.iter().cloned())
        .build()
        .map_err(|_| invalid("holds a block that is not a usable CA certificate"))?;
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused(url: &str) -> Error {
        check_url(url).expect_err(url)
    }

    #[test]
    fn plain_http_is_accepted_for_loopback_hosts() {
        for url in [
            "http://127.0.0.1:8787",
            "http://127.1.2.3",
            "http://[::1]:80/",
            "http://localhost:8787",
            "http://LOCALHOST",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn plain_http_is_refused_for_other_hosts_with_the_reason() {
        for url in [
            "http://10.0.0.1",
            "http://api.spedy.ai",
            "http://localhost.evil.com",
            "http://[::2]",
            "http://0.0.0.0:8787",
        ] {
            let e = refused(url);
            assert!(matches!(e, Error::InsecureUrl { .. }), "{url}: {e:?}");
            let text = e.to_string();
            assert!(text.contains("unencrypted"), "{text}");
            assert!(text.contains("use an https:// URL"), "{text}");
        }
    }

    #[test]
    fn https_is_accepted_anywhere_and_other_schemes_are_refused() {
        assert!(check_url("https://api.spedy.ai").is_ok());
        let e = refused("ftp://api.spedy.ai");
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(matches!(refused("not a url"), Error::Config { .. }));
    }

    #[test]
    fn urls_that_could_carry_secrets_are_refused_without_echoing_them() {
        for url in [
            "https://user:CANARYpw@api.spedy.ai",
            "https://CANARYuser@api.spedy.ai",
            "https://api.spedy.ai/?token=CANARY",
            "https://api.spedy.ai/#CANARY",
        ] {
            let e = refused(url);
            let text = format!("{e} {e:?}");
            assert!(matches!(e, Error::Config { .. }), "{url}: {text}");
            assert!(!text.contains("CANARY"), "{text}");
        }
    }

    #[test]
    fn a_base_path_keeps_its_prefix_for_routes() {
        let url = check_url("https://example.com/api").unwrap();
        assert_eq!(url.as_str(), "https://example.com/api/");
        let url = check_url("https://example.com").unwrap();
        assert_eq!(url.as_str(), "https://example.com/");
    }
}
