//! The `spdy` command. Only `spdy version` and `spdy frames` work so far; the
//! client, file server and load generator come with the runtime crate.
#![forbid(unsafe_code)]

mod frames;

use std::process::ExitCode;

const USAGE: &str = "\
usage: spdy <command>

commands:
  frames <2|3|3.1> [FILE]  decode a captured SPDY byte stream (FILE or stdin)
                           and print one line per frame
  version                  print the version

Not yet implemented: get, serve, bench, proxy, origin.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") | Some("-V") => {
            println!("spdy {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("frames") => frames::run(&args[1..]),
        Some("help") | Some("--help") | Some("-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
