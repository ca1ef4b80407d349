//! The redacting log writer: the second line of defence behind the types.
//!
//! Owns [`RedactorHandle`] (the current [`Redactor`], swapped at each bundle
//! refresh) and [`RedactingMakeWriter`], a tracing-subscriber
//! [`MakeWriter`] that redacts each event before it reaches the real writer.
//!
//! Atomicity: the fmt layer formats a whole event into one buffer and hands it
//! to a fresh writer with `write_all`, then drops the writer. The writer here
//! collects every write and redacts the collected bytes once, on `flush` or on
//! drop, so a value is never split between two redaction calls and an event
//! sees one redactor from start to end (the one current when it began).

use std::io;
use std::sync::{Arc, RwLock};

use tracing_subscriber::fmt::MakeWriter;

use crate::Redactor;

/// A shared, swappable [`Redactor`]. Clones share the same slot.
///
/// The supervisor `set`s a new redactor at each refresh; writers and job
/// streams `get` a snapshot. Reads take a read lock just long enough to clone
/// an `Arc`.
#[derive(Clone, Default)]
pub struct RedactorHandle {
    current: Arc<RwLock<Arc<Redactor>>>,
}

impl RedactorHandle {
    /// A handle that starts with `redactor`.
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            current: Arc::new(RwLock::new(redactor)),
        }
    }

    /// Replaces the redactor for every clone of this handle. Events already
    /// being written keep the one they started with.
    pub fn set(&self, redactor: Arc<Redactor>) {
        // A poisoned lock only means a writer panicked while holding it; the
        // slot itself (an Arc) is always whole.
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        *slot = redactor;
    }

    /// The current redactor.
    pub fn get(&self) -> Arc<Redactor> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for RedactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedactorHandle").field(&*self.get()).finish()
    }
}

/// A [`MakeWriter`] that redacts each event with the handle's current
/// [`Redactor`] before passing it to `inner`.
///
/// ```
/// use spedy_secrets::{RedactingMakeWriter, RedactorHandle};
/// let handle = RedactorHandle::default();
/// let subscriber = tracing_subscriber::fmt()
///     .with_writer(RedactingMakeWriter::new(handle.clone(), std::io::stderr))
///     .finish();
/// # drop(subscriber);
/// ```
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    handle: RedactorHandle,
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps `inner`; redacts with whatever `handle` holds at each event.
    pub fn new(handle: RedactorHandle, inner: M) -> Self {
        Self { handle, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.handle.get(), self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.handle.get(), self.inner.make_writer_for(meta))
    }
}

/// The writer for one event: buffers, then redacts and writes on `flush` or
/// drop. Made by [`RedactingMakeWriter`].
pub struct RedactingWriter<W: io::Write> {
    redactor: Arc<Redactor>,
    inner: W,
    buf: Vec<u8>,
}

impl<W: io::Write> RedactingWriter<W> {
    fn new(redactor: Arc<Redactor>, inner: W) -> Self {
        Self {
            redactor,
            inner,
            buf: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.inner.write_all(&self.redactor.redact(&self.buf));
        zeroize::Zeroize::zeroize(&mut self.buf);
        self.buf.clear();
        result
    }
}

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write from a drop; the fmt layer
        // ignores write errors the same way.
        let _ = self.emit();
    }
}

impl<W: io::Write> std::fmt::Debug for RedactingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactingWriter")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_handle_swap_reaches_every_clone() {
        let handle = RedactorHandle::default();
        let clone = handle.clone();
        assert!(clone.get().is_empty());
        handle.set(Arc::new(Redactor::from_pairs([("K", "value-1234")])));
        assert!(!clone.get().is_empty());
    }

    #[test]
    fn a_write_split_in_two_is_redacted_as_one_event() {
        let handle = RedactorHandle::new(Arc::new(Redactor::from_pairs([("K", "value-1234")])));
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(handle.get(), &mut out);
            w.write_all(b"a value-").expect("buffered");
            w.write_all(b"1234 b\n").expect("buffered");
        }
        assert_eq!(out, b"a [REDACTED:K] b\n");
    }
}
