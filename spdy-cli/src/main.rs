//! The `spdy` command: a file server, a client and a load generator
//! speaking SPDY/2, 3 and 3.1 over plain TCP or TLS, and a decoder for
//! captured SPDY byte streams.
#![forbid(unsafe_code)]

mod bench;
mod connect;
mod frames;
mod get;
mod listen;
mod origin;
mod proxy;
mod serve;
mod shutdown;
mod timeouts;
mod tunnel;

use std::process::ExitCode;

/// With `RUST_LOG` set (`RUST_LOG=spdy=debug`, `RUST_LOG=debug`), the
/// libraries' `tracing` events go to standard error; without, nothing
/// more is printed than before.
fn log_from_env() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "spdy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a folder over SPDY on plain TCP, or over TLS (with HTTP/1.1).
    Serve(serve::Args),
    /// Fetch a URL over SPDY (http:// plain TCP, https:// TLS) and print the
    /// body.
    Get(get::Args),
    /// Load a server: many requests for one URL over SPDY, in parallel;
    /// report requests/s, MiB/s and latency percentiles.
    Bench(bench::Args),
    /// The public end of a reverse tunnel: HTTP/1.1 clients' requests go
    /// to the origins that dialed in, over SPDY/3.1.
    Proxy(proxy::Args),
    /// The private end of a reverse tunnel: dial a proxy and serve its
    /// requests (a folder, or a local HTTP/1.1 server).
    Origin(origin::Args),
    /// Decode a captured one-direction SPDY byte stream (FILE or stdin) and
    /// print one line per frame.
    Frames(frames::Args),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_from_env();
    match cli.command {
        Command::Version => {
            println!("spdy {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Frames(args) => frames::run(&args),
        Command::Serve(args) => runtime().block_on(serve::run(args)),
        Command::Get(args) => runtime().block_on(get::run(args)),
        Command::Bench(args) => runtime().block_on(bench::run(args)),
        Command::Proxy(args) => runtime().block_on(proxy::run(args)),
        Command::Origin(args) => runtime().block_on(origin::run(args)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Every file a server answers with costs several blocking calls
        // (canonicalize, metadata, open, reads); tokio's default pool of up
        // to 512 threads grew to 400-500 under 100 requests in flight, and
        // `spdy serve`'s RSS with it (+30% over a million requests, see
        // bench/soak.py). 16 keeps the disk busy and memory flat.
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spdy: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
