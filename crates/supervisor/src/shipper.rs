//! Ships one job's log to the platform (issue 4, item 4).
//!
//! The executor sends redacted [`LogChunk`]s into a bounded `mpsc`; the
//! [`Shipper`] reads them, packs them into batches and posts each batch with
//! `POST /runners/jobs/{id}/logs`.
//!
//! # Invariants
//! - **Nothing lost, nothing duplicated.** Batches carry a `seq` that starts at
//!   0 and rises by one per accepted batch. A batch that fails with a transient
//!   error is posted again, *unchanged and with the same `seq`*, after a
//!   jittered backoff; the platform ignores a `seq` it has already stored, so a
//!   post whose answer was lost is not stored twice.
//! - **Bounded memory.** At most one batch (about `max_batch_bytes`) is held
//!   here, plus what the channel holds. While a batch is being posted (and
//!   retried) the shipper does not read the channel; when the channel is full
//!   the executor stops reading the container and Docker holds the output.
//! - **Flushed before completion.** [`Shipper::run`] returns only after the
//!   channel has closed (the executor dropped its sender) and the last batch
//!   was posted, so the job task sends `complete` after the whole log.
//!
//! A permanent error (the platform refuses the job's log, for example `404`
//! or `401`) ends posting for this job: later chunks are still read, so the
//! container is never blocked, but they are counted as dropped and reported
//! in the returned [`ShipReport`]. So is a batch given up when `give_up` fires
//! while the platform is unreachable.

use std::time::Duration;

use spedy_api::{LogBatch, LogChunk};
use spedy_client::RunnerApi;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::job::retry_backoff;

/// Roughly what the JSON framing of one chunk adds to its text, in bytes.
const CHUNK_OVERHEAD: usize = 32;

/// How the shipper batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShipSettings {
    /// A batch is posted once its text reaches this many bytes.
    pub max_batch_bytes: usize,
    /// A batch is posted at the latest this long after its first chunk came.
    pub flush_interval: Duration,
}

/// What happened to one job's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShipReport {
    /// Batches the platform accepted.
    pub batches: u64,
    /// Bytes of text the platform accepted.
    pub bytes: u64,
    /// Bytes of text that could not be delivered.
    pub dropped_bytes: u64,
}

/// Posts one job's log in order. Owned by the job task; lives as long as the
/// executor holds the channel's sender.
pub(crate) struct Shipper {
    api: RunnerApi,
    job_id: String,
    settings: ShipSettings,
    /// The `seq` of the next batch.
    seq: u64,
    /// Set after a permanent error: nothing more is posted.
    refused: bool,
    /// Cancelled by the job task when delivery must stop being retried
    /// (the runner is being forced down); a pending batch is then dropped.
    give_up: CancellationToken,
    report: ShipReport,
}

/// The chunks not yet posted.
#[derive(Default)]
struct Batch {
    chunks: Vec<LogChunk>,
    bytes: usize,
    /// When the first chunk of this batch arrived.
    since: Option<Instant>,
}

impl Batch {
    /// Adds a chunk, merging it into the last one when both come from the
    /// same stream (fewer, larger chunks on the wire).
    fn push(&mut self, chunk: LogChunk) {
        self.since.get_or_insert_with(Instant::now);
        self.bytes += chunk.text.len() + CHUNK_OVERHEAD;
        match self.chunks.last_mut() {
            Some(last) if last.stream == chunk.stream => last.text.push_str(&chunk.text),
            _ => self.chunks.push(chunk),
        }
    }

    fn take(&mut self) -> Vec<LogChunk> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.chunks)
    }

    fn text_len(chunks: &[LogChunk]) -> u64 {
        chunks.iter().map(|c| c.text.len() as u64).sum()
    }
}

impl Shipper {
    /// A shipper for `job_id` whose first batch has `seq` 0.
    pub(crate) fn new(
        api: RunnerApi,
        job_id: String,
        settings: ShipSettings,
        give_up: CancellationToken,
    ) -> Self {
        Shipper {
            api,
            job_id,
            settings,
            seq: 0,
            refused: false,
            give_up,
            report: ShipReport::default(),
        }
    }

    /// Reads `rx` until every sender is dropped, posting as it goes, then
    /// posts what is left and returns what was delivered.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<LogChunk>) -> ShipReport {
        let mut batch = Batch::default();
        loop {
            let deadline = batch.since.map(|s| s + self.settings.flush_interval);
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => {
                        for piece in split(chunk, self.settings.max_batch_bytes) {
                            batch.push(piece);
                            if batch.bytes >= self.settings.max_batch_bytes {
                                self.post(batch.take()).await;
                            }
                        }
                    }
                    None => break,
                },
                () = sleep_until(deadline) => self.post(batch.take()).await,
            }
        }
        if !batch.chunks.is_empty() {
            self.post(batch.take()).await;
        }
        self.report
    }

    /// Posts one batch under the next `seq`, retrying transient failures with
    /// the same `seq` and the same chunks until the platform accepts it.
    async fn post(&mut self, chunks: Vec<LogChunk>) {
        let len = Batch::text_len(&chunks);
        if self.refused || chunks.is_empty() {
            self.report.dropped_bytes += len;
            return;
        }
        let batch = LogBatch {
            seq: self.seq,
            chunks,
        };
        let mut backoff = retry_backoff();
        loop {
            match self.api.logs(&self.job_id, &batch).await {
                Ok(()) => {
                    self.seq += 1;
                    self.report.batches += 1;
                    self.report.bytes += len;
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(job_id = %self.job_id, seq = batch.seq,
                        attempt = backoff.attempts(), error = %e,
                        "log batch not accepted yet; retrying");
                    let wait = backoff
                        .next_delay()
                        .max(e.retry_after().unwrap_or_default());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.give_up.cancelled() => {
                            tracing::warn!(job_id = %self.job_id, seq = batch.seq,
                                "giving up on a log batch: the runner is stopping and the platform does not answer");
                            self.report.dropped_bytes += len;
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(job_id = %self.job_id, seq = batch.seq, error = %e,
                        "the platform refused the job's log; the rest of it is dropped");
                    self.refused = true;
                    self.report.dropped_bytes += len;
                    return;
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Splits a chunk whose text is larger than `max` bytes at char boundaries,
/// so no single batch grows far past the limit.
fn split(chunk: LogChunk, max: usize) -> Vec<LogChunk> {
    let max = max.max(64);
    if chunk.text.len() <= max {
        return vec![chunk];
    }
    let mut out = Vec::new();
    let mut rest = chunk.text.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(LogChunk {
            stream: chunk.stream,
            text: head.to_owned(),
        });
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use spedy_api::LogStream;

    use super::*;

    fn chunk(stream: LogStream, text: &str) -> LogChunk {
        LogChunk {
            stream,
            text: text.into(),
        }
    }

    #[test]
    fn adjacent_chunks_of_one_stream_merge_and_others_keep_their_order() {
        let mut b = Batch::default();
        b.push(chunk(LogStream::Stdout, "a"));
        b.push(chunk(LogStream::Stdout, "b"));
        b.push(chunk(LogStream::Stderr, "c"));
        b.push(chunk(LogStream::Stdout, "d"));
        let chunks = b.take();
        assert_eq!(
            chunks,
            vec![
                chunk(LogStream::Stdout, "ab"),
                chunk(LogStream::Stderr, "c"),
                chunk(LogStream::Stdout, "d"),
            ]
        );
        assert_eq!(b.bytes, 0);
        assert!(b.since.is_none());
    }

    #[test]
    fn a_large_chunk_is_split_at_char_boundaries_and_nothing_is_lost() {
        let text = "é".repeat(100) + &"x".repeat(33);
        let pieces = split(chunk(LogStream::Stderr, &text), 64);
        assert!(pieces.iter().all(|p| p.text.len() <= 64));
        assert!(pieces.iter().all(|p| p.stream == LogStream::Stderr));
        let joined: String = pieces.into_iter().map(|p| p.text).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn a_small_chunk_is_not_split() {
        let pieces = split(chunk(LogStream::Stdout, "hello"), 1024);
        assert_eq!(pieces, vec![chunk(LogStream::Stdout, "hello")]);
    }
}
