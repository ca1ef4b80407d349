//! The vault's cryptography: AES-256-GCM with a fresh random 96-bit nonce per
//! write and the entry's name as associated data, so a ciphertext moved to
//! another row fails to open.
//!
//! The 256-bit key comes from `SPEDY_PLATFORM_MASTER_KEY` (base64) or from
//! `<data>/master.key`, created with mode 0600 on first start. It never goes
//! into the database. This module owns the key and the masked previews; it
//! does not store anything (see [`crate::db`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The key file's name inside the data folder.
pub const KEY_FILE: &str = "master.key";

/// The associated data of the key-check record, which proves at start-up that
/// the key opens this vault. Env names cannot hold `:`, so it never collides.
const KEY_CHECK_AAD: &str = "spedy:key-check";

/// A sealed value: the nonce and the ciphertext with its 16-byte tag.
#[derive(Clone)]
pub struct Sealed {
    /// The 96-bit nonce, unique per write.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by the GCM tag.
    pub ciphertext: Vec<u8>,
}

/// The cipher under the master key. Cheap to share behind an `Arc`.
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// Loads the key from `configured` (base64) or from `<data_dir>/master.key`,
    /// creating that file (mode 0600) with a fresh key when it does not exist.
    pub fn open(data_dir: &Path, configured: Option<&SecretString>) -> Result<Vault> {
        let raw = match configured {
            Some(b64) => decode_key(b64.expose_secret(), "SPEDY_PLATFORM_MASTER_KEY")?,
            None => load_or_create_key_file(&data_dir.join(KEY_FILE))?,
        };
        Ok(Vault::from_raw(&raw))
    }

    /// Builds a vault from raw key bytes.
    pub fn from_raw(raw: &[u8; 32]) -> Vault {
        let key: Key<Aes256Gcm> = (*raw).into();
        Vault {
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// Encrypts `plaintext` bound to `aad` (the entry's name).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Sealed> {
        let nonce = Nonce::generate();
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Decrypt {
                entry: aad.to_owned(),
            })?;
        let nonce: [u8; 12] = nonce.into();
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts a sealed value that must have been sealed under `aad`.
    pub fn open_sealed(&self, aad: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>> {
        let fail = || Error::Decrypt {
            entry: aad.to_owned(),
        };
        let nonce: [u8; 12] = sealed.nonce.as_slice().try_into().map_err(|_| fail())?;
        let nonce: Nonce<_> = nonce.into();
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }

    /// Decrypts a sealed UTF-8 string into a [`SecretString`].
    pub fn open_string(&self, aad: &str, sealed: &Sealed) -> Result<SecretString> {
        let bytes = self.open_sealed(aad, sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Decrypt {
            entry: aad.to_owned(),
        })?;
        Ok(SecretString::from(text))
    }

    /// The record stored once per data folder to tell a wrong key at start.
    pub fn key_check(&self) -> Result<Sealed> {
        self.seal(KEY_CHECK_AAD, b"spedy-vault")
    }

    /// Whether `sealed` (from [`Vault::key_check`]) opens under this key.
    pub fn verify_key_check(&self, sealed: &Sealed) -> bool {
        self.open_sealed(KEY_CHECK_AAD, sealed).is_ok()
    }
}

fn decode_key(b64: &str, origin: &str) -> Result<[u8; 32]> {
    let bad = || Error::BadMasterKey {
        origin: origin.to_owned(),
    };
    let bytes = Zeroizing::new(STANDARD.decode(b64.trim()).map_err(|_| bad())?);
    bytes.as_slice().try_into().map_err(|_| bad())
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; 32]> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            warn_if_readable_by_others(path);
            decode_key(&text, &path.display().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let raw: Zeroizing<[u8; 32]> = Zeroizing::new(Key::<Aes256Gcm>::generate().into());
            let text = Zeroizing::new(format!("{}\n", STANDARD.encode(*raw)));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(*raw)
        }
        Err(e) => Err(io(e)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the vault key file is readable by others; run chmod 600 on it"
        );
    }
}

/// The masked preview of a value: its first 4 and last 4 characters around
/// `****`, or only `****` when it is shorter than 12 characters.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_four_and_four_characters_or_nothing() {
        assert_eq!(mask("sk-ant-0123456789abcd"), "sk-a****abcd");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("exactly12chr"), "exac****2chr");
        assert_eq!(mask("elevenchars"), "****");
        assert_eq!(mask("äöüßäöüßäöüß"), "äöüß****äöüß");
    }

    #[test]
    fn a_sealed_value_opens_only_under_its_own_name() {
        let vault = Vault::from_raw(&[7; 32]);
        let sealed = vault.seal("A_KEY", b"value").unwrap();
        assert_eq!(&*vault.open_sealed("A_KEY", &sealed).unwrap(), b"value");
        assert!(vault.open_sealed("B_KEY", &sealed).is_err());
        let other = Vault::from_raw(&[8; 32]);
        assert!(other.open_sealed("A_KEY", &sealed).is_err());
    }

    #[test]
    fn every_write_gets_a_fresh_nonce() {
        let vault = Vault::from_raw(&[7; 32]);
        let a = vault.seal("K", b"same").unwrap();
        let b = vault.seal("K", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Vault::open(dir.path(), None).unwrap();
        let meta = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let sealed = a.key_check().unwrap();
        let b = Vault::open(dir.path(), None).unwrap();
        assert!(b.verify_key_check(&sealed), "the same key is read back");
    }

    #[test]
    fn a_configured_key_must_be_base64_of_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let bad = SecretString::from("c2hvcnQ=");
        let err = Vault::open(dir.path(), Some(&bad))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("SPEDY_PLATFORM_MASTER_KEY"), "{err}");
        assert!(!err.contains("c2hvcnQ"), "{err}");
        let good = SecretString::from(STANDARD.encode([1u8; 32]));
        assert!(Vault::open(dir.path(), Some(&good)).is_ok());
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key file when configured"
        );
    }
}
