//! `spdy proxy`: the public end of the reverse tunnel (see `tunnel.rs`).
//!
//! Two listeners: origins dial the tunnel one and upgrade to SPDY/3.1,
//! after which the proxy is the SPDY client on their connection; public
//! HTTP/1.1 clients (browsers, curl, media players) connect to the other,
//! and each of their requests goes down the tunnel of the origin its
//! `Host` names, as one SPDY stream, the response streaming back under
//! SPDY's flow control.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use spdy::client::SendRequest;
use spdy::tls::{Acceptor, Protocol};
use spdy::{RecvBody, Version};
use tokio::net::TcpListener;

use crate::connect::describe;
use crate::listen;
use crate::shutdown;
use crate::tunnel::{self, strip_hop_by_hop, DEFAULT_NAME, NAME_HEADER, TOKEN_ENV, TUNNEL_PATH};

/// How long a public client (or an origin) has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Tunnels kept per origin name, and in all: a bound on what origins
/// (anyone, without a token) can make the proxy hold.
const MAX_TUNNELS_PER_NAME: usize = 16;
const MAX_TUNNELS: usize = 1024;
/// Requests one client address may have in flight (their responses still
/// streaming): a client that reads nothing holds its tunnel streams, and
/// must not hold them all.
const MAX_IN_FLIGHT_PER_CLIENT: usize = 32;
/// How long a stopping proxy waits for the requests in flight.
const DRAIN: Duration = Duration::from_secs(30);
/// How long an origin has to answer a request's head.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints `listening on http://ADDR` (public) and `tunnels on http://ADDR` on \
standard output, and a line per origin that comes or goes, and per request, \
on standard error.")]
pub(crate) struct Args {
    /// Where public HTTP/1.1 clients connect (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// Where origins dial in (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    tunnels: String,
    /// The secret origins must present. Without one, any origin that
    /// reaches the tunnel port is served: for loopback and trusted
    /// networks only.
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    token: Option<String>,
    /// Certificate chain (PEM) for TLS on the public port: clients then
    /// speak SPDY/3.1, 3 or 2 (by ALPN) or HTTP/1.1 to the proxy. With
    /// --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// Certificate chain (PEM) for TLS on the tunnel port, so that the
    /// token and the traffic do not cross the network in the clear
    /// (origins then dial with `--tls`). With --tunnel-key.
    #[arg(long, value_name = "FILE", requires = "tunnel_key")]
    tunnel_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tunnel-cert.
    #[arg(long, value_name = "FILE", requires = "tunnel_cert")]
    tunnel_key: Option<std::path::PathBuf>,
    /// Do not log each public request.
    #[arg(short, long)]
    quiet: bool,
    /// Applied to each port, public and tunnel.
    #[command(flatten)]
    caps: listen::CapArgs,
}

/// The origins connected now, by name; several tunnels of one name share
/// its requests in turn.
#[derive(Default)]
struct Registry {
    origins: Mutex<HashMap<String, Vec<Tunnel>>>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Tunnel {
    id: u64,
    send: SendRequest,
}

impl Registry {
    /// Adds a tunnel; `None` when the limits are reached.
    fn add(&self, name: &str, send: SendRequest) -> Option<u64> {
        let mut origins = self.origins.lock().ok()?;
        let total: usize = origins.values().map(Vec::len).sum();
        let of_name = origins.get(name).map_or(0, Vec::len);
        if total >= MAX_TUNNELS || of_name >= MAX_TUNNELS_PER_NAME {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        origins
            .entry(name.to_owned())
            .or_default()
            .push(Tunnel { id, send });
        Some(id)
    }

    fn remove(&self, name: &str, id: u64) -> usize {
        let Ok(mut origins) = self.origins.lock() else {
            return 0;
        };
        let Some(tunnels) = origins.get_mut(name) else {
            return 0;
        };
        tunnels.retain(|t| t.id != id);
        let left = tunnels.len();
        if left == 0 {
            origins.remove(name);
        }
        left
    }

    /// The tunnel for a request to `host`: the origin named by its first
    /// label, else the only origin name connected, else `default`; taken
    /// in turn among that name's tunnels.
    fn pick(&self, host: Option<&str>) -> Result<(String, SendRequest), String> {
        let Ok(mut origins) = self.origins.lock() else {
            return Err("the proxy is broken".to_owned());
        };
        let label = host
            .map(|h| h.split(':').next().unwrap_or(h))
            .and_then(|h| h.split('.').next())
            .map(str::to_ascii_lowercase);
        // (`remove` drops a name with its last tunnel: every name in the
        // map has one.)
        let name = match label {
            Some(label) if origins.contains_key(&label) => label,
            _ if origins.len() == 1 => origins.keys().next().cloned().unwrap_or_default(),
            _ => DEFAULT_NAME.to_owned(),
        };
        let Some(tunnels) = origins.get_mut(&name) else {
            return Err(format!("no origin named {name:?} is connected"));
        };
        // (`rotate_left(1)` of an empty list would panic.)
        if !tunnels.is_empty() {
            tunnels.rotate_left(1);
        }
        match tunnels.last() {
            Some(tunnel) => Ok((name, tunnel.send.clone())),
            None => Err(format!("no origin named {name:?} is connected")),
        }
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    if args.token.as_deref() == Some("") {
        eprintln!("spdy proxy: the token is empty");
        return ExitCode::from(2);
    }
    let public = match TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("spdy proxy: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let tunnels = match TcpListener::bind(&args.tunnels).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("spdy proxy: cannot listen on {}: {e}", args.tunnels);
            return ExitCode::FAILURE;
        }
    };
    let (Ok(public_addr), Ok(tunnel_addr)) = (public.local_addr(), tunnels.local_addr()) else {
        eprintln!("spdy proxy: cannot read the listening addresses");
        return ExitCode::FAILURE;
    };
    // Each port has its own caps, so that a flood of one leaves the other
    // its connections.
    let caps = args.caps.caps("spdy proxy", 2);
    let mut public = listen::Listener::new(public, caps, "spdy proxy (public)");
    let tunnels = listen::Listener::new(tunnels, caps, "spdy proxy (tunnels)");
    let (public_tls, tls) = match (
        acceptor(args.cert.as_deref(), args.key.as_deref()),
        acceptor(args.tunnel_cert.as_deref(), args.tunnel_key.as_deref()),
    ) {
        (Ok(public), Ok(tunnel)) => (public, tunnel.map(|a| a.protocols(&[Protocol::Http1]))),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("spdy proxy: {why}");
            return ExitCode::from(2);
        }
    };
    if args.token.is_none() {
        eprintln!("spdy proxy: no token: any origin reaching {tunnel_addr} is served");
    } else if tls.is_none() {
        eprintln!("spdy proxy: no --tunnel-cert: origins send the token in the clear");
    }
    // Standard output: the two addresses, for scripts and tests.
    let public_scheme = if public_tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("listening on {public_scheme}://{public_addr}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("tunnels on {scheme}://{tunnel_addr}");

    let registry = Arc::new(Registry::default());
    let in_flight = Arc::new(InFlight::default());
    let token: Option<Arc<str>> = args.token.as_deref().map(Arc::from);
    tokio::spawn(accept_origins(tunnels, tls, registry.clone(), token));
    let quiet = args.quiet;
    // SIGINT / SIGTERM: no new clients, the requests in flight finish (at
    // most DRAIN), exit 0.
    let stopped = shutdown::on_signal("spdy proxy");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer, guard) = tokio::select! {
            accepted = public.accept() => accepted,
            () = shutdown::stopped(stopped.clone()) => break,
        };
        let _ = tcp.set_nodelay(true);
        let (registry, in_flight) = (registry.clone(), in_flight.clone());
        let public_tls = public_tls.clone();
        let stop = shutdown::stopped(stopped.clone());
        connections.spawn(async move {
            let client = Client {
                peer,
                tls: public_tls.is_some(),
                quiet,
            };
            let service = move |req: Request<RecvBody>| {
                let (registry, in_flight) = (registry.clone(), in_flight.clone());
                async move { Ok::<_, Infallible>(forward(&registry, &in_flight, req, client).await) }
            };
            match public_tls {
                // SPDY (by ALPN) or HTTP/1.1, the same service.
                Some(acceptor) => {
                    if let Ok(accepted) = acceptor.accept(tcp).await {
                        let _ = accepted.serve_until(service, stop).await;
                    }
                }
                None => {
                    let service =
                        service_fn(move |req: Request<Incoming>| service(req.map(RecvBody::wrap)));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEAD_TIMEOUT)
                        .serve_connection(TokioIo::new(tcp), service);
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = stop => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                }
            }
            // Counted against the caps until here (or until the task is
            // dropped, however it ends).
            drop(guard);
        });
    }
    eprintln!(
        "spdy proxy: waiting for {} client connection(s)",
        connections.len()
    );
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        eprintln!("spdy proxy: {DRAIN:?} passed; closing what is left");
    }
    ExitCode::SUCCESS
}

/// The TLS acceptor for a certificate chain and its key (PEM), if given.
fn acceptor(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<Acceptor>, String> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    Acceptor::from_pem_files(cert, key)
        .map(Some)
        .map_err(|e| format!("cannot use {}: {}", cert.display(), describe(&e)))
}

/// Who a public request comes from.
#[derive(Debug, Clone, Copy)]
struct Client {
    peer: SocketAddr,
    /// Over TLS (X-Forwarded-Proto: https).
    tls: bool,
    quiet: bool,
}

// ===== origins =====

async fn accept_origins(
    mut listener: listen::Listener,
    tls: Option<Acceptor>,
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
) {
    loop {
        let (tcp, peer, guard) = listener.accept().await;
        let _ = tcp.set_nodelay(true);
        let (registry, token, tls) = (registry.clone(), token.clone(), tls.clone());
        tokio::spawn(async move {
            // Counted against the tunnel port's caps until this task ends.
            let _guard = guard;
            match tls {
                None => serve_origin(tcp, peer, registry, token).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(accepted) => {
                        serve_origin(accepted.into_stream(), peer, registry, token).await
                    }
                    Err(e) => eprintln!(
                        "spdy proxy: origin from {peer}: TLS failed: {}",
                        describe(&e)
                    ),
                },
            }
        });
    }
}

/// Serves one origin connection's upgrade request.
async fn serve_origin<I>(io: I, peer: SocketAddr, registry: Arc<Registry>, token: Option<Arc<str>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (registry, token) = (registry.clone(), token.clone());
        async move { Ok::<_, Infallible>(register(req, peer, &registry, token.as_deref())) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// An origin's upgrade request: checked, answered with 101, and its
/// connection made a SPDY client session registered under its name.
fn register(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    registry: &Arc<Registry>,
    token: Option<&str>,
) -> Response<String> {
    let refuse = |status: StatusCode, why: String| {
        eprintln!("spdy proxy: origin from {peer} refused: {why}");
        let mut response = Response::new(format!("{why}\n"));
        *response.status_mut() = status;
        response
    };
    if req.uri().path() != TUNNEL_PATH {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("not a tunnel: {}", req.uri().path()),
        );
    }
    if let Some(token) = token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        if !tunnel::token_matches(token, presented) {
            let mut response = refuse(StatusCode::UNAUTHORIZED, "wrong or missing token".into());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let name = match req.headers().get(NAME_HEADER).map(|v| v.to_str()) {
        None => DEFAULT_NAME.to_owned(),
        Some(Ok(name)) if tunnel::valid_name(name) => name.to_owned(),
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("{NAME_HEADER} must be a DNS label (a-z, 0-9, -)"),
            )
        }
    };
    let upgrade = match spdy::upgrade::accept(&mut req) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return refuse(rejection.status(), "not an upgrade to SPDY/3.1".into()),
    };
    let (response, io) = upgrade.into_io::<String>();
    let (send, connection) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .config(tunnel::session_config())
        .handshake(io);
    let Some(id) = registry.add(&name, send) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many tunnels (at most {MAX_TUNNELS_PER_NAME} per name, {MAX_TUNNELS} in all)"
            ),
        );
    };
    eprintln!("spdy proxy: origin {name} connected from {peer}");
    let registry = registry.clone();
    tokio::spawn(async move {
        let ended = connection.await;
        let left = registry.remove(&name, id);
        let why = match ended {
            Ok(()) => "closed".to_owned(),
            Err(e) => describe(&e),
        };
        eprintln!(
            "spdy proxy: origin {name} from {peer} gone ({why}); {left} tunnel(s) of {name} left"
        );
    });
    response
}

// ===== public requests =====

type ProxyBody = Either<Held<RecvBody>, Full<Bytes>>;

/// Requests in flight by client address.
#[derive(Default)]
struct InFlight(Mutex<HashMap<IpAddr, usize>>);

/// One request in flight from an address; released when dropped.
struct Permit {
    in_flight: Arc<InFlight>,
    ip: IpAddr,
}

impl InFlight {
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut counts = self.0.lock().ok()?;
        let count = counts.entry(ip).or_default();
        if *count >= MAX_IN_FLIGHT_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(Permit {
            in_flight: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.in_flight.0.lock() {
            if let Some(count) = counts.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

/// A response body holding its request's permit until it is done.
struct Held<B> {
    body: B,
    _permit: Permit,
}

impl<B: Body + Unpin> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Sends a public request down its origin's tunnel and the answer back.
async fn forward(
    registry: &Registry,
    in_flight: &Arc<InFlight>,
    req: Request<RecvBody>,
    client: Client,
) -> Response<ProxyBody> {
    let Client { peer, tls, quiet } = client;
    let (method, target) = (
        req.method().clone(),
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
    );
    let log = |status: StatusCode, to: &str| {
        if !quiet {
            eprintln!("{peer} {method} {target} -> {to}: {}", status.as_u16());
        }
    };
    if method == Method::CONNECT {
        log(StatusCode::METHOD_NOT_ALLOWED, "proxy");
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not served here".into(),
        );
    }
    let Some(permit) = in_flight.acquire(peer.ip()) else {
        log(StatusCode::TOO_MANY_REQUESTS, "proxy");
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {MAX_IN_FLIGHT_PER_CLIENT} requests in flight from {}",
                peer.ip()
            ),
        );
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let (name, send) = match registry.pick(host.as_deref()) {
        Ok(picked) => picked,
        Err(why) => {
            log(StatusCode::BAD_GATEWAY, "proxy");
            return plain(StatusCode::BAD_GATEWAY, why);
        }
    };
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The proxy is the edge: what a client claims about earlier hops is
    // not passed on as if it were true.
    parts.headers.remove("forwarded");
    if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
        parts.headers.insert("x-forwarded-for", value);
    }
    let proto = if tls { "https" } else { "http" };
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static(proto));
    // Origin form for the tunnel; `Host` carries the authority.
    if let Ok(uri) = target.parse() {
        parts.uri = uri;
    }
    if let Some(host) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        parts.headers.insert(header::HOST, host);
    }
    let sent = send.send_request(Request::from_parts(parts, body));
    let mut response = match tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sent).await {
        Ok(Ok(response)) => response.map(|body| {
            Either::Left(Held {
                body,
                _permit: permit,
            })
        }),
        Ok(Err(e)) => {
            log(StatusCode::BAD_GATEWAY, &name);
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("origin {name}: {}", describe(&e)),
            );
        }
        Err(_) => {
            log(StatusCode::GATEWAY_TIMEOUT, &name);
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!("origin {name} did not answer in {RESPONSE_HEAD_TIMEOUT:?}"),
            );
        }
    };
    strip_hop_by_hop(response.headers_mut());
    log(response.status(), &name);
    response
}

/// An answer of the proxy's own.
fn plain(status: StatusCode, why: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!("{why}\n")))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SendRequest {
        // Never driven: routing only clones it (and a session can be
        // made outside any runtime).
        spdy::client::handshake(tokio::io::duplex(64).0, Version::V3_1).0
    }

    #[test]
    fn routing_by_host() {
        let registry = Registry::default();
        let picked = |host: Option<&str>| registry.pick(host).map(|(name, _)| name);
        assert!(picked(Some("media.example")).is_err());
        let media = registry.add("media", session()).unwrap();
        // The only origin takes every request.
        assert_eq!(picked(Some("other.example")).unwrap(), "media");
        assert_eq!(picked(None).unwrap(), "media");
        registry.add(DEFAULT_NAME, session()).unwrap();
        assert_eq!(picked(Some("media.example:8080")).unwrap(), "media");
        assert_eq!(picked(Some("MEDIA.Example")).unwrap(), "media");
        assert_eq!(picked(Some("other.example")).unwrap(), DEFAULT_NAME);
        assert_eq!(picked(Some("127.0.0.1:8080")).unwrap(), DEFAULT_NAME);
        assert_eq!(registry.remove("media", media), 0);
        assert_eq!(picked(Some("media.example")).unwrap(), DEFAULT_NAME);
    }

    #[test]
    fn tunnel_limits() {
        let registry = Registry::default();
        let ids: Vec<u64> = (0..MAX_TUNNELS_PER_NAME)
            .map(|_| registry.add("a", session()).unwrap())
            .collect();
        assert!(registry.add("a", session()).is_none());
        // A refused add leaves nothing behind.
        assert_eq!(registry.origins.lock().unwrap().len(), 1);
        assert_eq!(registry.remove("a", ids[0]), MAX_TUNNELS_PER_NAME - 1);
        assert!(registry.add("a", session()).is_some());
    }

    #[test]
    fn in_flight_per_address() {
        let in_flight = Arc::new(InFlight::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let permits: Vec<Permit> = (0..MAX_IN_FLIGHT_PER_CLIENT)
            .map(|_| in_flight.acquire(ip).unwrap())
            .collect();
        assert!(in_flight.acquire(ip).is_none());
        assert!(in_flight.acquire("192.0.2.2".parse().unwrap()).is_some());
        drop(permits);
        assert!(in_flight.0.lock().unwrap().is_empty());
        assert!(in_flight.acquire(ip).is_some());
    }
}
