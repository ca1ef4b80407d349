//! [`StreamRedactor`]: redaction over a byte stream that arrives in pieces
//! (Docker attach frames, pipe reads).
//!
//! Owns the carry-over rule. A value may be split across any number of
//! pushes, so each push emits only the bytes whose fate is decided and holds
//! back a tail that may still start a secret:
//! - a match that *starts* before `len - (max_pattern_len - 1)` is final,
//!   because every pattern starting there fits in what we have, so the
//!   leftmost-longest choice is the same one a search over the whole stream
//!   makes;
//! - the bytes after that point are carried into the next push.
//!
//! Memory is bounded: the carry is at most `max_pattern_len - 1 + 3` bytes
//! (the 3 extra bytes keep a UTF-8 character whole), whatever the input; a
//! push needs the carry plus the piece, and returns at most that much plus
//! the replacements' growth.
//!
//! UTF-8: output is cut on character boundaries where the input allows it, so
//! a caller can turn each piece into text. Invalid UTF-8 passes through
//! unchanged, byte for byte (a caller using `String::from_utf8_lossy` gets
//! U+FFFD for it; redaction itself works on bytes and never needs valid text).

use std::sync::Arc;

use crate::Redactor;

/// The most bytes a UTF-8 cut may add to the carry (a 4-byte character minus
/// its last byte).
const UTF8_EXTRA: usize = 3;

/// Redacts a stream pushed in pieces, holding back a bounded tail.
///
/// `Debug` shows how many bytes are held back, never the bytes (they may be
/// the start of a secret). The held-back buffer is zeroized on drop.
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    /// Bytes received but not yet emitted; at most [`Self::max_held_back`]
    /// between calls.
    carry: Vec<u8>,
}

impl StreamRedactor {
    /// A stream over `redactor`'s patterns. Keep the same `Arc` for the whole
    /// stream: a job keeps the redactor it started with.
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            redactor,
            carry: Vec::new(),
        }
    }

    /// The most bytes this stream holds back between pushes.
    pub fn max_held_back(&self) -> usize {
        self.redactor.max_pattern_len().saturating_sub(1) + UTF8_EXTRA
    }

    /// How many bytes are held back right now.
    pub fn held_back(&self) -> usize {
        self.carry.len()
    }

    /// Takes the next piece and returns what is safe to emit, redacted.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.carry.is_empty() && data.is_empty() {
            return Vec::new();
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let hold = self.redactor.max_pattern_len().saturating_sub(1);
        let safe_end = buf.len().saturating_sub(hold);
        let mut out = Vec::with_capacity(buf.len() + 64);
        let mut cursor = 0;
        for m in self.redactor.matches(&buf) {
            if m.start >= safe_end {
                break;
            }
            out.extend_from_slice(&buf[cursor..m.start]);
            out.extend_from_slice(self.redactor.replacement(m.pattern));
            cursor = m.end;
        }
        let cut = if safe_end > cursor {
            utf8_cut(&buf, cursor, safe_end)
        } else {
            cursor
        };
        out.extend_from_slice(&buf[cursor..cut]);
        buf.drain(..cut);
        self.carry = buf;
        out
    }

    /// Ends the stream: redacts and returns what was held back.
    pub fn finish(mut self) -> Vec<u8> {
        let mut carry = zeroize::Zeroizing::new(std::mem::take(&mut self.carry));
        let out = self.redactor.redact(&carry).into_owned();
        carry.clear();
        out
    }
}

impl Drop for StreamRedactor {
    fn drop(&mut self) {
        // Zeroes the whole capacity, where earlier pieces passed through.
        zeroize::Zeroize::zeroize(&mut self.carry);
    }
}

impl std::fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("redactor", &*self.redactor)
            .field("held_back", &self.carry.len())
            .finish()
    }
}

/// Moves `cut` back (not below `floor`) so that it does not fall inside a
/// UTF-8 character whose bytes continue past it. Bytes that are not part of a
/// well-formed prefix of a character are left where they are.
fn utf8_cut(buf: &[u8], floor: usize, cut: usize) -> usize {
    // Look back over at most 3 bytes for the lead byte of the last character.
    let lowest = cut.saturating_sub(UTF8_EXTRA).max(floor);
    let mut i = cut;
    while i > lowest {
        i -= 1;
        let b = buf[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: keep looking for its lead
        }
        let width = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return cut, // ASCII or an invalid byte: nothing to keep whole
        };
        // Cut before the character when it straddles the cut.
        return if cut - i < width { i } else { cut };
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_all(r: &Arc<Redactor>, pieces: &[&[u8]]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut s = StreamRedactor::new(r.clone());
        let mut outs = Vec::new();
        let mut all = Vec::new();
        for p in pieces {
            let o = s.push(p);
            assert!(s.held_back() <= s.max_held_back());
            all.extend_from_slice(&o);
            outs.push(o);
        }
        let o = s.finish();
        all.extend_from_slice(&o);
        outs.push(o);
        (all, outs)
    }

    fn redactor() -> Arc<Redactor> {
        Arc::new(Redactor::from_pairs([
            ("TOKEN", "s3cr3t-tok\"en"),
            ("OTHER", "another-value-here"),
        ]))
    }

    #[test]
    fn a_value_split_at_every_point_is_still_redacted() {
        let r = redactor();
        let text = format!(
            "before s3cr3t-tok\"en middle \"s3cr3t-tok\\\"en\" another-value-here b64 {} end",
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode("xanother-value-here")
            }
        );
        let text = text.as_bytes();
        let want = r.redact(text).into_owned();
        assert!(!String::from_utf8_lossy(&want).contains("s3cr3t"));
        for split in 0..=text.len() {
            let (got, _) = stream_all(&r, &[&text[..split], &text[split..]]);
            assert_eq!(got, want, "split at {split}");
        }
        for a in 0..=text.len() {
            for b in a..=text.len() {
                let (got, _) = stream_all(&r, &[&text[..a], &text[a..b], &text[b..]]);
                assert_eq!(got, want, "splits at {a}, {b}");
            }
        }
    }

    /// A deterministic generator; a small alphabet makes near-misses and
    /// overlaps common.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn word(&mut self, len: usize) -> String {
            (0..len)
                .map(|_| ['a', 'b', 'c', 'é'][self.next(4)])
                .collect()
        }
    }

    #[test]
    fn random_chunkings_of_random_text_give_what_one_whole_redaction_gives() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..300 {
            let secrets: Vec<(String, String)> = (0..1 + rng.next(4))
                .map(|i| {
                    let len = 3 + rng.next(8);
                    (format!("S{i}"), rng.word(len))
                })
                .collect();
            let pairs = secrets.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            let r = Arc::new(Redactor::from_pairs(pairs));
            let len = rng.next(300);
            let text = rng.word(len);
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < text.len() {
                let end = (at + 1 + rng.next(20)).min(text.len());
                pieces.push(&text.as_bytes()[at..end]);
                at = end;
            }
            let (got, _) = stream_all(&r, &pieces);
            let want = r.redact(text.as_bytes()).into_owned();
            assert_eq!(got, want, "{secrets:?} {text}");
        }
    }

    #[test]
    fn a_stream_pushed_byte_by_byte_is_redacted_like_the_whole() {
        let r = redactor();
        let text = b"xx s3cr3t-tok\"en yy another-value-heres3cr3t-tok\"en";
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        let (got, _) = stream_all(&r, &pieces);
        assert_eq!(got, r.redact(text).into_owned());
    }

    #[test]
    fn memory_stays_bounded_whatever_the_input_size() {
        let r = redactor();
        let mut s = StreamRedactor::new(r.clone());
        let chunk = vec![b'a'; 64 * 1024];
        let mut emitted = 0;
        for _ in 0..32 {
            emitted += s.push(&chunk).len();
            assert!(s.held_back() <= s.max_held_back());
        }
        emitted += s.finish().len();
        assert_eq!(emitted, 32 * 64 * 1024);
    }

    #[test]
    fn output_pieces_do_not_split_utf8_characters() {
        let r = redactor();
        let text = "héllo wörld 日本語テキスト 🦀🦀 s3cr3t-tok\"en ok".repeat(3);
        for size in 1..8 {
            let pieces: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
            let (all, outs) = stream_all(&r, &pieces);
            for o in &outs {
                assert!(std::str::from_utf8(o).is_ok(), "chunk size {size}: {o:?}");
            }
            assert_eq!(all, r.redact(text.as_bytes()).into_owned());
        }
    }

    #[test]
    fn invalid_utf8_passes_through_byte_for_byte() {
        let r = redactor();
        let text: &[u8] = b"\xff\xfe abc \xc3 s3cr3t-tok\"en \xe6\x97";
        let pieces: Vec<&[u8]> = text.chunks(2).collect();
        let (all, _) = stream_all(&r, &pieces);
        assert_eq!(all, b"\xff\xfe abc \xc3 [REDACTED:TOKEN] \xe6\x97");
    }

    #[test]
    fn an_empty_redactor_emits_everything_but_an_unfinished_character() {
        let mut s = StreamRedactor::new(Arc::new(Redactor::empty()));
        assert_eq!(s.push(b"abc"), b"abc");
        assert_eq!(s.push("é".as_bytes()[..1].as_ref()), b"");
        assert_eq!(s.push(&"é".as_bytes()[1..]), "é".as_bytes());
        assert_eq!(s.finish(), b"");
    }
}
