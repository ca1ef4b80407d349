//! Real TLS on 127.0.0.1 with a CA generated for the test (rcgen) and a
//! tokio-rustls server: the client refuses the server's certificate with the
//! system roots alone and accepts it once the CA is given with
//! `extra_ca_pem`, which is what a corporate TLS-inspecting proxy needs.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use spedy_client::{Client, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

struct Pki {
    ca_pem: String,
    server: ServerConfig,
}

fn pki() -> Pki {
    pki_named("spedy test corporate proxy CA")
}

fn pki_named(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// Serves `200 ok` over TLS to every connection that completes a handshake.
async fn serve(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_platform_behind_a_private_ca_is_refused_without_the_extra_ca_and_reached_with_it() {
    let pki = pki();
    let addr = serve(pki.server).await;
    let url = format!("https://127.0.0.1:{}", addr.port());

    let without = Client::builder(&url).build().unwrap();
    let err = without.healthz().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let chain = chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(
        chain.contains("--ca-file"),
        "the hint names the setting: {chain}"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("corp-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let with = Client::builder(&url)
        .extra_ca_pem(&ca_file)
        .build()
        .unwrap();
    with.healthz().await.unwrap();
}

/// Set in a child copy of this test binary: the checks that need their own
/// process-wide system CA store (`SSL_CERT_FILE`) run there.
const CHILD: &str = "SPEDY_CLIENT_TEST_TLS_CHILD";

/// Runs one test of this binary again in a child process with `env`, and
/// checks that it passed and printed `done` (so it really ran the checks).
fn run_child(test: &str, env: &[(&str, std::ffi::OsString)], done: &str) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child's checks failed:\n{text}");
    assert!(text.contains(done), "the child ran no checks:\n{text}");
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap()
}

/// Proves that the extra CA is *added to* the system roots. The system store
/// is process-wide (`SSL_CERT_FILE`), so the test runs its checks in a child
/// copy of this test binary whose system store holds only a "public" test CA:
/// a server under that CA must stay reachable once the extra ("corporate")
/// CA is given, and a server under the corporate CA must be reachable only
/// with it.
#[test]
fn the_extra_ca_is_merged_with_the_system_roots_not_used_instead_of_them() {
    if std::env::var_os(CHILD).is_some() {
        return merge_child();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let public = pki_named("spedy test public root");
    let corporate = pki_named("spedy test corporate proxy CA");
    let public_addr = runtime.block_on(serve(public.server));
    let corporate_addr = runtime.block_on(serve(corporate.server));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("system.pem"), &public.ca_pem).unwrap();
    std::fs::write(dir.path().join("corp.pem"), &corporate.ca_pem).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    run_child(
        "tls::the_extra_ca_is_merged_with_the_system_roots_not_used_instead_of_them",
        &[
            ("SSL_CERT_FILE", dir.path().join("system.pem").into()),
            ("SSL_CERT_DIR", dir.path().join("empty").into()),
            ("PUBLIC_PORT", public_addr.port().to_string().into()),
            ("CORP_PORT", corporate_addr.port().to_string().into()),
            ("CORP_CA", dir.path().join("corp.pem").into()),
        ],
        "merge checks passed",
    );
    drop(runtime);
}

/// The child's side: the system store is the public test CA only.
fn merge_child() {
    let public = format!("https://127.0.0.1:{}", env_var("PUBLIC_PORT"));
    let corporate = format!("https://127.0.0.1:{}", env_var("CORP_PORT"));
    let ca = env_var("CORP_CA");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let plain = |url: &str| Client::builder(url).build().unwrap();
        let merged = |url: &str| Client::builder(url).extra_ca_pem(&ca).build().unwrap();
        plain(&public)
            .healthz()
            .await
            .expect("the system store is used");
        let err = plain(&corporate).healthz().await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        merged(&corporate)
            .healthz()
            .await
            .expect("the extra CA is trusted");
        merged(&public)
            .healthz()
            .await
            .expect("the system store is still trusted with the extra CA");
    });
    println!("merge checks passed");
}

/// A `FROM scratch` image has no system CA store: `build()` says so with a
/// hint, and an extra CA alone is then enough (a platform reached only
/// through a corporate proxy needs nothing else).
#[test]
fn without_a_system_ca_store_build_says_so_and_the_extra_ca_alone_is_enough() {
    if std::env::var_os(CHILD).is_some() {
        return no_store_child();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let corporate = pki_named("spedy test corporate proxy CA");
    let corporate_addr = runtime.block_on(serve(corporate.server));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corp.pem"), &corporate.ca_pem).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    run_child(
        "tls::without_a_system_ca_store_build_says_so_and_the_extra_ca_alone_is_enough",
        &[
            ("SSL_CERT_FILE", dir.path().join("missing.pem").into()),
            ("SSL_CERT_DIR", dir.path().join("empty").into()),
            ("CORP_PORT", corporate_addr.port().to_string().into()),
            ("CORP_CA", dir.path().join("corp.pem").into()),
        ],
        "no-store checks passed",
    );
    drop(runtime);
}

/// The child's side: no system store at all.
fn no_store_child() {
    let corporate = format!("https://127.0.0.1:{}", env_var("CORP_PORT"));
    let err = Client::builder(&corporate).build().unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("SSL_CERT_FILE"), "{text}");
    assert!(text.contains("No CA certificates"), "{text}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        Client::builder(&corporate)
            .extra_ca_pem(env_var("CORP_CA"))
            .build()
            .expect("an extra CA is enough without a system store")
            .healthz()
            .await
            .expect("the extra CA is trusted");
    });
    println!("no-store checks passed");
}

/// The error and its sources, `{:#}`-style.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
