//! The `spedy-platform` binary: parse the flags (each with its environment
//! twin), install logging, open the platform, print the admin token once when
//! it was generated, then the line `spedy-platform listening on http://ADDR`,
//! and serve until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use spedy_platform::config::{Args, LogFormat};
use spedy_platform::{Platform, PlatformConfig, serve};

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(args: Args) -> Result<(), spedy_platform::Error> {
    let config = PlatformConfig::try_from(args)?;
    let addr = config.addr;
    let platform = tokio::task::spawn_blocking(move || Platform::open(config))
        .await
        .map_err(|_| spedy_platform::Error::Task)??;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| spedy_platform::Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(spedy_platform::Error::Serve)?;
    if let Some(token) = platform.admin_token_created() {
        println!(
            "admin token (shown once, stored only as a hash): {}",
            token.expose()
        );
    }
    println!("spedy-platform listening on http://{bound}");
    serve(listener, platform, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPEDY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn fail(err: &dyn std::error::Error) -> ExitCode {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    eprintln!("spedy-platform: {message}");
    ExitCode::from(2)
}
