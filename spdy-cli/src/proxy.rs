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
use std::time::{Duration, Instant};

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
/// Wrong tokens whose refusal is being delayed, per address and in all:
/// beyond these a wrong token is refused at once, so that the delay
/// cannot be used to make the proxy hold sockets.
const MAX_DELAYED_REFUSALS_PER_ADDRESS: usize = 4;
const MAX_DELAYED_REFUSALS: usize = 256;
/// What hyper may buffer per public HTTP/1.1 connection, each way (its
/// default is about 400 KiB): a client that reads nothing costs this on
/// top of its tunnel stream's window, and the socket's own buffer does the
/// rest. Also the longest request head.
const PUBLIC_BUFFER: usize = 64 * 1024;
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
    /// A response whose public client accepts no bytes for this long is
    /// reset (its tunnel stream freed) and the client's connection closed
    /// (nginx's send_timeout). 0s: never.
    #[arg(long, default_value = "60s", value_name = "DUR", value_parser = crate::timeouts::duration)]
    send_timeout: Duration,
    /// How long a wrong token waits for its refusal (slows guessing).
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = crate::timeouts::duration, hide = true)]
    refusal_delay: Duration,
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
    /// Also returns the streams the name's tunnels have in all.
    fn pick(&self, host: Option<&str>) -> Result<(String, SendRequest, usize), String> {
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
        let capacity = tunnels.len() * tunnel::MAX_STREAMS as usize;
        match tunnels.last() {
            Some(tunnel) => Ok((name, tunnel.send.clone(), capacity)),
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
    let in_flight = Arc::new(Admission::default());
    let token: Option<Arc<str>> = args.token.as_deref().map(Arc::from);
    let gate = Arc::new(Gate {
        token,
        delay: args.refusal_delay,
        delayed: Mutex::default(),
    });
    tokio::spawn(accept_origins(tunnels, tls, registry.clone(), gate));
    let (quiet, send_timeout) = (args.quiet, args.send_timeout);
    // SIGINT / SIGTERM: no new clients, the requests in flight finish (at
    // most DRAIN), exit 0.
    let stopped = shutdown::on_signal("spdy proxy");
    let mut connections = tokio::task::JoinSet::new();
    let reset_budgets = spdy::server::ResetBudgets::new(crate::serve::RESETS_PER_ADDRESS);
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer, guard) = tokio::select! {
            accepted = public.accept() => accepted,
            () = shutdown::stopped(stopped.clone()) => break,
        };
        let _ = tcp.set_nodelay(true);
        let (registry, in_flight) = (registry.clone(), in_flight.clone());
        // A SPDY client's resets count against its address's budget too.
        let public_tls = public_tls.as_ref().map(|acceptor| {
            let budget = reset_budgets.for_address(peer.ip());
            acceptor
                .clone()
                .spdy(spdy::server::Builder::new().reset_budget(budget))
        });
        let stop = shutdown::stopped(stopped.clone());
        connections.spawn(async move {
            let stalled = Arc::new(tokio::sync::Notify::new());
            let client = Client {
                peer,
                tls: public_tls.is_some(),
                quiet,
                send_timeout,
                stalled: stalled.clone(),
            };
            let service = move |req: Request<RecvBody>| {
                let (registry, in_flight) = (registry.clone(), in_flight.clone());
                let client = client.clone();
                async move { Ok::<_, Infallible>(forward(&registry, &in_flight, req, client).await) }
            };
            match public_tls {
                // SPDY (by ALPN) or HTTP/1.1, the same service.
                Some(acceptor) => {
                    if let Ok(accepted) = acceptor.accept(tcp).await {
                        // A stalled response ends an HTTP/1.1 connection
                        // (nothing else can go on it); on a SPDY session
                        // only its stream ends.
                        let one_at_a_time = accepted.protocol() == Protocol::Http1;
                        tokio::select! {
                            _ = accepted.serve_until(service_fn(service), stop) => {}
                            () = stalled.notified(), if one_at_a_time => {}
                        }
                    }
                }
                None => {
                    let service =
                        service_fn(move |req: Request<Incoming>| service(req.map(RecvBody::wrap)));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEAD_TIMEOUT)
                        .max_buf_size(PUBLIC_BUFFER)
                        .serve_connection(TokioIo::new(tcp), service);
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        // (Dropping the connection closes it.)
                        () = stalled.notified() => {}
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
#[derive(Debug, Clone)]
struct Client {
    peer: SocketAddr,
    /// Over TLS (X-Forwarded-Proto: https).
    tls: bool,
    quiet: bool,
    send_timeout: Duration,
    /// Told when a response of this connection stalled (its client
    /// accepted nothing for `send_timeout`): the connection is closed.
    stalled: Arc<tokio::sync::Notify>,
}

// ===== origins =====

/// Who may open a tunnel: the token, and the refusals being delayed.
struct Gate {
    token: Option<Arc<str>>,
    /// How long a wrong token waits for its refusal.
    delay: Duration,
    /// Refusals waiting, in all and by address.
    delayed: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A refusal being delayed; the count goes down when it is dropped.
struct Delayed<'a> {
    gate: &'a Gate,
    ip: IpAddr,
}

impl Gate {
    /// A place among the delayed refusals for `ip`, or `None` when it (or
    /// everyone) has too many waiting already.
    fn delay(&self, ip: IpAddr) -> Option<Delayed<'_>> {
        let mut delayed = self.delayed.lock().ok()?;
        let (total, by_ip) = &mut *delayed;
        let of_ip = by_ip.entry(ip).or_default();
        if *total >= MAX_DELAYED_REFUSALS || *of_ip >= MAX_DELAYED_REFUSALS_PER_ADDRESS {
            if *of_ip == 0 {
                by_ip.remove(&ip);
            }
            return None;
        }
        *of_ip += 1;
        *total += 1;
        Some(Delayed { gate: self, ip })
    }
}

impl Drop for Delayed<'_> {
    fn drop(&mut self) {
        if let Ok(mut delayed) = self.gate.delayed.lock() {
            let (total, by_ip) = &mut *delayed;
            *total = total.saturating_sub(1);
            if let Some(count) = by_ip.get_mut(&self.ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    by_ip.remove(&self.ip);
                }
            }
        }
    }
}

async fn accept_origins(
    mut listener: listen::Listener,
    tls: Option<Acceptor>,
    registry: Arc<Registry>,
    token: Arc<Gate>,
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
async fn serve_origin<I>(io: I, peer: SocketAddr, registry: Arc<Registry>, gate: Arc<Gate>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (registry, gate) = (registry.clone(), gate.clone());
        async move { Ok::<_, Infallible>(register(req, peer, &registry, &gate).await) }
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
async fn register(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    registry: &Arc<Registry>,
    gate: &Gate,
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
    if let Some(token) = gate.token.as_deref() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        if !tunnel::token_matches(token, presented) {
            // A wrong token waits before its refusal, so that guessing is
            // slow; the waits are bounded per address and in all, beyond
            // which the refusal comes at once (holding sockets for a
            // stranger is what the bound prevents).
            let why = match gate.delay(peer.ip()) {
                Some(_delayed) => {
                    eprintln!(
                        "spdy proxy: origin from {peer}: wrong or missing token; refusing in {:?}",
                        gate.delay
                    );
                    tokio::time::sleep(gate.delay).await;
                    "wrong or missing token".to_owned()
                }
                None => format!(
                    "wrong or missing token (at once: {MAX_DELAYED_REFUSALS_PER_ADDRESS} \
                     refusals already waiting from {}, or {MAX_DELAYED_REFUSALS} in all)",
                    peer.ip()
                ),
            };
            let mut response = refuse(StatusCode::UNAUTHORIZED, why);
            let headers = response.headers_mut();
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            // The next guess needs a new connection.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
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

type ProxyBody = Either<Held, Full<Bytes>>;

/// Admission of public requests to a name's tunnels, by client address.
///
/// A request holds one tunnel stream until its response is read to the
/// end, so a client that reads nothing holds its streams, and clients of
/// a few addresses must not hold them all. With C the streams of the
/// tunnels serving a name (256 per tunnel):
///
/// - one address holds at most C/8 of them (32 with one tunnel);
/// - the last C/4 are a reserve, in which an address may take a stream
///   only while it holds fewer than 2.
///
/// So taking every stream needs at least 6 + C/8 addresses (38 with one
/// tunnel), and until then an address holding nothing is admitted.
///
/// Each address also has a budget of requests abandoned before their
/// answer ([`ABANDONS_PER_ADDRESS`]): those end in a reset the origin
/// counts against its rapid-reset limit, and one address must not be
/// able to spend that limit for everyone and close the tunnel.
#[derive(Default)]
struct Admission(Mutex<HashMap<String, Load>>, Mutex<Abandons>);

/// Requests an address may abandon before their answer (its body broken,
/// or gone, or the origin too slow) per [`ABANDON_WINDOW`]; beyond, its
/// requests get 429 until the window ends. The origin accepts
/// `tunnel::ORIGIN_PEER_RESETS` (10,000 per 10 s): it takes 100 addresses
/// at this rate to reach it.
const ABANDONS_PER_ADDRESS: u32 = 100;
const ABANDON_WINDOW: Duration = Duration::from_secs(10);
/// Addresses whose abandons are counted at once: a bound on the map (the
/// windows that ended are swept when it is full).
const MAX_ABANDONING_ADDRESSES: usize = 16_384;

/// Abandoned requests by address: the start of its window and the count.
#[derive(Default)]
struct Abandons(HashMap<IpAddr, (Instant, u32)>);

impl Abandons {
    fn exhausted(&self, ip: IpAddr, now: Instant) -> bool {
        self.0.get(&ip).is_some_and(|&(start, count)| {
            now.duration_since(start) < ABANDON_WINDOW && count >= ABANDONS_PER_ADDRESS
        })
    }

    fn record(&mut self, ip: IpAddr, now: Instant) {
        if self.0.len() >= MAX_ABANDONING_ADDRESSES && !self.0.contains_key(&ip) {
            self.0
                .retain(|_, (start, _)| now.duration_since(*start) < ABANDON_WINDOW);
            if self.0.len() >= MAX_ABANDONING_ADDRESSES {
                return;
            }
        }
        let (start, count) = self.0.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= ABANDON_WINDOW {
            (*start, *count) = (now, 0);
        }
        *count = count.saturating_add(1);
    }
}

/// A request waiting for its answer: dropped armed (the client went, its
/// body broke, the origin was too slow), it counts as abandoned.
struct Unanswered<'a> {
    admission: &'a Admission,
    ip: IpAddr,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut abandons) = self.admission.1.lock() {
                abandons.record(self.ip, Instant::now());
            }
        }
    }
}

/// The requests in flight to one name.
#[derive(Default)]
struct Load {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// What an address may hold of a name's tunnel streams.
fn address_share(capacity: usize) -> usize {
    (capacity / 8).max(1)
}

/// The streams kept for addresses that hold few.
fn reserve(capacity: usize) -> usize {
    capacity / 4
}

/// What an address may hold once the reserve is in use.
const RESERVE_SHARE: usize = 2;

/// One request in flight from an address to a name; released when
/// dropped.
struct Permit {
    admission: Arc<Admission>,
    name: String,
    ip: IpAddr,
}

impl Admission {
    /// A permit for a request from `ip` to `name`, whose tunnels have
    /// `capacity` streams; why not, if refused.
    fn acquire(
        self: &Arc<Self>,
        name: &str,
        ip: IpAddr,
        capacity: usize,
    ) -> Result<Permit, String> {
        let mut loads = self
            .0
            .lock()
            .map_err(|_| "the proxy is broken".to_owned())?;
        let abandoned = self
            .1
            .lock()
            .map_or(true, |a| a.exhausted(ip, Instant::now()));
        if abandoned {
            return Err(format!(
                "more than {ABANDONS_PER_ADDRESS} requests from {ip} abandoned before their \
                 answer in {ABANDON_WINDOW:?}"
            ));
        }
        let load = loads.entry(name.to_owned()).or_default();
        let held = load.by_ip.get(&ip).copied().unwrap_or(0);
        let free = capacity.saturating_sub(load.total);
        let refused = if free == 0 {
            Some(format!("all {capacity} streams to {name} are in use"))
        } else if held >= address_share(capacity) {
            Some(format!(
                "{held} requests to {name} in flight from {ip}, its share of {capacity} streams"
            ))
        } else if free <= reserve(capacity) && held >= RESERVE_SHARE {
            Some(format!(
                "{held} requests to {name} in flight from {ip}, and only {free} of {capacity} \
                 streams left"
            ))
        } else {
            None
        };
        if let Some(why) = refused {
            if load.total == 0 {
                loads.remove(name);
            }
            return Err(why);
        }
        load.total += 1;
        *load.by_ip.entry(ip).or_default() += 1;
        Ok(Permit {
            admission: self.clone(),
            name: name.to_owned(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Ok(mut loads) = self.admission.0.lock() else {
            return;
        };
        let Some(load) = loads.get_mut(&self.name) else {
            return;
        };
        load.total = load.total.saturating_sub(1);
        if let Some(count) = load.by_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                load.by_ip.remove(&self.ip);
            }
        }
        if load.total == 0 {
            loads.remove(&self.name);
        }
    }
}

/// A response body from the tunnel, holding its request's permit until it
/// is done, and watched: when the client accepts no bytes for the send
/// timeout, the body and the permit are dropped (which resets the tunnel
/// stream, CANCEL) and the client's connection is told to close.
struct Held {
    watched: Arc<Mutex<Watched>>,
    /// Dropped with the body: the watchdog then stops.
    _done: tokio::sync::oneshot::Sender<()>,
}

struct Watched {
    body: Option<(RecvBody, Permit)>,
    /// Since when a frame handed out waits for the client to take it (the
    /// server polls for the next one when the last is written); `None`
    /// while the server waits for the origin instead.
    waiting_since: Option<Instant>,
    timed_out: Option<Duration>,
}

impl Held {
    fn new(body: RecvBody, permit: Permit, client: &Client, what: String) -> Held {
        let watched = Arc::new(Mutex::new(Watched {
            body: Some((body, permit)),
            waiting_since: None,
            timed_out: None,
        }));
        let (done, ended) = tokio::sync::oneshot::channel();
        if !client.send_timeout.is_zero() {
            tokio::spawn(watchdog(watched.clone(), ended, client.clone(), what));
        }
        Held {
            watched,
            _done: done,
        }
    }
}

/// Ends a response whose client takes nothing for `send_timeout` (found
/// within twice that: it looks again every `send_timeout` at most).
async fn watchdog(
    watched: Arc<Mutex<Watched>>,
    mut ended: tokio::sync::oneshot::Receiver<()>,
    client: Client,
    what: String,
) {
    let timeout = client.send_timeout;
    loop {
        let wait = match watched.lock() {
            Ok(w) => w
                .waiting_since
                .map_or(timeout, |since| timeout.saturating_sub(since.elapsed())),
            Err(_) => return,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut ended => return,
        }
        let taken = match watched.lock() {
            Ok(mut w) if w.waiting_since.is_some_and(|s| s.elapsed() >= timeout) => {
                w.timed_out = Some(timeout);
                w.body.take()
            }
            Ok(_) => continue,
            Err(_) => return,
        };
        // (Dropped outside the lock: the stream's reset takes the
        // session's.)
        drop(taken);
        if !client.quiet {
            eprintln!(
                "{} {what}: the client took nothing for {timeout:?}; reset",
                client.peer
            );
        }
        client.stalled.notify_one();
        return;
    }
}

impl Body for Held {
    type Data = Bytes;
    type Error = spdy::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, spdy::Error>>> {
        let Ok(mut watched) = self.watched.lock() else {
            return Poll::Ready(Some(Err(spdy::Error::ConnectionClosed)));
        };
        let Some((body, _)) = watched.body.as_mut() else {
            return Poll::Ready(watched.timed_out.map(|timeout| {
                Err(spdy::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client took nothing for {timeout:?}"),
                )))
            }));
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => watched.waiting_since = Some(Instant::now()),
            Poll::Pending => watched.waiting_since = None,
            // The end: the stream and the permit go at once.
            Poll::Ready(None | Some(Err(_))) => {
                watched.waiting_since = None;
                let finished = watched.body.take();
                drop(watched);
                drop(finished);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.watched.lock().map_or(true, |w| {
            w.timed_out.is_none() && w.body.as_ref().is_none_or(|(b, _)| b.is_end_stream())
        })
    }

    fn size_hint(&self) -> SizeHint {
        self.watched
            .lock()
            .ok()
            .and_then(|w| w.body.as_ref().map(|(b, _)| b.size_hint()))
            .unwrap_or_default()
    }
}

/// Why a request's target and its `Host` do not name the same authority
/// (an absolute-form target, RFC 9112 3.2.2, whose authority replaces
/// `Host`: a proxy that routes by one and passes on the other could be
/// made to send a request for one site to another).
fn host_mismatch(uri: &http::Uri, host: Option<&HeaderValue>) -> Option<String> {
    let (authority, host) = (uri.authority()?, host?);
    let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    let same = match host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    {
        Some(host) => {
            host.host().eq_ignore_ascii_case(authority.host())
                && host.port_u16().unwrap_or(default_port)
                    == authority.port_u16().unwrap_or(default_port)
        }
        None => false,
    };
    (!same).then(|| format!("the target names {authority} but Host is {host:?}"))
}

/// Why an origin's answer cannot go to a public client, if it cannot: an
/// interim or protocol-switching status (1xx, 101 among them) is an
/// answer about the tunnel's hop, not a response, and SPDY forbids the
/// connection-level headers ("MUST not be sent"); passed on, either would
/// let an origin speak to the public client's connection itself.
fn hop_level(response: &Response<RecvBody>) -> Option<String> {
    if response.status().is_informational() {
        return Some(format!(
            "answered {}, a hop-level status",
            response.status()
        ));
    }
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ]
    .into_iter()
    .find(|name| response.headers().contains_key(*name))
    .map(|name| format!("sent a {name} header, which SPDY forbids"))
}

/// Sends a public request down its origin's tunnel and the answer back.
async fn forward(
    registry: &Registry,
    in_flight: &Arc<Admission>,
    req: Request<RecvBody>,
    client: Client,
) -> Response<ProxyBody> {
    let (peer, tls, quiet) = (client.peer, client.tls, client.quiet);
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
    if let Some(why) = host_mismatch(req.uri(), req.headers().get(header::HOST)) {
        log(StatusCode::BAD_REQUEST, "proxy");
        return plain(StatusCode::BAD_REQUEST, why);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let (name, send, capacity) = match registry.pick(host.as_deref()) {
        Ok(picked) => picked,
        Err(why) => {
            log(StatusCode::BAD_GATEWAY, "proxy");
            return plain(StatusCode::BAD_GATEWAY, why);
        }
    };
    let permit = match in_flight.acquire(&name, peer.ip(), capacity) {
        Ok(permit) => permit,
        Err(why) => {
            log(StatusCode::TOO_MANY_REQUESTS, &name);
            return plain(StatusCode::TOO_MANY_REQUESTS, why);
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
    let mut unanswered = Unanswered {
        admission: in_flight,
        ip: peer.ip(),
        armed: true,
    };
    let sent = send.send_request(Request::from_parts(parts, body));
    let answered = tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sent).await;
    // Answered, or refused by the origin: not the client's doing.
    unanswered.armed = !matches!(answered, Ok(Ok(_)) | Ok(Err(spdy::Error::Stream(_))));
    drop(unanswered);
    let response = match answered {
        Ok(Ok(response)) => response,
        // The client's own body broke (it went away, or sent a malformed
        // one): the tunnel stream is reset already; the answer is the
        // client's fault, if it is still there to read it.
        Ok(Err(e @ spdy::Error::Body(_))) => {
            log(StatusCode::BAD_REQUEST, &name);
            return plain(
                StatusCode::BAD_REQUEST,
                format!("the request body failed: {}", describe(&e)),
            );
        }
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
    // (Dropping the refused response resets its tunnel stream.)
    if let Some(why) = hop_level(&response) {
        log(StatusCode::BAD_GATEWAY, &name);
        eprintln!("spdy proxy: origin {name} {why}");
        return plain(StatusCode::BAD_GATEWAY, format!("origin {name} {why}"));
    }
    let what = format!("{method} {target}");
    let mut response = response.map(|body| Either::Left(Held::new(body, permit, &client, what)));
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
        spdy::client::Builder::new()
            .version(Version::V3_1)
            .handshake(tokio::io::duplex(64).0)
            .0
    }

    #[test]
    fn routing_by_host() {
        let registry = Registry::default();
        let picked = |host: Option<&str>| registry.pick(host).map(|(name, _, _)| name);
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
    fn admission_by_address() {
        let admission = Arc::new(Admission::default());
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let capacity = 256;
        let (share, reserve) = (address_share(capacity), reserve(capacity));
        assert_eq!((share, reserve), (32, 64));
        // Addresses that never finish take their share each, until the
        // reserve is reached...
        let mut held = Vec::new();
        let mut n = 1;
        while capacity - held.len() > reserve {
            match admission.acquire("a", ip(n), capacity) {
                Ok(permit) => held.push(permit),
                Err(_) => n += 1,
            }
        }
        assert_eq!((n, held.len()), (6, capacity - reserve));
        // ...then each may take only a couple more, in the reserve.
        assert!(admission.acquire("a", ip(1), capacity).is_err());
        assert!(admission.acquire("a", ip(6), capacity).is_err());
        for n in 7..7 + reserve / RESERVE_SHARE {
            for _ in 0..RESERVE_SHARE {
                held.push(admission.acquire("a", ip(n as u8), capacity).unwrap());
            }
            assert!(admission.acquire("a", ip(n as u8), capacity).is_err());
        }
        // It took 6 + 32 addresses to hold every stream.
        assert_eq!(held.len(), capacity);
        let err = admission.acquire("a", ip(200), capacity).err().unwrap();
        assert!(err.contains("all 256 streams"), "{err}");
        // Another name has its own streams.
        assert!(admission.acquire("b", ip(1), capacity).is_ok());
        // Two tunnels: twice the share.
        drop(held);
        assert!(admission.0.lock().unwrap().is_empty());
        let two: Vec<Permit> = (0..64)
            .map(|_| admission.acquire("a", ip(1), 512).unwrap())
            .collect();
        assert!(admission.acquire("a", ip(1), 512).is_err());
        drop(two);
        assert!(admission.0.lock().unwrap().is_empty());
    }

    #[test]
    fn abandons_per_address() {
        let admission = Arc::new(Admission::default());
        let (ip, other) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        for _ in 0..ABANDONS_PER_ADDRESS {
            assert!(admission.acquire("a", ip, 256).is_ok());
            drop(Unanswered {
                admission: &admission,
                ip,
                armed: true,
            });
        }
        let err = admission.acquire("a", ip, 256).err().unwrap();
        assert!(err.contains("abandoned"), "{err}");
        // Answered requests do not count; other addresses are not held
        // back.
        drop(Unanswered {
            admission: &admission,
            ip: other,
            armed: false,
        });
        assert!(admission.acquire("a", other, 256).is_ok());
        // The window ends.
        let now = Instant::now();
        let later = now + ABANDON_WINDOW;
        let mut abandons = Abandons::default();
        for _ in 0..ABANDONS_PER_ADDRESS {
            abandons.record(ip, now);
        }
        assert!(abandons.exhausted(ip, now));
        assert!(!abandons.exhausted(ip, later));
        abandons.record(ip, later);
        assert!(!abandons.exhausted(ip, later));
    }

    #[test]
    fn absolute_targets_and_host() {
        let check = |uri: &str, host: Option<&str>| {
            let host = host.map(|h| HeaderValue::from_str(h).unwrap());
            host_mismatch(&uri.parse().unwrap(), host.as_ref())
        };
        assert!(check("/x", Some("a.example")).is_none());
        assert!(check("http://a.example/x", None).is_none());
        assert!(check("http://a.example/x", Some("a.example")).is_none());
        assert!(check("http://A.example:80/x", Some("a.EXAMPLE")).is_none());
        assert!(check("https://a.example/x", Some("a.example:443")).is_none());
        assert!(check("http://a.example/x", Some("b.example")).is_some());
        assert!(check("http://a.example/x", Some("a.example:8080")).is_some());
        assert!(check("http://a.example/x", Some("a example")).is_some());
    }

    #[test]
    fn delayed_refusals_are_bounded() {
        let gate = Gate {
            token: None,
            delay: Duration::from_secs(1),
            delayed: Mutex::default(),
        };
        let ip = IpAddr::from([192, 0, 2, 1]);
        let waiting: Vec<Delayed<'_>> = (0..MAX_DELAYED_REFUSALS_PER_ADDRESS)
            .map(|_| gate.delay(ip).unwrap())
            .collect();
        assert!(gate.delay(ip).is_none());
        assert!(gate.delay(IpAddr::from([192, 0, 2, 2])).is_some());
        drop(waiting);
        assert_eq!(gate.delayed.lock().unwrap().0, 0);
        assert!(gate.delayed.lock().unwrap().1.is_empty());
        assert!(gate.delay(ip).is_some());
    }
}
