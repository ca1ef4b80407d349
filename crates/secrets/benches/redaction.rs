//! Redaction throughput against a plain copy of the same bytes.
//!
//! Builds 100 MiB of realistic log text (text and JSON log lines, URLs, base64
//! blobs, stack-trace-like noise) with 100 secrets of the shapes the platform
//! delivers, plants occurrences of some of them (raw, JSON-escaped, base64,
//! URL-encoded), and prints side by side, in MB/s (10^6 bytes per second):
//! - the baselines: a memcpy of the same data into a reused buffer, a copy
//!   into a new `Vec` (what `redact` must do too when it replaces anything),
//!   and a copy in 64 KiB chunks into new `Vec`s (what a stream does);
//! - a reference: plain aho-corasick (its default automaton choice) over the
//!   100 raw values only, counting matches, without the encoded forms;
//! - `Redactor::redact` over the whole buffer;
//! - a read-through `StreamRedactor` in 64 KiB chunks;
//! - per-line `Redactor::redact` (what the log writer does per event); the
//!   lines are split before timing.
//!
//! Each figure is the best of several runs, as wall-clock MB/s and as on-CPU
//! MB/s (the steadier one on a shared machine). Run with
//! `cargo bench -p spedy-secrets --bench redaction`.
//!
//! Recorded 2026-12-03 on the 2-core reference machine under a load average
//! of about 15 (on-CPU MB/s; wall-clock was 3-4 times lower): memcpy 8906,
//! to_vec 1486, chunked copy 19159, plain aho-corasick over the raw values
//! 534; `Redactor::redact` whole buffer 689 (bound by allocating a fresh
//! 100 MiB output, 0.46x to_vec), `StreamRedactor` 1544-1856, per log event
//! 1922.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use spedy_secrets::{Redactor, StreamRedactor};

const SIZE: usize = 100 * 1024 * 1024;
const SECRETS: usize = 100;
const CHUNK: usize = 64 * 1024;
const RUNS: usize = 5;

/// A small deterministic generator, so every run measures the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn token(&mut self, len: usize) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHA[self.below(ALPHA.len())] as char)
            .collect()
    }
}

fn secrets(rng: &mut Rng) -> Vec<(String, String)> {
    (0..SECRETS)
        .map(|i| {
            let value = match i % 5 {
                0 => format!("sk-ant-api03-{}", rng.token(40)),
                1 => format!("ghs_{}", rng.token(36)),
                2 => format!("ATBB{}", rng.token(28)),
                3 => format!("p@ss\"w/{}\\x", rng.token(12)),
                _ => format!("postgres://app:{}@db:5432/app", rng.token(16)),
            };
            (format!("SECRET_{i}"), value)
        })
        .collect()
}

fn log_text(rng: &mut Rng, secrets: &[(String, String)]) -> (Vec<u8>, usize) {
    const WORDS: &[&str] = &[
        "job",
        "started",
        "container",
        "pulling",
        "layer",
        "cache",
        "hit",
        "miss",
        "compiling",
        "warning:",
        "error:",
        "src/main.rs:42:7",
        "Finished",
        "release",
        "tests",
        "passed",
        "GET",
        "POST",
        "200",
        "404",
        "latency_ms=12",
        "retrying",
        "connection",
        "reset",
    ];
    let mut out = Vec::with_capacity(SIZE + 4096);
    let mut planted = 0;
    let mut line = 0u64;
    while out.len() < SIZE {
        line += 1;
        let ts = format!(
            "2026-12-03T12:{:02}:{:02}.{:06}Z",
            line / 60 % 60,
            line % 60,
            line % 999_999
        );
        let mut words = String::new();
        for _ in 0..(4 + rng.below(10)) {
            words.push_str(WORDS[rng.below(WORDS.len())]);
            words.push(' ');
        }
        let planted_form = if rng.below(1000) == 0 {
            planted += 1;
            let v = &secrets[rng.below(secrets.len())].1;
            match rng.below(4) {
                0 => v.clone(),
                1 => serde_json::to_string(v).expect("json"),
                2 => base64::engine::general_purpose::STANDARD.encode(v),
                _ => percent_encode(v),
            }
        } else {
            String::new()
        };
        out.extend_from_slice(log_line(rng, &ts, &words, &planted_form).as_bytes());
    }
    (out, planted)
}

/// Percent-encodes every byte outside `A-Za-z0-9-._~`.
fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One log line in one of four shapes: JSON, a warning with a URL, a debug
/// line with a random blob, a plain info line.
fn log_line(rng: &mut Rng, ts: &str, words: &str, planted: &str) -> String {
    match rng.below(4) {
        0 => format!(
            "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"fields\":{{\"message\":\"{words}{planted}\"}},\"target\":\"agent\"}}\n"
        ),
        1 => format!(
            "{ts}  WARN agent::git: fetch https://github.com/org/repo.git?ref={} {words}{planted}\n",
            rng.token(8)
        ),
        2 => format!("{ts} DEBUG blob={} {words}{planted}\n", rng.token(60)),
        _ => format!("{ts}  INFO {words}{planted}\n"),
    }
}

/// The best wall-clock and the best on-CPU time of [`RUNS`] runs, and the
/// result. On a shared machine the on-CPU time (from the kernel's schedstat
/// for this thread) is the steadier figure: waiting for a core is left out.
fn best<F: FnMut() -> usize>(mut f: F) -> (Timing, usize) {
    let mut best = Timing {
        wall: Duration::MAX,
        cpu: None,
    };
    let mut result = 0;
    for _ in 0..RUNS {
        let (cpu0, start) = (cpu_time(), Instant::now());
        result = black_box(f());
        best.wall = best.wall.min(start.elapsed());
        if let (Some(a), Some(b)) = (cpu0, cpu_time()) {
            best.cpu = Some(best.cpu.map_or(b - a, |c: Duration| c.min(b - a)));
        }
    }
    (best, result)
}

/// Wall-clock and on-CPU time of one measurement.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// This thread's time on a CPU so far (Linux `/proc/thread-self/schedstat`).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let secrets = secrets(&mut rng);
    let (text, planted) = log_text(&mut rng, &secrets);
    let build = Instant::now();
    let redactor = Arc::new(Redactor::from_pairs(
        secrets.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    ));
    let build = build.elapsed();
    println!(
        "redaction bench: {:.1} MiB of log text, {} secrets ({} patterns, longest {} bytes), \
         {} planted occurrences; matcher built in {:.1} ms",
        text.len() as f64 / 1048576.0,
        redactor.values_len(),
        redactor.patterns_len(),
        redactor.max_pattern_len(),
        planted,
        build.as_secs_f64() * 1e3
    );
    let mut rows = baselines(&text, &secrets);
    rows.extend(redactions(&text, &redactor, planted));
    print(text.len(), &rows);
}

/// The copies to compare with, and plain aho-corasick over the raw values.
fn baselines(text: &[u8], secrets: &[(String, String)]) -> Vec<(&'static str, Timing)> {
    // Touch every page first, so the baseline measures copying, not faults.
    let mut dst = vec![1u8; text.len()];
    let (copy, _) = best(|| {
        dst.copy_from_slice(black_box(text));
        black_box(&mut dst).len()
    });
    let (to_vec, _) = best(|| black_box(black_box(text).to_vec()).len());
    let (chunked_copy, _) = best(|| {
        text.chunks(CHUNK)
            .map(|c| black_box(black_box(c).to_vec()).len())
            .sum()
    });
    let plain_ac = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(secrets.iter().map(|(_, v)| v.as_bytes()))
        .expect("builds");
    let (ac_raw, _) = best(|| plain_ac.find_iter(black_box(text)).count());
    vec![
        ("baseline: memcpy into a reused buffer", copy),
        ("baseline: copy into a new Vec (to_vec)", to_vec),
        ("baseline: copy 64 KiB chunks into new Vecs", chunked_copy),
        ("reference: aho-corasick, raw values only", ac_raw),
    ]
}

/// The redactor three ways; checks that they agree and miss nothing planted.
fn redactions(
    text: &[u8],
    redactor: &Arc<Redactor>,
    planted: usize,
) -> Vec<(&'static str, Timing)> {
    let (whole, redacted_len) = best(|| redactor.redact(black_box(text)).len());
    let (stream, streamed_len) = best(|| {
        let mut s = StreamRedactor::new(redactor.clone());
        let mut n = 0;
        for chunk in text.chunks(CHUNK) {
            n += s.push(black_box(chunk)).len();
        }
        n + s.finish().len()
    });
    // Lines are found before timing, so only the per-event redaction counts.
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let (per_line, _) = best(|| {
        lines
            .iter()
            .map(|l| redactor.redact(black_box(l)).len())
            .sum()
    });
    assert_eq!(redacted_len, streamed_len, "stream and whole agree");
    let replaced = redactor.redact(text);
    let found = replaced
        .windows(b"[REDACTED:".len())
        .filter(|w| *w == b"[REDACTED:")
        .count();
    assert!(
        found >= planted,
        "every planted occurrence is redacted ({found} < {planted})"
    );
    vec![
        ("Redactor::redact (whole buffer)", whole),
        ("StreamRedactor (64 KiB chunks)", stream),
        ("Redactor::redact per line (log events)", per_line),
    ]
}

/// Prints MB/s and the ratios to the first two baselines.
fn print(len: usize, rows: &[(&str, Timing)]) {
    let rate = |t: &Timing| (mbps(len, t.wall), t.cpu.map(|c| mbps(len, c)));
    let (base, base_cpu) = rate(&rows[0].1);
    let (fresh, fresh_cpu) = rate(&rows[1].1);
    println!(
        "{:<44} {:>8} {:>10} {:>10} | {:>8} {:>10} {:>10}",
        "", "MB/s", "vs memcpy", "vs to_vec", "CPU MB/s", "vs memcpy", "vs to_vec"
    );
    for (label, t) in rows {
        let (wall, cpu) = rate(t);
        print!(
            "{label:<44} {wall:>8.0} {:>9.3}x {:>9.3}x",
            wall / base,
            wall / fresh
        );
        match (cpu, base_cpu, fresh_cpu) {
            (Some(c), Some(b), Some(f)) => {
                println!(" | {c:>8.0} {:>9.3}x {:>9.3}x", c / b, c / f)
            }
            _ => println!(" | (no schedstat)"),
        }
    }
    println!(
        "MB = 10^6 bytes; best of {RUNS} runs each; CPU MB/s counts only the time this thread was on a core."
    );
}
