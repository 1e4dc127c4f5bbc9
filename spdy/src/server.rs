//! HTTP over SPDY, server side: serve a hyper service (see
//! [`HttpService`]) from `http::Request` to `http::Response`, with
//! streaming bodies both ways and server push ([`Pusher`], in each
//! request's extensions).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::service::service_fn;
//! use spdy::RecvBody;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4040").await?;
//! spdy::server::Builder::new()
//!     .serve(listener, service_fn(|req: http::Request<RecvBody>| async move {
//!         let body = Full::new(Bytes::from(format!("you asked for {}\n", req.uri().path())));
//!         Ok::<_, std::convert::Infallible>(http::Response::new(body))
//!     }))
//!     .await
//! # }
//! ```
//!
//! A tower service, such as an axum `Router`, goes through hyper-util's
//! adapter: `.serve(listener, TowerToHyperService::new(router))` (see
//! `examples/axum.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body::Body;
use spdy_proto::frame::{RstStatus, Version};
use spdy_proto::header_block::CompressConfig;
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Config, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::body::{send_body, send_body_within, RecvBody};
use crate::error::Error;
pub use crate::reset_budget::{ResetBudget, ResetBudgets};
use crate::{headers, Handle, IncomingStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a server serves: any [`hyper::service::Service`] taking a
/// `Request<RecvBody>` and answering a `Response<B>`, `B` any
/// [`http_body::Body`]: the bound hyper's own `serve_connection` puts on
/// a service, plus `Send + Sync + 'static` and a `Send` future, since each
/// stream is served by a task of its own. An error is answered with 500.
///
/// - A closure or an async function: wrap it in
///   [`hyper::service::service_fn`].
/// - A tower `Service` (an axum `Router`, a tower-http layer around
///   anything): wrap it in `hyper_util::service::TowerToHyperService`.
///
/// This trait only names that bound, as hyper's `HttpService` does: it is
/// implemented for every such service and cannot be implemented otherwise.
/// There is no blanket implementation for closures beside it: Rust's
/// coherence rules allow one blanket implementation or the other, not
/// both, and taking hyper's trait is what lets the rest of the ecosystem
/// plug in.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hyper service of `Request<RecvBody>` that spdy can serve",
    note = "wrap a closure in `hyper::service::service_fn`, a tower service in `hyper_util::service::TowerToHyperService`",
    note = "the service must be `Send + Sync + 'static`, its future `Send`, its response body `Send`"
)]
pub trait HttpService:
    hyper::service::Service<
        Request<RecvBody>,
        Response = Response<Self::ResBody>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    >
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// The response body.
    type ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: hyper::service::Service<Request<RecvBody>, Response = Response<B>> + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type ResBody = B;
}

mod sealed {
    use super::*;

    pub trait Sealed {}

    impl<S> Sealed for S where S: hyper::service::Service<Request<RecvBody>> {}
}

/// Settings for serving.
#[derive(Debug, Clone)]
pub struct Builder {
    version: Option<Version>,
    config: Config,
    drain_timeout: Duration,
    send_timeout: Option<Duration>,
    recv_timeout: Option<Duration>,
    reset_budget: Option<ResetBudget>,
}

/// How long a server keeps a session with no stream open: nginx's
/// `keepalive_timeout` (75 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// A server PINGs a client it has heard nothing from for this long...
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// ...and drops it if the answer does not come within this.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a response body may wait for a client that takes none of it
/// (nginx's `send_timeout`: 60 s).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request body may send nothing while the service reads it
/// (nginx's `client_body_timeout`: 60 s).
pub const DEFAULT_RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// The session settings a server starts from: [`Config::default()`]'s
/// limits, plus what a server facing strangers needs and a client does
/// not: an idle timeout ([`DEFAULT_IDLE_TIMEOUT`]) and keepalive PINGs
/// ([`DEFAULT_KEEPALIVE_IDLE`], [`DEFAULT_KEEPALIVE_TIMEOUT`]), so that a
/// vanished client does not hold a connection forever; and response
/// headers sent uncompressed (zlib stored blocks, which every SPDY peer
/// reads), as nginx's `spdy_headers_comp 0` does: a deflate stream costs
/// about 250 KiB for the life of each connection that answered once, and
/// compressing secrets beside attacker-chosen text is CRIME's opening.
pub fn default_config() -> Config {
    Config::default()
        .with_idle_timeout(Some(DEFAULT_IDLE_TIMEOUT))
        .with_keepalive(DEFAULT_KEEPALIVE_IDLE, DEFAULT_KEEPALIVE_TIMEOUT)
        .with_compression(CompressConfig {
            level: 0,
            ..CompressConfig::default()
        })
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            version: None,
            config: default_config(),
            drain_timeout: Duration::from_secs(30),
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
            recv_timeout: Some(DEFAULT_RECV_TIMEOUT),
            reset_budget: None,
        }
    }
}

impl Builder {
    /// Accepts SPDY/2, 3 and 3.1, detected from the client's first frame.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Speaks only `version` (for a connection whose version was agreed out
    /// of band, such as ALPN or an Upgrade header).
    pub fn version(mut self, version: Version) -> Builder {
        self.version = Some(version);
        self
    }

    /// Session limits, windows and timeouts. This replaces the whole
    /// configuration: start from [`default_config()`] to keep a server's
    /// idle timeout and keepalive.
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// How long a graceful shutdown waits for open streams before the
    /// connection is dropped. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Builder {
        self.drain_timeout = timeout;
        self
    }

    /// How long a response body may wait for a client that accepts none of
    /// it (its window stays shut) before the stream is reset with CANCEL
    /// (`None`: forever). A client that stops reading then costs its
    /// window for this long, not for ever. Default 60 s.
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.send_timeout = timeout;
        self
    }

    /// How long a request body may send nothing while the service waits
    /// for it before the stream is reset with CANCEL and the body ends with
    /// [`Error::RecvTimeout`] (`None`: forever). Default 60 s.
    pub fn recv_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.recv_timeout = timeout;
        self
    }

    /// Counts the resets of this connection's peer also against `budget`,
    /// shared with other connections (of one client address, say: see
    /// [`ResetBudgets`]), on top of the session's own limit.
    pub fn reset_budget(mut self, budget: ResetBudget) -> Builder {
        self.reset_budget = Some(budget);
        self
    }

    /// Serves one connected socket until the client goes away (any socket:
    /// a server may run on a connection it dialed, as an origin behind NAT
    /// does toward its proxy).
    pub async fn serve_connection<T, S>(&self, io: T, service: S) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService,
    {
        self.serve_connection_until(io, service, std::future::pending::<()>())
            .await
    }

    /// Like [`serve_connection`](Self::serve_connection), and when `shutdown`
    /// completes: GOAWAY, let open streams finish (at most the drain
    /// timeout), then close.
    pub async fn serve_connection_until<T, S>(
        &self,
        io: T,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService,
    {
        let (handle, conn) = match self.version {
            Some(version) => crate::handshake(io, Role::Server, version, self.config.clone()),
            None => crate::handshake_detect(io, self.config.clone()),
        };
        let conn = match &self.reset_budget {
            Some(budget) => conn.with_reset_budget(budget.clone()),
            None => conn,
        };
        let mut driver = tokio::spawn(conn);
        let service = Arc::new(service);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                incoming = handle.accept() => {
                    let Some(incoming) = incoming else { break };
                    let version = handle.version().unwrap_or(Version::V3);
                    let service = service.clone();
                    let handle = handle.clone();
                    let timeouts = (self.send_timeout, self.recv_timeout);
                    tokio::spawn(async move {
                        serve_stream(version, incoming, &*service, handle, timeouts).await;
                    });
                }
                () = &mut shutdown => {
                    handle.go_away();
                    break;
                }
                result = &mut driver => {
                    return result.unwrap_or(Err(Error::ConnectionClosed));
                }
            }
        }
        // Streams the session accepted but nobody took: refused, so the
        // client may retry them (they are under our GOAWAY's last-good id).
        handle.refuse_incoming();
        drop(handle);
        match tokio::time::timeout(self.drain_timeout, &mut driver).await {
            Ok(result) => result.unwrap_or(Err(Error::ConnectionClosed)),
            Err(_) => {
                driver.abort();
                Err(Error::ConnectionClosed)
            }
        }
    }

    /// Accepts connections on `listener` and serves each (plain TCP, the
    /// version detected per connection) with the one `service`, shared.
    /// Runs until accepting fails.
    pub async fn serve<S>(&self, listener: TcpListener, service: S) -> std::io::Result<()>
    where
        S: HttpService,
    {
        let service = Arc::new(service);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let builder = self.clone();
            let service = service.clone();
            tokio::spawn(async move {
                let _ = builder.serve_connection(tcp, service).await;
            });
        }
    }
}

/// Serves one connection with default settings (version detected).
pub async fn serve_connection<T, S>(io: T, service: S) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    Builder::new().serve_connection(io, service).await
}

/// Pushes responses associated with the request it came with; found in the
/// request's extensions.
#[derive(Debug, Clone)]
pub struct Pusher {
    handle: Handle,
    stream: crate::StreamId,
    version: Version,
}

impl Pusher {
    /// Pushes `response` as the answer to a GET of `uri` (an absolute URI:
    /// scheme, host and path name the resource). The body is sent by a task
    /// of its own. Fails if the request's stream has already been answered
    /// completely (pushes must start before it ends).
    pub fn push<B>(&self, uri: http::Uri, response: Response<B>) -> Result<(), Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (scheme, host) = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => (s.to_owned(), a.as_str().to_owned()),
            _ => {
                return Err(
                    headers::HeaderError::Missing("scheme and host in the pushed URI").into(),
                )
            }
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut block = headers::response_block(self.version, &response);
        // The spec requires the URL; the method (always GET for a push) is
        // added too, since node-spdy's client refuses pushes without it.
        if self.version == Version::V2 {
            block.push("url", uri.to_string());
            block.push("method", "GET");
        } else {
            block.push(":scheme", scheme);
            block.push(":host", host);
            block.push(":path", path);
            block.push(":method", "GET");
        }
        let send = self.handle.push(self.stream, block, 0)?;
        let body = response.into_body();
        tokio::spawn(async move {
            let _ = send_body(body, send).await;
        });
        Ok(())
    }
}

/// Turns one incoming stream into a request, calls the service, and sends
/// its response.
async fn serve_stream<S: HttpService>(
    version: Version,
    incoming: IncomingStream,
    service: &S,
    handle: Handle,
    (send_timeout, recv_timeout): (Option<Duration>, Option<Duration>),
) {
    if incoming.unidirectional {
        let _ = incoming.refuse(RstStatus::ProtocolError);
        return;
    }
    let id = incoming.id();
    let parts = headers::request_parts(version, &incoming.headers);
    let (mut responder, recv) = incoming.into_parts();
    let mut parts = match parts {
        Ok(parts) => parts,
        Err(_) => {
            // 3.2.1: a SYN_STREAM without the required headers gets "a HTTP
            // 400 Bad Request reply".
            let _ = responder.reply(status_block(version, StatusCode::BAD_REQUEST), true);
            return;
        }
    };
    let expected = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let head = parts.method == http::Method::HEAD;
    parts.extensions.insert(Pusher {
        handle,
        stream: id,
        version,
    });
    let body = RecvBody::new(recv, expected).with_recv_timeout(recv_timeout);
    let request = Request::from_parts(parts, body);
    // A stream reset before the answer drops the service's future: the
    // work (a query, a request to another server) stops with it.
    let call = service.call(request);
    let reset = std::future::poll_fn(|cx| responder.poll_reset(cx));
    let outcome = tokio::select! {
        biased;
        outcome = call => Some(outcome.map_err(drop)),
        _ = reset => None,
    };
    let response = match outcome {
        None => return,
        Some(Ok(response)) => response,
        Some(Err(_)) => {
            let _ = responder.reply(
                status_block(version, StatusCode::INTERNAL_SERVER_ERROR),
                true,
            );
            return;
        }
    };
    let block = headers::response_block(version, &response);
    let body = response.into_body();
    let fin = head || body.is_end_stream();
    let Ok(send) = responder.reply(block, fin) else {
        return;
    };
    if !fin {
        let _ = send_body_within(body, send, send_timeout).await;
    }
}

fn status_block(version: Version, status: StatusCode) -> HeaderBlock {
    let response = Response::builder()
        .status(status)
        .body(())
        .unwrap_or_default();
    headers::response_block(version, &response)
}
