//! `spdy origin`: the private end of the reverse tunnel (see `tunnel.rs`).
//!
//! It dials the proxy (from behind NAT, nothing listens here), upgrades
//! the connection to SPDY/3.1 and then serves the proxy's requests on it:
//! the files of a folder (as `spdy serve` does), or whatever a local
//! HTTP/1.1 server answers. When the tunnel fails it dials again, waiting
//! longer after each failure (up to 30 s); a wrong token ends it.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use spdy::upgrade::{UpgradeError, UpgradeRequest};
use spdy::RecvBody;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::connect::{Target, CONNECT_TIMEOUT};
use crate::serve::{self, ServeBody};
use crate::shutdown;
use crate::tunnel::{
    self, strip_hop_by_hop, MAX_BACKOFF, MIN_BACKOFF, NAME_HEADER, STABLE, TOKEN_ENV, TUNNEL_PATH,
};

/// How long the local server has to answer a request's head.
const LOCAL_HEAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Logs to standard error when the tunnel comes up or goes down. Exit status: 1 \
when the proxy refuses the token or the name (it does not retry then), 2 bad \
usage; otherwise it keeps the tunnel up until stopped.")]
pub(crate) struct Args {
    /// The proxy's tunnel address, HOST:PORT (what `spdy proxy --tunnels`
    /// listens on).
    #[arg(long, value_name = "HOST:PORT")]
    proxy: String,
    /// This origin's name: the proxy sends it the requests whose Host
    /// starts with it (NAME.example.com), or all of them if it is the only
    /// origin.
    #[arg(long, default_value = tunnel::DEFAULT_NAME)]
    name: String,
    /// The proxy's secret.
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    token: Option<String>,
    /// Dial the proxy over TLS (its `--tunnel-cert`); implied by
    /// --cacert and -k.
    #[arg(long)]
    tls: bool,
    /// Trust the certificates in FILE (PEM) for the proxy's TLS.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// INSECURE: do not verify the proxy's certificate.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// How many tunnels to keep to the proxy (1 to 16): requests are
    /// spread over them, and one lost connection does not stop them all.
    #[arg(long, default_value_t = 1, value_name = "N")]
    connections: u32,
    /// Serve the files of DIR (as `spdy serve` does).
    #[arg(long, value_name = "DIR", required_unless_present = "forward")]
    dir: Option<PathBuf>,
    /// Pass each request to the HTTP/1.1 server at URL (http://host:port),
    /// for instance a media server on this machine.
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    forward: Option<String>,
}

/// What answers the proxy's requests.
#[derive(Clone)]
enum Backend {
    Files(Arc<PathBuf>),
    /// A local HTTP/1.1 server: host:port, and a pool of connections to it.
    Forward(Arc<str>, LocalClient),
}

pub(crate) async fn run(args: Args) -> ExitCode {
    if !tunnel::valid_name(&args.name) {
        eprintln!(
            "spdy origin: the name {:?} is not a DNS label (a-z, 0-9, -)",
            args.name
        );
        return ExitCode::from(2);
    }
    let backend = match (&args.dir, &args.forward) {
        (Some(dir), _) => match tokio::fs::canonicalize(dir).await {
            Ok(root) if root.is_dir() => Backend::Files(Arc::new(root)),
            Ok(_) => {
                eprintln!("spdy origin: {} is not a folder", dir.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("spdy origin: {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        },
        (None, Some(url)) => match Target::parse(url) {
            Ok(target) if !target.tls => Backend::Forward(
                Arc::from(format!("{}:{}", target.host, target.port)),
                local_client(),
            ),
            Ok(_) => {
                eprintln!("spdy origin: --forward takes an http:// URL");
                return ExitCode::from(2);
            }
            Err(failure) => {
                eprintln!("spdy origin: --forward: {}", failure.message);
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("spdy origin: give --dir or --forward");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_connector(&args) {
        Ok(tls) => tls,
        Err(why) => {
            eprintln!("spdy origin: {why}");
            return ExitCode::from(2);
        }
    };
    if !(1..=MAX_CONNECTIONS).contains(&args.connections) {
        eprintln!("spdy origin: --connections goes from 1 to {MAX_CONNECTIONS}");
        return ExitCode::from(2);
    }
    // SIGINT / SIGTERM: GOAWAY on every tunnel, let what is in flight
    // finish (at most the drain timeout), and exit 0.
    let stopped = shutdown::on_signal("spdy origin");
    let shared = Arc::new((args, backend, tls));
    let mut tunnels = tokio::task::JoinSet::new();
    for _ in 0..shared.0.connections {
        let (shared, stopped) = (shared.clone(), stopped.clone());
        tunnels.spawn(async move {
            let (args, backend, tls) = &*shared;
            keep_tunnel(args, backend, tls.as_ref(), stopped).await
        });
    }
    while let Some(ended) = tunnels.join_next().await {
        if let Ok(Err(why)) = ended {
            eprintln!("spdy origin: {why}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The most tunnels one origin keeps (the proxy's limit per name).
const MAX_CONNECTIONS: u32 = 16;

/// Keeps one tunnel up until told to stop (`Ok`), or until the proxy
/// refuses it for good (`Err` with why).
async fn keep_tunnel(
    args: &Args,
    backend: &Backend,
    tls: Option<&TlsConnector>,
    stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stopped.borrow() {
            return Ok(());
        }
        let started = Instant::now();
        let why = match tunnel_once(args, backend, tls, stopped.clone()).await {
            Ok(ended) => format!("the tunnel ended ({ended})"),
            Err(Fatal(why)) => return Err(why),
            Err(Retry(why)) => why,
        };
        if *stopped.borrow() {
            return Ok(());
        }
        // A tunnel that worked for a while starts the backoff again; one
        // that ends at once (a proxy that accepts and hangs up) does not
        // make us dial in a loop.
        if started.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        }
        eprintln!("spdy origin: {why}; dialing again in {backoff:?}");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown::stopped(stopped.clone()) => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Why a tunnel could not come up.
enum Failed {
    /// Dialing again will not help (refused token or name).
    Fatal(String),
    Retry(String),
}
use Failed::{Fatal, Retry};

/// Dials the proxy, upgrades, and serves the tunnel until it ends: how it
/// ended, or why it did not come up.
async fn tunnel_once(
    args: &Args,
    backend: &Backend,
    tls: Option<&TlsConnector>,
    stopped: watch::Receiver<bool>,
) -> Result<String, Failed> {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&args.proxy)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(Retry(format!("cannot reach {}: {e}", args.proxy))),
        Err(_) => return Err(Retry(format!("cannot reach {}: timed out", args.proxy))),
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return run_tunnel(tcp, args, backend, stopped).await;
    };
    let host = args
        .proxy
        .rsplit_once(':')
        .map_or(&args.proxy[..], |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Fatal(format!("invalid proxy host {host:?}: {e}")))?;
    let handshake = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp));
    match handshake.await {
        Ok(Ok(stream)) => run_tunnel(stream, args, backend, stopped).await,
        // A certificate we do not trust will not become trusted by
        // dialing again.
        Ok(Err(e)) if untrusted(&e) => Err(Fatal(format!(
            "TLS to {}: {e} (use --cacert, or -k)",
            args.proxy
        ))),
        Ok(Err(e)) => Err(Retry(format!("TLS to {}: {e}", args.proxy))),
        Err(_) => Err(Retry(format!("TLS to {}: timed out", args.proxy))),
    }
}

/// Whether a TLS handshake failed on the proxy's certificate.
fn untrusted(e: &io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>()),
        Some(tokio_rustls::rustls::Error::InvalidCertificate(_))
    )
}

/// Upgrades `io` to the tunnel and serves it until it ends.
async fn run_tunnel<T>(
    io: T,
    args: &Args,
    backend: &Backend,
    stopped: watch::Receiver<bool>,
) -> Result<String, Failed>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let invalid = |e: UpgradeError| Fatal(format!("invalid tunnel request: {e}"));
    let mut request = UpgradeRequest::post(TUNNEL_PATH)
        .and_then(|r| r.host(&args.proxy))
        .and_then(|r| r.header(NAME_HEADER, &args.name))
        .map_err(invalid)?;
    if let Some(token) = &args.token {
        request = request
            .header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
            .map_err(invalid)?;
    }
    let upgraded = tokio::time::timeout(CONNECT_TIMEOUT, spdy::upgrade::connect_io(io, request));
    let (io, _) = match upgraded.await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => {
            return Err(match e.refused().map(|r| r.status) {
                Some(StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST) => {
                    Fatal(format!("the proxy refused the tunnel: {e}"))
                }
                _ => Retry(format!("no tunnel: {e}")),
            })
        }
        Err(_) => return Err(Retry("no answer to the tunnel request".to_owned())),
    };
    eprintln!("spdy origin: tunnel up to {} as {}", args.proxy, args.name);
    let backend = backend.clone();
    let service = move |req: Request<RecvBody>| {
        let backend = backend.clone();
        async move { Ok::<_, Infallible>(answer(&backend, req).await) }
    };
    // (A higher peer-reset limit than other servers: see
    // `ORIGIN_PEER_RESETS`.)
    let server = spdy::server::Builder::new().config(tunnel::origin_session_config());
    match server
        .serve_connection_until(
            io,
            hyper::service::service_fn(service),
            shutdown::stopped(stopped),
        )
        .await
    {
        Ok(()) => Ok("closed by the proxy".to_owned()),
        Err(e) => Ok(crate::connect::describe(&e)),
    }
}

/// The TLS client of `--tls`, `--cacert` and `-k` (ALPN: HTTP/1.1, which
/// the upgrade starts as).
fn tls_connector(args: &Args) -> Result<Option<TlsConnector>, String> {
    if !(args.tls || args.insecure || args.cacert.is_some()) {
        return Ok(None);
    }
    let connector = if args.insecure {
        spdy::tls::Connector::insecure()
    } else if let Some(path) = &args.cacert {
        spdy::tls::Connector::with_ca_file(path)
    } else {
        return Err("--tls needs --cacert FILE (or -k to skip verification)".to_owned());
    };
    let connector = connector.map_err(|e| crate::connect::describe(&e))?;
    let mut config = (**connector.client_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

type OriginBody = Either<ServeBody, Either<Incoming, Full<Bytes>>>;

async fn answer(backend: &Backend, req: Request<RecvBody>) -> Response<OriginBody> {
    match backend {
        Backend::Files(root) => serve::respond(root, &req).await.map(Either::Left),
        Backend::Forward(authority, client) => match pass_on(client, authority, req).await {
            Ok(response) => response.map(|body| Either::Right(Either::Left(body))),
            Err(e) => {
                let why = format!("the local server at {authority} failed: {e}\n");
                let mut response =
                    Response::new(Either::Right(Either::Right(Full::new(Bytes::from(why)))));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        },
    }
}

/// HTTP/1.1 to the local server, its connections kept for the next
/// requests (at most 32 idle, for 30 s).
type LocalClient = hyper_util::client::legacy::Client<HttpConnector, RecvBody>;

fn local_client() -> LocalClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(32)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// One request to the local HTTP/1.1 server.
async fn pass_on(
    client: &LocalClient,
    authority: &str,
    req: Request<RecvBody>,
) -> io::Result<Response<Incoming>> {
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The pool needs the server in the URI (it writes the origin form on
    // the wire); the public Host stays (virtual hosts), or the local
    // server's is added.
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{authority}{target}")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(authority) {
            parts.headers.insert(header::HOST, host);
        }
    }
    let answer = client.request(Request::from_parts(parts, body));
    // (What the local server's `Connection` names stays out of the SPDY
    // reply: the headers layer drops it with `Connection`.)
    tokio::time::timeout(LOCAL_HEAD_TIMEOUT, answer)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
        .map_err(io::Error::other)
}
