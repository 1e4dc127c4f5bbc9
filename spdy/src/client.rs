//! HTTP over SPDY, client side: send an `http::Request`, get an
//! `http::Response` with a streaming body.
//!
//! One connected type, [`Client`], made by [`Client::connect`] (TCP),
//! [`tls::Connector::connect`](crate::tls::Connector::connect) (TLS, the
//! version agreed by ALPN) or [`Client::new`] from the two halves that
//! [`Builder::handshake`] starts on any socket. Requests go through a
//! [`SendRequest`], which is a tower `Service` with a real `poll_ready`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), spdy::Error> {
//! use http_body_util::Empty;
//! use spdy::client::{Builder, Client};
//! let mut client = Client::connect("127.0.0.1:4040", Builder::new()).await?;
//! client.ready().await?;
//! let req = http::Request::get("http://127.0.0.1:4040/").body(Empty::<bytes::Bytes>::new()).unwrap();
//! let mut res = client.send_request(req).await?;
//! let body = res.body_mut().collect_to_vec(1 << 20).await?;
//! # let _ = body; Ok(()) }
//! ```

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use spdy_proto::frame::{RstStatus, Version};
use spdy_proto::session::{Config, OpenOptions, Role, DEFAULT_STALL_TIMEOUT, DEFAULT_WINDOW};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;

use crate::body::{send_body, RecvBody};
use crate::conn::Connection;
use crate::error::Error;
use crate::{headers, Handle};

/// The priority of a request, as a request extension (0 highest; 0..=7 in
/// SPDY/3, 0..=3 in SPDY/2). Requests without it get 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(pub u8);

/// SPDY/3.1: the only version with a session window, so one stream cannot
/// take all of a connection's buffers.
pub const DEFAULT_VERSION: Version = Version::V3_1;
/// Receive window per stream: 64 KiB, the spec's default, so that peers
/// that ignore SETTINGS agree with us. It caps one download at 64 KiB per
/// round trip; a client that reads as fast as it can raises it (the `spdy`
/// command uses 4 MiB).
pub const DEFAULT_INITIAL_WINDOW: u32 = DEFAULT_WINDOW;
/// Receive window of the whole session (SPDY/3.1): 1 MiB, enough for 16
/// streams at full stream windows, and what the server can make us buffer.
pub const DEFAULT_SESSION_WINDOW: u32 = 1024 * 1024;
/// Streams the server may have open toward us at once, which for a client
/// are pushes: 100, the spec's recommended minimum.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Requests queued while the server's MAX_CONCURRENT_STREAMS is reached
/// (by [`SendRequest::send_request`] without [`SendRequest::ready`]):
/// 1024; beyond it opening fails rather than queue without bound.
pub const DEFAULT_MAX_PENDING_OPENS: usize = 1024;
/// Request-body bytes buffered per stream at most: 256 KiB, a few windows'
/// worth, the bound when the peer does no flow control.
pub const DEFAULT_MAX_SEND_BUFFER: usize = 256 * 1024;
/// Largest DATA frame sent: 16 KiB, so a new request overtakes a bulk
/// upload within one frame.
pub const DEFAULT_MAX_DATA_FRAME: usize = 16 * 1024;
/// Largest response header block accepted once decompressed: 64 KiB, as
/// browsers accept; a bigger one fails its stream (the decoder's default).
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Keepalive PINGs: off. A request in flight notices a dead server by its
/// own timeouts; a client that keeps an idle session (a tunnel, a pool)
/// turns them on to learn it is dead before it sends.
pub const DEFAULT_KEEPALIVE: Option<(Duration, Duration)> = None;
/// Idle sessions are kept: a client decides itself when to close.
pub const DEFAULT_IDLE_TIMEOUT: Option<Duration> = None;
/// How long a frame may stay half-received: 30 s
/// ([`DEFAULT_STALL_TIMEOUT`]); a server that stops mid-frame is dead.
pub const DEFAULT_FRAME_TIMEOUT: Option<Duration> = Some(DEFAULT_STALL_TIMEOUT);
/// How long a request body may wait on a shut window: 60 s, nginx's
/// `send_timeout`; a peer that does no flow control would stall it
/// forever.
pub const DEFAULT_WINDOW_STALL_TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));
/// Server push refused: pushes nobody takes would hold windows and memory.
pub const DEFAULT_ENABLE_PUSH: bool = false;

/// Settings for a client session.
///
/// Every limit a client may want to change has a method here, whose
/// default is the `DEFAULT_*` constant it names. The guards against a
/// hostile peer (rate limits, compression, control-frame budgets) stay in
/// [`Config`]: a client picks its server, and `Config` documents each one;
/// pass one with [`config`](Self::config) first, then the methods here.
#[derive(Debug, Clone)]
pub struct Builder {
    version: Version,
    config: Config,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            version: DEFAULT_VERSION,
            config: Builder::defaults(Config::default()),
        }
    }
}

impl Builder {
    /// SPDY/3.1 with the `DEFAULT_*` limits.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The client's defaults over `config`: one place where they are set.
    fn defaults(config: Config) -> Config {
        let decode = config
            .decode_limits()
            .with_max_header_block_len(DEFAULT_MAX_HEADER_BLOCK);
        let config = config
            .with_initial_window(DEFAULT_INITIAL_WINDOW)
            .with_session_window(DEFAULT_SESSION_WINDOW)
            .with_max_concurrent_streams(DEFAULT_MAX_CONCURRENT_STREAMS)
            .with_max_pending_opens(DEFAULT_MAX_PENDING_OPENS)
            .with_max_send_buffer(DEFAULT_MAX_SEND_BUFFER)
            .with_max_data_frame(DEFAULT_MAX_DATA_FRAME)
            .with_decode_limits(decode)
            .with_idle_timeout(DEFAULT_IDLE_TIMEOUT)
            .with_frame_timeout(DEFAULT_FRAME_TIMEOUT)
            .with_window_stall_timeout(DEFAULT_WINDOW_STALL_TIMEOUT)
            .with_accept_push(DEFAULT_ENABLE_PUSH);
        match DEFAULT_KEEPALIVE {
            Some((idle, timeout)) => config.with_keepalive(idle, timeout),
            None => config.without_keepalive(),
        }
    }

    /// The version to speak (default [`DEFAULT_VERSION`]). Over TLS the
    /// version is the one ALPN agreed on instead.
    pub fn version(mut self, version: Version) -> Builder {
        self.version = version;
        self
    }

    /// Every session limit at once, replacing what was set before except
    /// push, which stays [`enable_push`](Self::enable_push)'s: a client
    /// that accepts pushes must also take them, so it is said here, not by
    /// `Config::default()` (which accepts them).
    pub fn config(mut self, config: Config) -> Builder {
        let push = self.config.accept_push();
        self.config = config.with_accept_push(push);
        self
    }

    /// The session limits as they stand.
    pub fn get_config(&self) -> &Config {
        &self.config
    }

    /// Receive window per stream (default [`DEFAULT_INITIAL_WINDOW`]; see
    /// [`Config::with_initial_window`]).
    pub fn initial_window(mut self, bytes: u32) -> Builder {
        self.config = self.config.with_initial_window(bytes);
        self
    }

    /// Receive window of the session, SPDY/3.1 (default
    /// [`DEFAULT_SESSION_WINDOW`]; see [`Config::with_session_window`]).
    pub fn session_window(mut self, bytes: u32) -> Builder {
        self.config = self.config.with_session_window(bytes);
        self
    }

    /// Streams the server may open toward us, pushes (default
    /// [`DEFAULT_MAX_CONCURRENT_STREAMS`]).
    pub fn max_concurrent_streams(mut self, n: u32) -> Builder {
        self.config = self.config.with_max_concurrent_streams(n);
        self
    }

    /// Requests that may wait for the server's concurrency limit (default
    /// [`DEFAULT_MAX_PENDING_OPENS`]).
    pub fn max_pending_opens(mut self, n: usize) -> Builder {
        self.config = self.config.with_max_pending_opens(n);
        self
    }

    /// Request-body bytes buffered per stream (default
    /// [`DEFAULT_MAX_SEND_BUFFER`]; see [`Config::with_max_send_buffer`]).
    pub fn max_send_buffer(mut self, bytes: usize) -> Builder {
        self.config = self.config.with_max_send_buffer(bytes);
        self
    }

    /// Largest DATA frame sent (default [`DEFAULT_MAX_DATA_FRAME`]).
    pub fn max_data_frame(mut self, bytes: usize) -> Builder {
        self.config = self.config.with_max_data_frame(bytes);
        self
    }

    /// Largest decompressed response header block (default
    /// [`DEFAULT_MAX_HEADER_BLOCK`]; see
    /// [`DecodeLimits::with_max_header_block_len`](spdy_proto::codec::DecodeLimits::with_max_header_block_len)).
    pub fn max_header_block(mut self, bytes: usize) -> Builder {
        let decode = self.config.decode_limits().with_max_header_block_len(bytes);
        self.config = self.config.with_decode_limits(decode);
        self
    }

    /// Keepalive PINGs, `Some((idle, timeout))` (default
    /// [`DEFAULT_KEEPALIVE`]; see [`Config::with_keepalive`]).
    pub fn keepalive(mut self, keepalive: Option<(Duration, Duration)>) -> Builder {
        self.config = match keepalive {
            Some((idle, timeout)) => self.config.with_keepalive(idle, timeout),
            None => self.config.without_keepalive(),
        };
        self
    }

    /// Goes away after this long without a stream (default
    /// [`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config = self.config.with_idle_timeout(timeout);
        self
    }

    /// How long a frame may stay half-received (default
    /// [`DEFAULT_FRAME_TIMEOUT`]).
    pub fn frame_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config = self.config.with_frame_timeout(timeout);
        self
    }

    /// How long a request body may wait on a shut window (default
    /// [`DEFAULT_WINDOW_STALL_TIMEOUT`]).
    pub fn window_stall_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.config = self.config.with_window_stall_timeout(timeout);
        self
    }

    /// Whether the server does flow control (default true; `false` for
    /// spdystream, see [`Config::with_peer_flow_control`]).
    pub fn peer_flow_control(mut self, enabled: bool) -> Builder {
        self.config = self.config.with_peer_flow_control(enabled);
        self
    }

    /// Accepts server pushes, to be taken with
    /// [`SendRequest::accept_push`] (default [`DEFAULT_ENABLE_PUSH`]:
    /// pushes nobody takes would hold flow-control windows and memory, so
    /// without this they are refused).
    pub fn enable_push(mut self, enable: bool) -> Builder {
        self.config = self.config.with_accept_push(enable);
        self
    }

    /// Starts a client session on a connected socket (any socket: one this
    /// program accepted works as well as one it dialed). Spawn the
    /// [`Connection`], or give both to [`Client::new`].
    pub fn handshake<T>(self, io: T) -> (SendRequest, Connection<T>)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let (handle, conn) = crate::handshake(io, Role::Client, self.version, self.config);
        (
            SendRequest {
                handle,
                version: self.version,
            },
            conn,
        )
    }

    /// Connects to `addr` over TCP: [`Client::connect`].
    pub async fn connect(self, addr: impl ToSocketAddrs) -> Result<Client, Error> {
        Client::connect(addr, self).await
    }
}

/// Sends requests on one session. Clone it to send from several tasks; the
/// session goes away when the last clone is dropped.
///
/// It is a tower `Service`: [`poll_ready`](Self::poll_ready) is ready when
/// a request would go out at once, so a caller that waits for it never
/// queues requests past the server's MAX_CONCURRENT_STREAMS.
#[derive(Debug, Clone)]
pub struct SendRequest {
    handle: Handle,
    version: Version,
}

/// The future of [`SendRequest`]'s `Service::call`.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<RecvBody>, Error>> + Send + 'static>>;

impl<B> tower_service::Service<Request<B>> for SendRequest
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<RecvBody>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        SendRequest::poll_ready(self, cx)
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.send_request(req)
    }
}

impl SendRequest {
    /// Ready when a request sent now would go out at once: the session is
    /// open and the server's MAX_CONCURRENT_STREAMS is not reached (nor are
    /// earlier requests waiting for it). Pending otherwise, woken when a
    /// stream ends or SETTINGS raise the limit; an error once the session
    /// is going away or over, as `send_request` would then fail.
    ///
    /// Readiness is shared by all clones: two tasks that both saw it may
    /// both send, and the second request then waits in the bounded queue
    /// (see [`Builder::max_pending_opens`]).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut state = self.handle.shared.lock();
        if let Some(e) = state.terminal.clone() {
            return Poll::Ready(Err(e));
        }
        match state.session.can_open() {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => {
                state.wait_ready(cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// Waits until [`poll_ready`](Self::poll_ready) is ready.
    pub async fn ready(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Sends a request; the future gives the response once its headers
    /// arrive. The stream is opened here, before the future is polled, so
    /// requests go out in call order and [`poll_ready`](Self::poll_ready)
    /// counts this one at once. The request body is streamed with
    /// backpressure by a task of its own; the response body streams as it
    /// is read. If the peer's MAX_CONCURRENT_STREAMS is reached the request
    /// waits its turn in a bounded queue.
    pub fn send_request<B>(&self, req: Request<B>) -> ResponseFuture
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let version = self.version;
        let block = headers::request_block(version, &req);
        let (parts, body) = req.into_parts();
        let head = parts.method == http::Method::HEAD;
        let priority = parts.extensions.get::<Priority>().map_or(0, |p| p.0);
        let fin = body.is_end_stream();
        let options = OpenOptions {
            priority,
            fin,
            unidirectional: false,
        };
        let (send, mut recv) = match self.handle.open_stream(block, options) {
            Ok(halves) => halves,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        // A body that fails resets the stream, which wakes nothing on our
        // side: the body task reports its failure here, or the wait for the
        // reply would never end.
        let (failed, mut body_failed) = tokio::sync::oneshot::channel();
        if fin {
            drop(send);
        } else {
            tokio::spawn(async move {
                // A failure is reported to the peer by a reset, and to the
                // caller here (before the reply) or through the response.
                if let Err(e @ Error::Body(_)) = send_body(body, send).await {
                    let _ = failed.send(e);
                }
            });
        }
        // The shared state, not a `Handle` clone: a handle counts toward
        // keeping the session, and cloning one takes the lock twice.
        let shared = self.handle.shared.clone();
        Box::pin(async move {
            let reply = tokio::select! {
                reply = recv.reply() => reply?,
                // (A body sent whole drops the sender: this branch is then
                // disabled and the reply awaited alone.)
                Ok(e) = &mut body_failed => return Err(e),
            };
            match headers::response_parts(version, &reply) {
                Ok(parts) => {
                    // A body shorter or longer than its Content-Length is an
                    // error, not a clean end (none is expected for HEAD, 204,
                    // 304 and 1xx).
                    let bodiless = head
                        || parts.status == http::StatusCode::NO_CONTENT
                        || parts.status == http::StatusCode::NOT_MODIFIED
                        || parts.status.is_informational();
                    let expected = parts
                        .headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|_| !bodiless);
                    Ok(Response::from_parts(parts, RecvBody::new(recv, expected)))
                }
                Err(e) => {
                    // A SYN_REPLY without a status: "the client must reply
                    // with a RST_STREAM frame indicating a PROTOCOL ERROR".
                    let mut state = shared.lock();
                    if state
                        .session
                        .reset(recv.id(), RstStatus::ProtocolError)
                        .is_ok()
                    {
                        state.wake_driver();
                    }
                    Err(e.into())
                }
            }
        })
    }

    /// Pings the server; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        self.handle.ping().await
    }

    /// The next stream the server pushed, as the request it answers and the
    /// response; `None` once the session is over.
    pub async fn accept_push(&self) -> Option<Result<PushedResponse, Error>> {
        let incoming = self.handle.accept().await?;
        let associated_to = incoming.associated_to;
        let block = incoming.headers.clone();
        let recv = incoming.into_recv();
        let request = match headers::request_parts(self.version, &with_method(self.version, &block))
        {
            Ok(parts) => parts,
            Err(e) => return Some(Err(e.into())),
        };
        let mut response = http::Response::builder().status(200);
        if let Ok(parts) = headers::response_parts(self.version, &block) {
            response = response.status(parts.status);
            if let Some(h) = response.headers_mut() {
                h.extend(parts.headers);
            }
        }
        let response = match response.body(RecvBody::new(recv, None)) {
            Ok(r) => r,
            Err(e) => {
                return Some(Err(headers::HeaderError::Invalid {
                    what: "push",
                    detail: e.to_string(),
                }
                .into()))
            }
        };
        Some(Ok(PushedResponse {
            associated_to,
            request,
            response,
        }))
    }

    /// The underlying session handle (raw streams, go away).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// Pushed streams name the resource but may omit the method: it is GET.
fn with_method(
    version: Version,
    block: &spdy_proto::header_block::HeaderBlock,
) -> spdy_proto::header_block::HeaderBlock {
    let name = if version == Version::V2 {
        "method"
    } else {
        ":method"
    };
    let mut block = block.clone();
    if block.get(name).is_none() {
        block.push(name, "GET");
    }
    block
}

/// A response the server pushed.
#[derive(Debug)]
pub struct PushedResponse {
    /// The stream whose request caused the push.
    pub associated_to: Option<crate::StreamId>,
    /// The request the push answers (method GET, the pushed URL).
    pub request: http::request::Parts,
    /// The pushed response.
    pub response: Response<RecvBody>,
}

/// A connected client: the [`SendRequest`] of a session and the task that
/// drives its connection.
///
/// Dropping it lets the connection end gracefully once the clones of its
/// `SendRequest` are gone and the open streams are done.
#[derive(Debug)]
pub struct Client {
    send: SendRequest,
    connection: ConnectionTask,
}

#[derive(Debug)]
enum ConnectionTask {
    Running(JoinHandle<Result<(), Error>>),
    Ended(Result<(), Error>),
}

impl Client {
    /// Connects to `addr` over TCP (with `TCP_NODELAY`: frames are written
    /// whole, and Nagle's algorithm would hold a small one for the peer's
    /// delayed ACK) and starts a session with `builder`'s settings.
    pub async fn connect(addr: impl ToSocketAddrs, builder: Builder) -> Result<Client, Error> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = builder.handshake(tcp);
        Ok(Client::new(send, conn))
    }

    /// Spawns `connection` on the current tokio runtime and keeps it with
    /// `send`: for sessions started by [`Builder::handshake`] on a socket
    /// of your own.
    pub fn new<T>(send: SendRequest, connection: Connection<T>) -> Client
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Client {
            send,
            connection: ConnectionTask::Running(tokio::spawn(connection)),
        }
    }

    /// Sends a request: [`SendRequest::send_request`].
    pub fn send_request<B>(&self, req: Request<B>) -> ResponseFuture
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.send.send_request(req)
    }

    /// [`SendRequest::poll_ready`].
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.send.poll_ready(cx)
    }

    /// Waits until a request would go out at once ([`SendRequest::ready`]).
    pub async fn ready(&mut self) -> Result<(), Error> {
        self.send.ready().await
    }

    /// The session's request sender; clone it to send from other tasks.
    pub fn as_send_request(&self) -> &SendRequest {
        &self.send
    }

    /// The session's version (over TLS, the one ALPN agreed on).
    pub fn version(&self) -> Version {
        self.send.version
    }

    /// Waits until the connection has ended and returns how: `Ok` after a
    /// graceful end, else the error that ended it (what a request that
    /// failed with a bare "connection closed" died of). The connection
    /// does not end on its own while this client holds its sender, unless
    /// the server closes it; see [`shutdown`](Self::shutdown).
    pub async fn closed(&mut self) -> Result<(), Error> {
        self.connection.ended().await
    }

    /// Goes away gracefully (once the clones of the sender are gone too)
    /// and waits for the connection to end, as [`closed`](Self::closed).
    pub async fn shutdown(self) -> Result<(), Error> {
        let Client {
            send,
            mut connection,
        } = self;
        drop(send);
        connection.ended().await
    }
}

impl ConnectionTask {
    async fn ended(&mut self) -> Result<(), Error> {
        if let ConnectionTask::Running(task) = self {
            // A task that panicked or was cancelled left no reason.
            let result = task.await.unwrap_or(Err(Error::ConnectionClosed));
            *self = ConnectionTask::Ended(result);
        }
        match self {
            ConnectionTask::Ended(result) => result.clone(),
            ConnectionTask::Running(_) => Err(Error::ConnectionClosed),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for Client
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<RecvBody>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.send.send_request(req)
    }
}
