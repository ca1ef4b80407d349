//! `spedy-probe`: a tiny static test program that job images built by the
//! tests run (issue 4 item 9). It owns nothing but its argument language; it
//! is std only and built static (`+crt-static`) by `spedy-testkit`'s build
//! script so it runs in a `FROM scratch` image.
//!
//! # Argument language
//! The arguments are a list of steps, run left to right:
//!
//! | step | what it does |
//! | --- | --- |
//! | `names` | prints the names of its env vars, sorted, one per line |
//! | `echo NAME` | prints `NAME=<value>` (or `NAME is unset`) |
//! | `echo-split NAME` | prints `NAME=<value>` in two writes 100 ms apart, split in the middle of the value |
//! | `env` | prints every variable as `NAME=<value>`, sorted |
//! | `args` | prints its own argv, one per line, as `argv[i]=...` |
//! | `print TEXT` | prints TEXT and a newline on stdout |
//! | `eprint TEXT` | prints TEXT and a newline on stderr |
//! | `spew N` | writes N MiB of text lines to stdout |
//! | `sleep MS` | sleeps MS milliseconds |
//! | `exit CODE` | exits with CODE at once (later steps are ignored) |
//!
//! With no steps it prints its argv. A malformed step prints a message on
//! stderr and exits with 2.
//!
//! Example: `probe names echo GITHUB_TOKEN spew 200 sleep 500 exit 3`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() <= 1 {
        return finish(print_args(&args));
    }
    let mut steps = args[1..].iter();
    while let Some(step) = steps.next() {
        let mut operand = |what: &str| {
            steps
                .next()
                .cloned()
                .ok_or_else(|| format!("`{step}` needs {what}"))
        };
        let result = match step.as_str() {
            "names" => names(),
            "env" => env_all(),
            "args" => print_args(&args),
            "echo" => operand("a variable name").and_then(|n| echo(&n)),
            "echo-split" => operand("a variable name").and_then(|n| echo_split(&n)),
            "print" => operand("a text").and_then(|t| out(format!("{t}\n").as_bytes())),
            "eprint" => operand("a text").and_then(|t| err(&t)),
            "spew" => operand("a size in MiB").and_then(|n| spew(&n)),
            "sleep" => operand("milliseconds").and_then(|ms| sleep(&ms)),
            "exit" => match operand("an exit code").and_then(|c| number(&c)) {
                Ok(code) => {
                    let _ = io::stdout().flush();
                    return ExitCode::from(code as u8);
                }
                Err(e) => Err(e),
            },
            other => Err(format!("unknown step `{other}`")),
        };
        if let Err(e) = result {
            let _ = writeln!(io::stderr(), "probe: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn finish(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "probe: {e}");
            ExitCode::from(2)
        }
    }
}

fn out(bytes: &[u8]) -> Result<(), String> {
    let mut o = io::stdout().lock();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .map_err(|e| format!("writing stdout: {e}"))
}

fn err(text: &str) -> Result<(), String> {
    writeln!(io::stderr(), "{text}").map_err(|e| format!("writing stderr: {e}"))
}

fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("`{s}` is not a number"))
}

fn sorted_vars() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    vars
}

fn names() -> Result<(), String> {
    let text: String = sorted_vars().into_iter().map(|(k, _)| k + "\n").collect();
    out(text.as_bytes())
}

fn env_all() -> Result<(), String> {
    let text: String = sorted_vars()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    out(text.as_bytes())
}

fn print_args(args: &[String]) -> Result<(), String> {
    let text: String = args
        .iter()
        .enumerate()
        .map(|(i, a)| format!("argv[{i}]={a}\n"))
        .collect();
    out(text.as_bytes())
}

fn echo(name: &str) -> Result<(), String> {
    match std::env::var(name) {
        Ok(v) => out(format!("{name}={v}\n").as_bytes()),
        Err(_) => out(format!("{name} is unset\n").as_bytes()),
    }
}

fn echo_split(name: &str) -> Result<(), String> {
    let v = std::env::var(name).map_err(|_| format!("{name} is unset"))?;
    let mut mid = v.len() / 2;
    while !v.is_char_boundary(mid) {
        mid -= 1;
    }
    out(format!("{name}={}", &v[..mid]).as_bytes())?;
    std::thread::sleep(Duration::from_millis(100));
    out(format!("{}\n", &v[mid..]).as_bytes())
}

fn spew(mib: &str) -> Result<(), String> {
    let mib = number(mib)?;
    // 64 lines of 1 KiB each: a 64 KiB block.
    let mut line = [b'x'; 1024];
    line[1023] = b'\n';
    let block: Vec<u8> = line.repeat(64);
    let mut o = io::stdout().lock();
    for _ in 0..mib * 16 {
        o.write_all(&block)
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    o.flush().map_err(|e| format!("writing stdout: {e}"))
}

fn sleep(ms: &str) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(number(ms)?));
    Ok(())
}
