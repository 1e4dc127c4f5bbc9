//! `spdy get`: fetch one URL over SPDY, on plain TCP (`http://`) or over
//! TLS with the version agreed by ALPN (`https://`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::Empty;
use spdy::proto::session::{Initiator, StreamError};
use spdy::tls::rustls;
use spdy::{Error, RstStatus, Version};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the connection task to explain a failure, or to
/// close cleanly at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Exit code for a connection or protocol failure (and local I/O errors).
const EXIT_FAILURE: u8 = 1;
/// Exit code for a malformed command line or URL.
const EXIT_USAGE: u8 = 2;
/// Exit code for a response status of 400 or more, as `curl -f`.
const EXIT_HTTP: u8 = 22;

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
    /// The SPDY version to speak: 2, 3 or 3.1. Over plain TCP 3.1 by
    /// default; over TLS the only one offered by ALPN (by default 3.1, 3
    /// and 2 are offered and the server picks).
    #[arg(long = "spdy", value_name = "VERSION")]
    spdy: Option<Version>,
    /// https:// only, INSECURE: do not verify the server's certificate
    /// (any issuer, any name), like `curl -k`.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// https:// only: trust the certificates in FILE (PEM), for instance
    /// the one `spdy serve --tls --save-cert FILE` made. There are no other
    /// trusted roots: without --cacert or -k no certificate is trusted.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Send HEAD and print the status line and headers (to standard output,
    /// or FILE).
    #[arg(short = 'I', long)]
    head: bool,
    /// Print the connection, the request and the response headers to
    /// standard error.
    #[arg(short, long)]
    verbose: bool,
}

/// Why `spdy get` failed, with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
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
    let uri: Uri = args
        .url
        .parse()
        .map_err(|e| Failure::new(EXIT_USAGE, format_args!("invalid URL {:?}: {e}", args.url)))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(Failure::new(
                EXIT_USAGE,
                format_args!("unsupported scheme {other}:// (use http:// or https://)"),
            ))
        }
        None => {
            return Err(Failure::new(
                EXIT_USAGE,
                format_args!("{:?} is not a URL like http://host[:port]/path", args.url),
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Failure::new(EXIT_USAGE, "the URL has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // Read the CA file before connecting: a bad one is a usage error.
    let connector = if tls { Some(connector(args)?) } else { None };

    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Err(Failure::new(
                EXIT_FAILURE,
                format_args!("cannot connect to {host}:{port}: {}", describe_io(&e)),
            ))
        }
        Err(_) => {
            return Err(Failure::new(
                EXIT_FAILURE,
                format_args!("cannot connect to {host}:{port}: timed out"),
            ))
        }
    };
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let (send, mut driver) = match connector {
        None => {
            let version = args.spdy.unwrap_or(Version::V3_1);
            if args.verbose {
                eprintln!("* connected to {peer}, speaking SPDY/{version}");
            }
            let (send, conn) = spdy::client::handshake(tcp, version);
            (send, tokio::spawn(conn))
        }
        Some(connector) => {
            if args.verbose {
                eprintln!("* connected to {peer}, TLS handshake for {host}");
            }
            let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                Failure::new(EXIT_USAGE, format_args!("invalid host {host:?}: {e}"))
            })?;
            let (send, conn) = connector
                .handshake(tcp, name)
                .await
                .map_err(|e| tls_failure(&e, &connector))?;
            if args.verbose {
                if let Some(version) = send.handle().version() {
                    eprintln!("* ALPN agreed spdy/{version}, speaking SPDY/{version}");
                }
            }
            (send, tokio::spawn(conn))
        }
    };

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
    let response = match send.send_request(request).await {
        Ok(response) => response,
        Err(e) => return Err(failed(e, &mut driver).await),
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
                    let mut failure = failed(e, &mut driver).await;
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
    drop(send);
    let _ = tokio::time::timeout(CLOSE_WAIT, &mut driver).await;
    Ok(())
}

/// The TLS client of `--insecure`, `--cacert` and `--spdy`.
fn connector(args: &Args) -> Result<spdy::tls::Connector, Failure> {
    let connector = if args.insecure {
        spdy::tls::Connector::insecure()
    } else if let Some(path) = &args.cacert {
        spdy::tls::Connector::with_ca_file(path)
    } else {
        // Nothing trusted: the handshake fails with a clear message.
        spdy::tls::Connector::with_roots(rustls::RootCertStore::empty())
    };
    let connector = connector.map_err(|e| Failure::new(EXIT_USAGE, describe(&e)))?;
    Ok(match args.spdy {
        Some(version) => connector.versions(&[version]),
        None => connector,
    })
}

/// A failed TLS handshake, explained.
fn tls_failure(e: &Error, connector: &spdy::tls::Connector) -> Failure {
    let message = match e {
        Error::Tls(tls @ rustls::Error::InvalidCertificate(_)) => {
            format!("certificate not trusted; use --cacert or -k ({tls})")
        }
        Error::Tls(tls) => format!("TLS handshake failed: {tls}"),
        Error::NoSpdyProtocol { .. } => {
            let offered: Vec<String> = connector
                .client_config()
                .alpn_protocols
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            format!(
                "the server agreed to none of {} by ALPN: it does not speak that SPDY over TLS",
                offered.join(", ")
            )
        }
        other => describe(other),
    };
    Failure::new(EXIT_FAILURE, message)
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

/// A failure of the request or its body, explained. When all the stream
/// knows is that the connection closed, the connection task may know why.
async fn failed(e: Error, driver: &mut JoinHandle<Result<(), Error>>) -> Failure {
    let vague = matches!(
        e,
        Error::ConnectionClosed | Error::Stream(StreamError::SessionClosed)
    );
    if vague {
        if let Ok(Ok(Err(cause))) = tokio::time::timeout(CLOSE_WAIT, &mut *driver).await {
            return Failure::new(EXIT_FAILURE, describe(&cause));
        }
    }
    Failure::new(EXIT_FAILURE, describe(&e))
}

fn describe(e: &Error) -> String {
    match e {
        Error::Stream(StreamError::Reset {
            status,
            initiator: Initiator::Remote,
        }) => format!("reset by peer ({status})"),
        Error::Stream(StreamError::Refused) => format!(
            "refused by peer ({} or GOAWAY: the request was not processed)",
            RstStatus::RefusedStream
        ),
        Error::Stream(StreamError::SessionClosed) | Error::ConnectionClosed => {
            "the connection closed before the response was complete".to_owned()
        }
        Error::Io(io) => describe_io(io),
        Error::Session(session) => format!("protocol error: {session}"),
        Error::Headers(headers) => format!("bad response headers: {headers}"),
        other => other.to_string(),
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "the peer closed the connection".to_owned(),
        _ => e.to_string(),
    }
}
