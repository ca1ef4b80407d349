//! [`Finder`]: leftmost-longest search over many patterns, fast on text that
//! rarely holds one.
//!
//! Owns the search strategy behind [`crate::Redactor`]. aho-corasick's own
//! unanchored search is one automaton transition per byte with no prefilter
//! once there are more than a few dozen patterns (every value brings about a
//! dozen encoded forms), which measured well under 1 GB/s. So the search is
//! split in two, with aho-corasick still deciding every match:
//! 1. *Sampling:* every pattern is at least [`MIN_PATTERN_LEN`] (6) bytes
//!    long, so its 4-byte windows at offsets 0, 1 and 2 are all inside it, and
//!    exactly one of them starts on any given grid of step 3. The scan reads
//!    one 4-byte window every 3 bytes and tests its hash in a small bitmap of
//!    the patterns' first three windows (a Bloom-style filter, no false
//!    negatives).
//! 2. *Verification:* a hit at `p` stands for the starts `p-2`, `p-1` and
//!    `p`. Each start whose own 4-byte window is in a second bitmap (of the
//!    patterns' first windows) gets an anchored leftmost-longest aho-corasick
//!    search, left to right.
//!
//! Why this equals an unanchored leftmost-longest search: a pattern starting at
//! `s` is seen at the one grid point in `s..=s+2`; grid points are visited in
//! order and the candidates of one point are tried left to right, so the first
//! verified match has the smallest start, and the anchored search picks the
//! longest pattern there. After a match the grid restarts at its end, as an
//! unanchored search does. A unit test checks the equivalence on random input.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};

/// Every pattern must be at least this long (the sampling step 3 plus the
/// window 4, minus 1).
pub(crate) const MIN_PATTERN_LEN: usize = 6;

const WINDOW: usize = 4;
const STEP: usize = 3;

/// One match: `start..end` of the haystack, and the pattern's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
}

/// The sampled filter plus the anchored verifier.
pub(crate) struct Finder {
    verifier: AhoCorasick,
    /// Hashes of every pattern's windows at offsets 0, 1 and 2: the grid test.
    grid: Box<[u64]>,
    /// Hashes of every pattern's first window: the test of a candidate start,
    /// which spares most calls into the verifier.
    first: Box<[u64]>,
    /// `32 - log2(bits per table)`.
    shift: u32,
}

impl Finder {
    /// Builds over `patterns`, each at least [`MIN_PATTERN_LEN`] bytes.
    pub(crate) fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Self {
        assert!(
            patterns.iter().all(|p| p.as_ref().len() >= MIN_PATTERN_LEN),
            "every pattern has at least {MIN_PATTERN_LEN} bytes"
        );
        // About 32 bits per window keeps false hits near 1 in 10 per window
        // probe even for hundreds of patterns, within 4 KiB..512 KiB.
        let table_bits = (patterns.len() * STEP * 32)
            .next_power_of_two()
            .clamp(1 << 15, 1 << 22)
            .trailing_zeros();
        let mut grid = vec![0u64; (1usize << table_bits) / 64].into_boxed_slice();
        let mut first = grid.clone();
        let shift = 32 - table_bits;
        for p in patterns {
            for offset in 0..STEP {
                set(&mut grid, hash(window(p.as_ref(), offset), shift));
            }
            set(&mut first, hash(window(p.as_ref(), 0), shift));
        }
        let verifier = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .or_else(|_| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Anchored)
                    .build(patterns)
            })
            .expect("patterns of at most 64 KiB per value build an automaton");
        Self {
            verifier,
            grid,
            first,
            shift,
        }
    }

    /// The length of the longest pattern.
    pub(crate) fn max_pattern_len(&self) -> usize {
        self.verifier.max_pattern_len()
    }

    /// The leftmost-longest match starting at or after `from`.
    pub(crate) fn find(&self, haystack: &[u8], from: usize) -> Option<Found> {
        let (grid, shift) = (&*self.grid, self.shift);
        let mut p = from;
        // Two grid points per 8-byte load: windows at `p` and `p + 3`.
        while p + 8 <= haystack.len() {
            let x = u64::from_le_bytes(haystack[p..p + 8].try_into().expect("a slice of 8 bytes"));
            let hit0 = test(grid, hash(x as u32, shift));
            let hit1 = test(grid, hash((x >> 24) as u32, shift));
            if hit0 | hit1 {
                if hit0 && let Some(found) = self.candidates(haystack, from, p) {
                    return Some(found);
                }
                if hit1 && let Some(found) = self.candidates(haystack, from, p + STEP) {
                    return Some(found);
                }
            }
            p += 2 * STEP;
        }
        while p + WINDOW <= haystack.len() {
            if test(grid, hash(window(haystack, p), shift))
                && let Some(found) = self.candidates(haystack, from, p)
            {
                return Some(found);
            }
            p += STEP;
        }
        None
    }

    /// Tries the starts `p-2..=p` (not before `from`) a grid hit at `p` stands
    /// for, leftmost first.
    #[cold]
    fn candidates(&self, haystack: &[u8], from: usize, p: usize) -> Option<Found> {
        (p.saturating_sub(STEP - 1).max(from)..=p)
            .filter(|s| test(&self.first, hash(window(haystack, *s), self.shift)))
            .find_map(|s| self.verify(haystack, s))
    }

    /// Every non-overlapping leftmost-longest match, left to right.
    pub(crate) fn find_iter<'f, 'h>(
        &'f self,
        haystack: &'h [u8],
    ) -> impl Iterator<Item = Found> + use<'f, 'h> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let found = self.find(haystack, at)?;
            at = found.end;
            Some(found)
        })
    }

    fn verify(&self, haystack: &[u8], start: usize) -> Option<Found> {
        let input = Input::new(haystack).range(start..).anchored(Anchored::Yes);
        self.verifier.find(input).map(|m| Found {
            start: m.start(),
            end: m.end(),
            pattern: m.pattern().as_usize(),
        })
    }
}

fn set(table: &mut [u64], h: usize) {
    table[h / 64] |= 1 << (h % 64);
}

#[inline]
fn test(table: &[u64], h: usize) -> bool {
    table[h / 64] & (1 << (h % 64)) != 0
}

#[inline]
fn window(bytes: &[u8], at: usize) -> u32 {
    let w: [u8; WINDOW] = bytes[at..at + WINDOW]
        .try_into()
        .expect("a slice of WINDOW bytes");
    u32::from_le_bytes(w)
}

/// Fibonacci hashing of a window into `32 - shift` bits.
#[inline]
fn hash(w: u32, shift: u32) -> usize {
    (w.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator over a small alphabet, so that random text
    /// holds many partial and overlapping pattern occurrences.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| b"abcd"[self.next(4)]).collect()
        }
    }

    #[test]
    fn sampled_search_finds_what_an_unanchored_leftmost_longest_search_finds() {
        let mut rng = Rng(0x00c0_ffee_1234_5678);
        for round in 0..200 {
            let patterns: Vec<Vec<u8>> = (0..1 + rng.next(12))
                .map(|_| {
                    let len = MIN_PATTERN_LEN + rng.next(6);
                    rng.bytes(len)
                })
                .collect();
            let finder = Finder::new(&patterns);
            let reference = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("builds");
            for _ in 0..20 {
                let len = rng.next(200);
                let text = rng.bytes(len);
                let want: Vec<Found> = reference
                    .find_iter(&text)
                    .map(|m| Found {
                        start: m.start(),
                        end: m.end(),
                        pattern: m.pattern().as_usize(),
                    })
                    .collect();
                let got: Vec<Found> = finder.find_iter(&text).collect();
                assert_eq!(got, want, "round {round}");
            }
        }
    }
}
