//! The job's output on its way out: attach frames in, redacted UTF-8
//! [`LogChunk`]s out, with backpressure.
//!
//! Owns three rules:
//! - **redaction per stream**: one [`StreamRedactor`] for stdout and one for
//!   stderr (a secret split across two frames of the same stream is still
//!   found; Docker gives no order between the two streams, crate-notes §1.4),
//!   both flushed when the stream ends;
//! - **text**: each chunk is valid UTF-8; a character split across frames is
//!   carried to the next one, and bytes that are not UTF-8 become U+FFFD;
//! - **backpressure**: `out` is bounded and the pump *awaits* each send, so
//!   while the consumer is behind, the attach stream is not read, the socket
//!   fills, and Docker holds the output (the job blocks on write). Nothing is
//!   dropped and memory stays bounded by the channel's capacity.

use std::sync::Arc;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use spedy_api::{LogChunk, LogStream};
use spedy_secrets::{Redactor, StreamRedactor};
use tokio::sync::mpsc;

/// How much of the start of stderr is kept to explain an early failure
/// (`spedy-init: …: command not found`).
const STDERR_HEAD: usize = 512;

/// One output stream's state: its redactor and its UTF-8 carry.
struct StreamState {
    redactor: StreamRedactor,
    /// The bytes of a character not complete yet (at most 3).
    partial: Vec<u8>,
}

impl StreamState {
    fn new(redactor: &Arc<Redactor>) -> Self {
        StreamState {
            redactor: StreamRedactor::new(Arc::clone(redactor)),
            partial: Vec::new(),
        }
    }

    /// Redacts `bytes` and returns the text whose characters are complete.
    fn push(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(&self.redactor.push(bytes));
        let keep = incomplete_suffix(&buf);
        self.partial = buf.split_off(buf.len() - keep);
        into_text(buf)
    }

    /// Flushes the redactor and any partial character.
    fn finish(self) -> String {
        let StreamState {
            redactor,
            mut partial,
        } = self;
        partial.extend_from_slice(&redactor.finish());
        into_text(partial)
    }
}

/// Valid UTF-8 as it is; anything else with U+FFFD for the bad bytes.
fn into_text(buf: Vec<u8>) -> String {
    match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// How many bytes at the end of `buf` start a character that is not complete
/// yet (0 when the end is a boundary or the bytes are simply invalid).
fn incomplete_suffix(buf: &[u8]) -> usize {
    let start = buf.len().saturating_sub(3);
    for i in (start..buf.len()).rev() {
        let width = match buf[i] {
            0x80..=0xBF => continue,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        let have = buf.len() - i;
        return if have < width { have } else { 0 };
    }
    0
}

/// What the pump saw, for the outcome.
#[derive(Debug, Default)]
pub(crate) struct PumpReport {
    /// The first bytes of stderr (redacted), to explain an early failure.
    pub stderr_head: String,
    /// Set when the consumer dropped its receiver; output was then read and
    /// discarded so the job could finish.
    pub receiver_gone: bool,
}

/// Reads the attach stream to its end and sends redacted chunks on `out`.
pub(crate) struct Pump {
    out: mpsc::Sender<LogChunk>,
    stdout: Option<StreamState>,
    stderr: Option<StreamState>,
    report: PumpReport,
}

impl Pump {
    pub(crate) fn new(out: mpsc::Sender<LogChunk>, redactor: &Arc<Redactor>) -> Self {
        Pump {
            out,
            stdout: Some(StreamState::new(redactor)),
            stderr: Some(StreamState::new(redactor)),
            report: PumpReport::default(),
        }
    }

    /// Drains `frames` until it ends, then flushes both streams. An error of
    /// the stream (the engine went away) ends the pump early after flushing.
    pub(crate) async fn run(
        &mut self,
        frames: &mut (impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin),
    ) -> Result<(), bollard::errors::Error> {
        let mut result = Ok(());
        while let Some(frame) = frames.next().await {
            let (stream, bytes) = match frame {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    (LogStream::Stdout, message)
                }
                Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let text = match self.state(stream) {
                Some(state) => state.push(&bytes),
                None => continue,
            };
            self.send(stream, text).await;
        }
        self.flush().await;
        result
    }

    /// What the pump saw so far.
    pub(crate) fn into_report(self) -> PumpReport {
        self.report
    }

    fn state(&mut self, stream: LogStream) -> Option<&mut StreamState> {
        match stream {
            LogStream::Stdout => self.stdout.as_mut(),
            LogStream::Stderr => self.stderr.as_mut(),
        }
    }

    async fn flush(&mut self) {
        if let Some(s) = self.stdout.take() {
            let text = s.finish();
            self.send(LogStream::Stdout, text).await;
        }
        if let Some(s) = self.stderr.take() {
            let text = s.finish();
            self.send(LogStream::Stderr, text).await;
        }
    }

    async fn send(&mut self, stream: LogStream, text: String) {
        if text.is_empty() {
            return;
        }
        if stream == LogStream::Stderr && self.report.stderr_head.len() < STDERR_HEAD {
            let room = STDERR_HEAD - self.report.stderr_head.len();
            let mut end = room.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.report.stderr_head.push_str(&text[..end]);
        }
        if self.report.receiver_gone {
            return;
        }
        if self.out.send(LogChunk { stream, text }).await.is_err() {
            tracing::warn!("the job's log receiver is gone; its output is discarded");
            self.report.receiver_gone = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;
    use secrecy::SecretString;

    use super::*;

    fn frames(
        parts: Vec<LogOutput>,
    ) -> impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin {
        futures_util::stream::iter(parts.into_iter().map(Ok))
    }

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut {
            message: Bytes::copy_from_slice(s.as_bytes()),
        }
    }

    async fn collect(parts: Vec<LogOutput>, redactor: Redactor) -> Vec<LogChunk> {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut pump = Pump::new(tx, &Arc::new(redactor));
        pump.run(&mut frames(parts)).await.unwrap();
        drop(pump);
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    }

    fn joined(chunks: &[LogChunk], stream: LogStream) -> String {
        chunks
            .iter()
            .filter(|c| c.stream == stream)
            .map(|c| c.text.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_secret_split_across_frames_of_one_stream_is_redacted() {
        let r = Redactor::new([(
            "TOKEN".to_string(),
            SecretString::from("CANARY_pump_0123456789"),
        )]);
        let chunks = collect(
            vec![
                out("a CANARY_pump_01"),
                LogOutput::StdErr {
                    message: Bytes::from_static(b"err\n"),
                },
                out("23456789 b\n"),
            ],
            r,
        )
        .await;
        let text = joined(&chunks, LogStream::Stdout);
        assert_eq!(text, "a [REDACTED:TOKEN] b\n");
        assert_eq!(joined(&chunks, LogStream::Stderr), "err\n");
    }

    #[tokio::test]
    async fn a_character_split_across_frames_stays_whole_and_bad_bytes_become_replacements() {
        let e = "é".as_bytes();
        let parts = vec![
            LogOutput::StdOut {
                message: Bytes::copy_from_slice(&[b'x', e[0]]),
            },
            LogOutput::StdOut {
                message: Bytes::copy_from_slice(&[e[1], b'\xff', b'y']),
            },
        ];
        let chunks = collect(parts, Redactor::empty()).await;
        assert!(chunks.iter().all(|c| !c.text.is_empty()));
        assert_eq!(joined(&chunks, LogStream::Stdout), "xé\u{fffd}y");
    }

    #[tokio::test]
    async fn a_dropped_receiver_does_not_stop_the_drain() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut pump = Pump::new(tx, &Arc::new(Redactor::empty()));
        pump.run(&mut frames(vec![
            out("a"),
            LogOutput::StdErr {
                message: Bytes::from_static(b"boom"),
            },
        ]))
        .await
        .unwrap();
        let report = pump.into_report();
        assert!(report.receiver_gone);
        assert_eq!(report.stderr_head, "boom");
    }

    #[test]
    fn incomplete_suffixes_are_found() {
        assert_eq!(incomplete_suffix(b"abc"), 0);
        assert_eq!(incomplete_suffix(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_suffix(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_suffix("€".as_bytes()), 0);
        assert_eq!(incomplete_suffix(b"a\xff"), 0);
    }
}
