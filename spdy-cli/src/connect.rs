//! What `spdy get` and `spdy bench` share: the URL, the connection (plain
//! TCP or TLS with ALPN), the exit codes and the words for failures.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use spdy::client::{Builder, Client};
use spdy::proto::session::{Initiator, StreamError};
use spdy::tls::rustls;
use spdy::{Error, RstStatus, Version};
use tokio::net::TcpStream;

/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the connection task to explain a failure, or to
/// close cleanly at the end.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Exit code for a connection or protocol failure (and local I/O errors).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code for a malformed command line or URL.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code for a response status of 400 or more, as `curl -f`.
pub(crate) const EXIT_HTTP: u8 = 22;

/// How to reach the server: the options both commands take.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The SPDY version to speak: 2, 3 or 3.1. Over plain TCP 3.1 by
    /// default; over TLS the only one offered by ALPN (by default 3.1, 3
    /// and 2 are offered and the server picks).
    #[arg(long = "spdy", value_name = "VERSION")]
    pub(crate) spdy: Option<Version>,
    /// https:// only, INSECURE: do not verify the server's certificate
    /// (any issuer, any name), like `curl -k`.
    #[arg(short = 'k', long)]
    pub(crate) insecure: bool,
    /// https:// only: trust the certificates in FILE (PEM), for instance
    /// the one `spdy serve --tls --save-cert FILE` made. There are no other
    /// trusted roots: without --cacert or -k no certificate is trusted.
    #[arg(long, value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// Where a URL points.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) uri: Uri,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl Target {
    /// `http://host[:port]/path` or `https://...`.
    pub(crate) fn parse(url: &str) -> Result<Target, Failure> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Failure::new(EXIT_USAGE, format_args!("invalid URL {url:?}: {e}")))?;
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
                    format_args!("{url:?} is not a URL like http://host[:port]/path"),
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Failure::new(EXIT_USAGE, "the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            uri,
            host,
            port,
            tls,
        })
    }
}

/// Prepares what connecting needs before any connection is made (a bad
/// CA file is a usage error, found once).
pub(crate) fn prepare(
    target: &Target,
    args: &ConnectArgs,
) -> Result<Option<spdy::tls::Connector>, Failure> {
    match target.tls {
        true => connector(args).map(Some),
        false => Ok(None),
    }
}

/// Connects to `target` and starts a SPDY session: over plain TCP in
/// `args.spdy` (3.1 by default), or over TLS with the version agreed by
/// ALPN. With `verbose`, says what happens on standard error. The
/// client's connection task says why it ended (`Client::closed`).
pub(crate) async fn connect(
    target: &Target,
    args: &ConnectArgs,
    connector: Option<&spdy::tls::Connector>,
    verbose: bool,
) -> Result<Client, Failure> {
    let (host, port) = (target.host.as_str(), target.port);
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
    let client = match connector {
        None => {
            let version = args.spdy.unwrap_or(Version::V3_1);
            if verbose {
                eprintln!("* connected to {peer}, speaking SPDY/{version}");
            }
            let (send, conn) = session_builder().version(version).handshake(tcp);
            Client::new(send, conn)
        }
        Some(connector) => {
            if verbose {
                eprintln!("* connected to {peer}, TLS handshake for {host}");
            }
            let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                Failure::new(EXIT_USAGE, format_args!("invalid host {host:?}: {e}"))
            })?;
            let (send, conn) = connector
                .handshake(tcp, name)
                .await
                .map_err(|e| tls_failure(&e, connector))?;
            if verbose {
                if let Some(version) = send.handle().version() {
                    eprintln!("* ALPN agreed spdy/{version}, speaking SPDY/{version}");
                }
            }
            Client::new(send, conn)
        }
    };
    Ok(client)
}

/// The client's session settings: windows larger than SPDY's 64 KiB
/// default, which would hold one download to 64 KiB per round trip (the
/// command reads as fast as it can, so they cost no memory it would not
/// use).
fn session_builder() -> Builder {
    Builder::new()
        .initial_window(4 << 20)
        .session_window(32 << 20)
}

/// The TLS client of `--insecure`, `--cacert` and `--spdy`.
fn connector(args: &ConnectArgs) -> Result<spdy::tls::Connector, Failure> {
    let connector = if args.insecure {
        spdy::tls::Connector::insecure()
    } else if let Some(path) = &args.cacert {
        spdy::tls::Connector::with_ca_file(path)
    } else {
        // Nothing trusted: the handshake fails with a clear message.
        spdy::tls::Connector::with_roots(rustls::RootCertStore::empty())
    };
    let connector = connector
        .map_err(|e| Failure::new(EXIT_USAGE, describe(&e)))?
        .client(session_builder());
    Ok(match args.spdy {
        Some(version) => connector.versions(&[version]),
        None => connector,
    })
}

/// A failed TLS handshake, explained.
pub(crate) fn tls_failure(e: &Error, connector: &spdy::tls::Connector) -> Failure {
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

/// A failure of the request or its body, explained. When all the stream
/// knows is that the connection closed, the connection task may know why.
pub(crate) async fn failed(e: Error, client: &mut Client) -> Failure {
    let vague = matches!(
        e,
        Error::ConnectionClosed | Error::Stream(StreamError::SessionClosed)
    );
    if vague {
        if let Ok(Err(cause)) = tokio::time::timeout(CLOSE_WAIT, client.closed()).await {
            return Failure::new(EXIT_FAILURE, describe(&cause));
        }
    }
    Failure::new(EXIT_FAILURE, describe(&e))
}

pub(crate) fn describe(e: &Error) -> String {
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

pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "the peer closed the connection".to_owned(),
        _ => e.to_string(),
    }
}
