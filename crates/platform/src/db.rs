//! The SQLite database in the data folder (`platform.db`, WAL mode): the
//! schema, the one connection, and the bridge from async code to it.
//!
//! `rusqlite::Connection` is `Send` but not `Sync`, so it lives behind a
//! `std::sync::Mutex` and every use runs on tokio's blocking pool through
//! [`Db::call`]. Holding one connection also serialises writers, which makes
//! each claim's `UPDATE … RETURNING` trivially atomic.
//!
//! What is stored: token hashes (SHA-256), sealed values (nonce + ciphertext,
//! see [`crate::vault`]), names, timestamps, jobs and their logs. Never a
//! plaintext secret value or token.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "platform.db";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS runners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    pool_size  INTEGER NOT NULL,
    backend    TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS secrets (
    env          TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    rotated_at   TEXT,
    last_used_at TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS integrations (
    provider        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    installation_id INTEGER,
    nonce           BLOB,
    ciphertext      BLOB,
    connected_at    TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS jobs (
    id           TEXT PRIMARY KEY,
    spec         TEXT NOT NULL,
    status       TEXT NOT NULL,
    runner_id    TEXT,
    cancel       INTEGER NOT NULL DEFAULT 0,
    exit_code    INTEGER,
    duration_ms  INTEGER,
    error        TEXT,
    usage        TEXT,
    created_at   TEXT NOT NULL,
    claimed_at   TEXT,
    finished_at  TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (status);
CREATE TABLE IF NOT EXISTS job_logs (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    seq    INTEGER NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;
";

/// The one connection, shared by every request.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (or creates) `<data_dir>/platform.db` and applies the schema.
    pub fn open(data_dir: &Path) -> Result<Db> {
        let path = data_dir.join(DB_FILE);
        // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm
        // files the database file's mode.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<F, R, E>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolls its transaction back when it unwinds,
            // so the connection is still consistent: take it back.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|_| E::from(Error::Task))?
    }

    /// Runs `f` with the connection on the current thread (start-up only).
    pub fn call_sync<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// Reads a `meta` value.
pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Writes a `meta` value.
pub fn meta_set(conn: &Connection, key: &str, value: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The generation counter behind the bundle's `version`: bumped by every
/// write that changes a delivered value (vault, integrations, minted tokens).
pub fn bump_generation(conn: &Connection) -> Result<u64> {
    let next = generation(conn)? + 1;
    meta_set(conn, "generation", &next.to_be_bytes())?;
    Ok(next)
}

/// The current generation.
pub fn generation(conn: &Connection) -> Result<u64> {
    Ok(meta_get(conn, "generation")?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A time as stored (RFC 3339).
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("a UTC time within year 0..=9999 always formats as RFC 3339")
}

/// A stored time read back.
pub fn parse_time(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| Error::Corrupt {
        what: format!("timestamp {s:?}"),
    })
}

/// An optional stored time read back.
pub fn parse_time_opt(s: Option<String>) -> Result<Option<OffsetDateTime>> {
    s.as_deref().map(parse_time).transpose()
}
