//! `spdy get`: fetch one URL over SPDY, on plain TCP (`http://`) or over
//! TLS with the version agreed by ALPN (`https://`).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::Empty;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::connect::{
    self, failed, ConnectArgs, Failure, Target, CLOSE_WAIT, EXIT_FAILURE, EXIT_HTTP, EXIT_USAGE,
};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 success (2xx or 3xx; redirects are not followed), 1 connection, \
protocol or output error, 2 bad usage or URL, 22 response status 400 or above.")]
pub(crate) struct Args {
    /// http://host[:port]/path: SPDY on plain TCP (port 80 by default);
    /// https://host[:port]/path: SPDY over TLS (port 443 by default).
    url: String,
    /// Write the body to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Send HEAD and print the status line and headers (to standard output,
    /// or FILE).
    #[arg(short = 'I', long)]
    head: bool,
    /// Print the connection, the request and the response headers to
    /// standard error.
    #[arg(short, long)]
    verbose: bool,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match fetch(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("spdy get: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn fetch(args: &Args) -> Result<(), Failure> {
    let target = Target::parse(&args.url)?;
    let connector = connect::prepare(&target, &args.connect)?;
    let mut client =
        connect::connect(&target, &args.connect, connector.as_ref(), args.verbose).await?;
    let (uri, host) = (&target.uri, target.host.as_str());

    let method = if args.head { Method::HEAD } else { Method::GET };
    let request = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .header(
            header::USER_AGENT,
            concat!("spdy/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::new(EXIT_USAGE, format_args!("cannot build the request: {e}")))?;
    if args.verbose {
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        eprintln!("> {method} {target}");
        eprintln!("> host: {}", uri.authority().map_or(host, |a| a.as_str()));
        print_headers("> ", request.headers());
    }
    let response = match client.send_request(request).await {
        Ok(response) => response,
        Err(e) => return Err(failed(e, &mut client).await),
    };
    let status = response.status();
    let head_text = response_head(status, response.headers());
    if args.verbose {
        for line in head_text.lines() {
            eprintln!("< {line}");
        }
        eprintln!("<");
    }
    if status.as_u16() >= 400 {
        return Err(Failure::new(
            EXIT_HTTP,
            format_args!("{}: the server answered {}", args.url, status_line(status)),
        ));
    }
    if status.is_redirection() {
        if let Some(location) = response.headers().get(header::LOCATION) {
            eprintln!(
                "spdy get: {} redirects to {} (not followed)",
                status_line(status),
                String::from_utf8_lossy(location.as_bytes())
            );
        }
    }
    let expected = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());

    let mut out: Box<dyn AsyncWrite + Unpin + Send> = match &args.output {
        Some(path) => Box::new(tokio::fs::File::create(path).await.map_err(|e| {
            Failure::new(
                EXIT_FAILURE,
                format_args!("cannot create {}: {e}", path.display()),
            )
        })?),
        None => Box::new(tokio::io::stdout()),
    };
    let write_failed =
        |e: io::Error| Failure::new(EXIT_FAILURE, format_args!("cannot write the output: {e}"));

    let mut body = response.into_body();
    if args.head {
        out.write_all(head_text.as_bytes())
            .await
            .map_err(write_failed)?;
        out.write_all(b"\n").await.map_err(write_failed)?;
    } else {
        let mut received = 0u64;
        while let Some(chunk) = body.data().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = out.flush().await;
                    let mut failure = failed(e, &mut client).await;
                    failure.message = format!(
                        "{}, after {received}{} bytes of the body",
                        failure.message,
                        expected.map(|n| format!(" of {n}")).unwrap_or_default()
                    );
                    return Err(failure);
                }
            };
            received += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(write_failed)?;
        }
        if let Some(expected) = expected {
            if received != expected {
                let _ = out.flush().await;
                return Err(Failure::new(
                    EXIT_FAILURE,
                    format_args!(
                        "the body has {received} bytes but content-length said {expected}"
                    ),
                ));
            }
        }
    }
    out.flush().await.map_err(write_failed)?;
    out.shutdown().await.map_err(write_failed)?;
    // Go away politely: the connection closes once nothing is open.
    drop(body);
    let _ = tokio::time::timeout(CLOSE_WAIT, client.shutdown()).await;
    Ok(())
}

/// The status line and headers, as HTTP/1.1 writes them.
fn response_head(status: StatusCode, headers: &HeaderMap) -> String {
    let mut text = format!("HTTP/1.1 {}\n", status_line(status));
    for (name, value) in headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text
}

fn print_headers(prefix: &str, headers: &HeaderMap) {
    for (name, value) in headers {
        eprintln!(
            "{prefix}{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}
