//! Settings that `build()` refuses, each with a message that says why and
//! what to do.

use std::io::Write;

use spedy_client::{Client, Error};

#[test]
fn plain_http_to_a_host_off_this_machine_is_refused_with_the_reason_and_the_fix() {
    let err = Client::builder("http://api.spedy.ai").build().unwrap_err();
    assert!(
        matches!(&err, Error::InsecureUrl { host } if host == "api.spedy.ai"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("unencrypted"), "{text}");
    assert!(text.contains("use an https:// URL"), "{text}");
    assert!(!err.is_transient());
}

#[test]
fn plain_http_to_loopback_addresses_is_accepted() {
    for url in ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"] {
        Client::builder(url).build().unwrap();
    }
}

#[test]
fn a_missing_ca_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corp-ca.pem");
    let err = Client::builder("https://api.spedy.ai")
        .extra_ca_pem(&path)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CaFileRead { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("No such file"), "{source}");
}

#[test]
fn a_ca_file_that_is_not_pem_is_an_error_naming_the_path() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"this is not a certificate\n").unwrap();
    let err = Client::builder("https://api.spedy.ai")
        .extra_ca_pem(file.path())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CaFileInvalid { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&file.path().display().to_string()), "{text}");
    assert!(text.contains("holds no PEM certificate"), "{text}");
    assert!(text.contains("BEGIN CERTIFICATE"), "{text}");
}

#[test]
fn a_ca_file_with_a_broken_pem_block_is_an_error_naming_the_path() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n")
        .unwrap();
    let err = Client::builder("https://api.spedy.ai")
        .extra_ca_pem(file.path())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CaFileInvalid { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&file.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn a_user_agent_that_is_not_a_header_value_is_refused() {
    let err = Client::builder("https://api.spedy.ai")
        .user_agent("bad\nagent")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
}

#[test]
fn a_ca_file_with_a_pem_block_that_is_no_certificate_is_an_error_naming_the_path() {
    // Valid base64, valid PEM framing, but the bytes are not a certificate.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQsIEkgYW0gbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = Client::builder("https://api.spedy.ai")
        .extra_ca_pem(file.path())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CaFileInvalid { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&file.path().display().to_string()), "{text}");
    assert!(text.contains("not a usable CA certificate"), "{text}");
}
