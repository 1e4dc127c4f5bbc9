//! HTTP/1.1 Upgrade to SPDY/3.1, the way Kubernetes streaming starts.
//!
//! `kubectl exec`, `attach` and `port-forward` send an HTTP/1.1 request
//! with `Connection: Upgrade` and `Upgrade: SPDY/3.1`; the server answers
//! `101 Switching Protocols` with the same two headers, and from the next
//! byte on both ends speak SPDY/3.1 on that socket: the side that sent the
//! request is the SPDY client. The streams that follow are raw byte pipes
//! told apart by their headers (`streamtype`, `port`, `requestid`), with no
//! HTTP semantics and no pseudo-headers; [`crate::io`] turns them into
//! `AsyncRead`/`AsyncWrite`.
//!
//! SPDY header names are lower case: Kubernetes' `streamType` and
//! `requestID` are `streamtype` and `requestid` on the wire (its Go
//! implementation lowercases them when writing). Answer every stream that
//! [`Handle::accept`] gives ([`IncomingStream::reply`],
//! [`IncomingStream::into_parts`] or [`IncomingStream::refuse`]): the peer
//! waits for that answer.
//!
//! # Client
//!
//! [`connect`] works on any connected `AsyncRead + AsyncWrite` (plain TCP,
//! or a TLS stream): hyper's HTTP/1.1 client sends the request and reads
//! the response head (at most [`MAX_RESPONSE_HEAD`] bytes); [`connect`]
//! checks the 101 and the echoed headers, takes the socket back from hyper
//! and starts a SPDY/3.1 client session on it. Bytes the server sent right
//! after the head are already SPDY; [`Rewind`] hands them to the session
//! first. Any other answer is
//! [`UpgradeError::Refused`], with the status, headers and (up to
//! [`MAX_REFUSAL_BODY`] bytes of) body, where servers such as the
//! Kubernetes API server explain the refusal.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use spdy::proto::header_block::HeaderBlock;
//! use spdy::upgrade::{self, UpgradeRequest};
//!
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:7070").await?;
//! let request = UpgradeRequest::post("/exec?command=date&stdout=true")?
//!     .host("127.0.0.1:7070")?
//!     .header("x-stream-protocol-version", "v4.channel.k8s.io")?;
//! let (handle, connection, response) =
//!     upgrade::connect(tcp, request, None).await?;
//! tokio::spawn(connection);
//! println!("negotiated {:?}", response.headers().get("x-stream-protocol-version"));
//! let headers: HeaderBlock = [("streamtype", "stdout")].into_iter().collect();
//! let (_send, mut stdout) = handle.open_stream(headers, spdy::OpenOptions { fin: true, ..Default::default() })?;
//! stdout.reply().await?;
//! let output = stdout.read_to_end(1 << 20).await?;
//! # let _ = output; Ok(()) }
//! ```
//!
//! # Flow control: off by default here
//!
//! Kubernetes' SPDY library (moby/spdystream), on both ends of `kubectl`
//! and the kubelet, speaks SPDY/3.1 framing but does no flow control: it
//! never sends WINDOW_UPDATE, ignores ours, and sends DATA of any size.
//! With the spec's flow control every stream and the session would stop
//! at 64 KiB against it (a 1 MiB port-forward would hang, a third
//! connection get nothing). So the session this module starts, unless
//! the caller passes its own [`Config`], is [`default_config`]:
//! [`Config::with_peer_flow_control(false)`](Config::with_peer_flow_control).
//! Memory stays bounded all the same: while one stream holds half the
//! session window of unread data the session stops reading the socket,
//! and TCP holds the peer back; the cost is that one slow reader then
//! stalls every stream of the connection. Both ends must agree: this side
//! sends past the windows of a peer that does flow control, which that
//! peer takes for a FLOW_CONTROL_ERROR. Between two peers that both do
//! flow control (our own tunnel, say), pass a config that keeps it, on
//! both ends.
//!
//! # Server
//!
//! Inside a hyper HTTP/1.1 server (served `with_upgrades()`), [`accept`]
//! checks a request for the upgrade (a [`Rejection`] says what is missing
//! and makes the 400 answer), and [`ServerUpgrade`] makes the 101 response
//! (with any headers the application adds, e.g. the negotiated
//! `X-Stream-Protocol-Version`) and a SPDY/3.1 server session on the
//! upgraded socket. The session's [`Handle`] exists at once: the socket
//! joins it once hyper has sent the 101.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//!
//! // A hyper service, served with
//! // `http1::Builder::new().serve_connection(io, service_fn(handle)).with_upgrades()`.
//! async fn handle(mut req: Request<Incoming>) -> Result<Response<String>, Infallible> {
//!     let upgrade = match spdy::upgrade::accept(&mut req) {
//!         Ok(upgrade) => upgrade,
//!         Err(rejection) => return Ok(rejection.into_response()),
//!     };
//!     let (response, session) = upgrade.spawn();
//!     tokio::spawn(async move {
//!         while let Some(stream) = session.accept().await {
//!             let kind = stream.headers.get("streamtype").cloned().unwrap_or_default();
//!             let (mut send, _recv) = stream.reply(Default::default(), false).unwrap();
//!             let _ = send.write(Bytes::from(format!("hello, {kind:?} stream\n"))).await;
//!             let _ = send.finish();
//!         }
//!     });
//!     Ok(response)
//! }
//! ```

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, IntoHeaderName, CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(doc)]
use crate::IncomingStream;
use crate::{Config, Connection, Handle, Role, Version};

/// The protocol token of the `Upgrade` header.
pub const SPDY_3_1: &str = "SPDY/3.1";

/// The largest response head [`connect`] reads (status line and headers:
/// hyper's read buffer limit), and the most it reads of interim 1xx
/// responses before the final one; more is [`UpgradeError::HeadTooLarge`].
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The most of a refusal's body [`connect`] keeps (see [`Refused`]).
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Header lines a response head may have (more is
/// [`UpgradeError::HeadTooLarge`]).
const MAX_HEADERS: usize = 128;

// ===== client =====

/// The HTTP/1.1 request that asks for the upgrade.
///
/// `Connection: Upgrade` and `Upgrade: SPDY/3.1` are added by [`connect`]
/// (any given here are replaced); everything else is the caller's:
/// method, target, `Host` (taken from an absolute URI if not given) and
/// extra headers, which may repeat (Kubernetes offers several
/// `X-Stream-Protocol-Version`s).
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    /// The method (Kubernetes uses POST for exec and port-forward; GET works
    /// as well with most servers).
    pub method: Method,
    /// The target: origin form (`/path?query`) or absolute
    /// (`http://host:port/path`, whose authority becomes `Host`). Only the
    /// path and query go on the request line.
    pub uri: Uri,
    /// Extra headers, `Host` included if set; repeated names are sent as
    /// repeated lines.
    pub headers: HeaderMap,
}

impl UpgradeRequest {
    /// A request of `method` for `uri`.
    pub fn new(method: Method, uri: Uri) -> UpgradeRequest {
        UpgradeRequest {
            method,
            uri,
            headers: HeaderMap::new(),
        }
    }

    /// A GET request for `uri` (origin form or absolute).
    pub fn get(uri: &str) -> Result<UpgradeRequest, UpgradeError> {
        Ok(UpgradeRequest::new(Method::GET, parse_uri(uri)?))
    }

    /// A POST request for `uri` (origin form or absolute).
    pub fn post(uri: &str) -> Result<UpgradeRequest, UpgradeError> {
        Ok(UpgradeRequest::new(Method::POST, parse_uri(uri)?))
    }

    /// Sets `Host`.
    pub fn host(self, host: &str) -> Result<UpgradeRequest, UpgradeError> {
        let mut this = self;
        let value = HeaderValue::from_str(host)
            .map_err(|_| UpgradeError::InvalidRequest(format!("invalid host {host:?}")))?;
        this.headers.insert(HOST, value);
        Ok(this)
    }

    /// Adds a header line (a name given twice is sent twice).
    pub fn header(self, name: &str, value: &str) -> Result<UpgradeRequest, UpgradeError> {
        let mut this = self;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| UpgradeError::InvalidRequest(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            UpgradeError::InvalidRequest(format!("invalid value for header {name}: {value:?}"))
        })?;
        this.headers.append(name, value);
        Ok(this)
    }

    /// The request target: path and query.
    pub(crate) fn target(&self) -> &str {
        self.uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|pq| !pq.is_empty())
            .unwrap_or("/")
    }

    /// The `Host` header, or else the URI's authority.
    pub(crate) fn host_value(&self) -> Result<HeaderValue, UpgradeError> {
        match self.headers.get(HOST) {
            Some(host) => Ok(host.clone()),
            None => {
                let authority = self.uri.authority().ok_or_else(|| {
                    UpgradeError::InvalidRequest("no Host: give one, or an absolute URI".to_owned())
                })?;
                HeaderValue::from_str(authority.as_str())
                    .map_err(|_| UpgradeError::InvalidRequest("invalid authority".to_owned()))
            }
        }
    }

    /// The request hyper writes: the target in origin form, `Host` first,
    /// the caller's headers, then `Connection: Upgrade` and
    /// `Upgrade: SPDY/3.1` (the caller's own versions of those three are
    /// dropped).
    fn to_http(&self) -> Result<Request<Empty<Bytes>>, UpgradeError> {
        let target: Uri = self
            .target()
            .parse()
            .map_err(|e| UpgradeError::InvalidRequest(format!("invalid target: {e}")))?;
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 3);
        headers.insert(HOST, self.host_value()?);
        for (name, value) in &self.headers {
            if name != HOST && name != CONNECTION && name != UPGRADE {
                headers.append(name, value.clone());
            }
        }
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static(SPDY_3_1));
        let mut request = Request::new(Empty::new());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = target;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

fn parse_uri(uri: &str) -> Result<Uri, UpgradeError> {
    uri.parse()
        .map_err(|e| UpgradeError::InvalidRequest(format!("invalid URI {uri:?}: {e}")))
}

/// `http::Request` to `UpgradeRequest` (the body is ignored: an upgrade
/// request has none).
impl<B> From<Request<B>> for UpgradeRequest {
    fn from(request: Request<B>) -> UpgradeRequest {
        let (parts, _) = request.into_parts();
        UpgradeRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        }
    }
}

/// Why [`connect`] did not end in a SPDY session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request cannot be written (no `Host`, a bad header, ...).
    #[error("invalid upgrade request: {0}")]
    InvalidRequest(String),
    /// Writing the request or reading the response failed.
    #[error("upgrade I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The connection closed before the response head was complete.
    #[error("connection closed after {received} bytes, before the response head was complete")]
    ClosedBeforeResponse {
        /// Bytes of the head received.
        received: usize,
    },
    /// The response head is longer than the limit ([`MAX_RESPONSE_HEAD`]).
    #[error("response head longer than {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The response head is not valid HTTP/1.x.
    #[error("malformed response head: {0}")]
    MalformedResponse(String),
    /// The server answered with something else than 101 Switching
    /// Protocols.
    #[error("{0}")]
    Refused(Box<Refused>),
    /// A 101 whose `Upgrade` header does not name SPDY/3.1.
    #[error("101 Switching Protocols to {}, not SPDY/3.1", .upgrade.as_deref().unwrap_or("no protocol (no Upgrade header)"))]
    WrongProtocol {
        /// The `Upgrade` header of the response, if any.
        upgrade: Option<String>,
    },
    /// A 101 without `Connection: Upgrade`.
    #[error("101 Switching Protocols without Connection: Upgrade")]
    MissingConnectionUpgrade,
}

impl UpgradeError {
    /// The refusal, if the server answered with a status other than 101.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            UpgradeError::Refused(refused) => Some(refused),
            _ => None,
        }
    }
}

/// A response other than 101: what the server said instead.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (by `Content-Length`, chunked, or up to the close), at most
    /// [`MAX_REFUSAL_BODY`] bytes of it.
    pub body: Bytes,
    /// The body was longer than the limit, or the connection failed before
    /// its end: `body` is only its beginning.
    pub truncated: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upgrade refused with {}", self.status)?;
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if !text.is_empty() {
            const SHOWN: usize = 300;
            let mut end = text.len().min(SHOWN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let more = if end < text.len() || self.truncated {
                "…"
            } else {
                ""
            };
            write!(f, ": {}{more}", &text[..end])?;
        }
        Ok(())
    }
}

/// The session configuration used when the caller passes none: the
/// default with the peer's flow control off, as Kubernetes peers do none
/// (see the [module doc](self)).
pub fn default_config() -> Config {
    Config::default().with_peer_flow_control(false)
}

/// Upgrades a connected socket to a SPDY/3.1 session, as the client.
///
/// Sends `request` with `Connection: Upgrade` and `Upgrade: SPDY/3.1`
/// over hyper's HTTP/1.1 client, and if the answer is `101 Switching
/// Protocols` with both headers echoed, starts a SPDY/3.1 client session
/// on the same socket with `config` (`None`: [`default_config`], without
/// flow control, for Kubernetes peers). Returns the session's [`Handle`], its
/// [`Connection`] (spawn it) and the 101 response, whose headers carry what
/// the server negotiated. Interim responses (100, 102, 103) are skipped.
///
/// Nothing here times out: wrap the call in `tokio::time::timeout` against
/// a server that never answers. On TCP, set `TCP_NODELAY` first (as
/// `Client::connect` does): with Nagle's algorithm, DATA let out by a small
/// window update waits for the peer's delayed ACK.
pub async fn connect<T>(
    io: T,
    request: impl Into<UpgradeRequest>,
    config: impl Into<Option<Config>>,
) -> Result<(Handle, Connection<Rewind<T>>, Response<()>), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = config.into().unwrap_or_else(default_config);
    let (io, response) = connect_io(io, request).await?;
    let (handle, connection) = crate::handshake(io, Role::Client, Version::V3_1, config);
    Ok((handle, connection, response))
}

/// The HTTP half of [`connect`]: the upgrade exchange, then the socket
/// (with any bytes already read after the 101) for a SPDY/3.1 session in
/// the role of the caller's choice. Who dialed need not be the SPDY
/// client: a reverse tunnel's origin dials its proxy, upgrades, and then
/// serves the proxy's requests with
/// [`server::Builder::serve_connection`](crate::server::Builder::serve_connection).
pub async fn connect_io<T>(
    io: T,
    request: impl Into<UpgradeRequest>,
) -> Result<(Rewind<T>, Response<()>), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = request.into().to_http()?;
    // hyper skips interim responses one head at a time, each within its
    // buffer; their total is bounded here, as if they were one long head.
    let interim = Arc::new(AtomicUsize::new(0));
    let interim_seen = Arc::clone(&interim);
    hyper::ext::on_informational(&mut request, move |response| {
        let size = "HTTP/1.1 100 \r\n\r\n".len()
            + response
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
                .sum::<usize>();
        interim_seen.fetch_add(size, Ordering::Relaxed);
    });
    let read = Arc::new(AtomicUsize::new(0));
    let counted = Counted {
        io,
        read: Arc::clone(&read),
    };
    // hyper's read buffer holds the head being parsed: its limit is the
    // head's. Title case: some servers compare header names
    // case-sensitively.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .max_buf_size(MAX_RESPONSE_HEAD)
        .max_headers(MAX_HEADERS)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(counted))
        .await
        .map_err(|e| hyper_error(e, &read))?;
    let mut conn = pin!(conn.with_upgrades());
    let mut ended = None;

    let mut send = pin!(sender.send_request(request));
    let interim_limited = poll_fn(|cx| {
        if interim.load(Ordering::Relaxed) > MAX_RESPONSE_HEAD {
            return Poll::Ready(None);
        }
        send.as_mut().poll(cx).map(Some)
    });
    let sent = driving(conn.as_mut(), &mut ended, interim_limited).await;
    let mut response = match sent {
        Some(Ok(response)) => response,
        None => {
            return Err(UpgradeError::HeadTooLarge {
                limit: MAX_RESPONSE_HEAD,
            })
        }
        // The connection's own error says more than the dropped request's.
        Some(Err(e)) => {
            return Err(match ended {
                Some(Err(conn_error)) => hyper_error(conn_error, &read),
                _ => hyper_error(e, &read),
            })
        }
    };

    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = response.into_parts();
        let (body, truncated) = driving(conn.as_mut(), &mut ended, refusal_body(body)).await;
        return Err(UpgradeError::Refused(Box::new(Refused {
            status: parts.status,
            headers: parts.headers,
            body,
            truncated,
        })));
    }
    if !has_token(response.headers(), &UPGRADE, SPDY_3_1) {
        let upgrade = response
            .headers()
            .get(UPGRADE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(UpgradeError::WrongProtocol { upgrade });
    }
    if !has_token(response.headers(), &CONNECTION, "upgrade") {
        return Err(UpgradeError::MissingConnectionUpgrade);
    }

    // hyper hands the socket over once its connection task sees the 101
    // through; keep driving it until then.
    let on_upgrade = hyper::upgrade::on(&mut response);
    let upgraded = driving(conn.as_mut(), &mut ended, on_upgrade)
        .await
        .map_err(|e| match ended.take() {
            Some(Err(conn_error)) => hyper_error(conn_error, &read),
            _ => hyper_error(e, &read),
        })?;
    let parts = upgraded
        .downcast::<TokioIo<Counted<T>>>()
        .map_err(|_| UpgradeError::Io(io::Error::other("hyper upgraded another socket type")))?;
    let (parts_head, _) = response.into_parts();
    Ok((
        Rewind::new(parts.io.into_inner().io, parts.read_buf),
        Response::from_parts(parts_head, ()),
    ))
}

/// Polls `fut` to its end while driving hyper's connection task `conn`
/// (which does the reading and writing), recording the task's outcome
/// in `ended` if it finishes first.
async fn driving<C, F>(
    mut conn: Pin<&mut C>,
    ended: &mut Option<hyper::Result<()>>,
    fut: F,
) -> F::Output
where
    C: Future<Output = hyper::Result<()>>,
    F: Future,
{
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if ended.is_none() {
            if let Poll::Ready(outcome) = conn.as_mut().poll(cx) {
                *ended = Some(outcome);
            }
        }
        fut.as_mut().poll(cx)
    })
    .await
}

/// A hyper error of the exchange as an [`UpgradeError`]; `read` is what
/// had been read from the socket.
fn hyper_error(e: hyper::Error, read: &AtomicUsize) -> UpgradeError {
    if e.is_parse_too_large() {
        // Also too many header lines (httparse's TooManyHeaders).
        return UpgradeError::HeadTooLarge {
            limit: MAX_RESPONSE_HEAD,
        };
    }
    if e.is_parse() {
        return UpgradeError::MalformedResponse(e.to_string());
    }
    if e.is_incomplete_message() {
        return UpgradeError::ClosedBeforeResponse {
            received: read.load(Ordering::Relaxed),
        };
    }
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return UpgradeError::Io(io::Error::new(io_error.kind(), io_error.to_string()));
        }
        source = cause.source();
    }
    UpgradeError::Io(io::Error::other(e))
}

/// Reads a refusal's body (hyper delimits it: `Content-Length`, chunked,
/// or up to the close), keeping at most [`MAX_REFUSAL_BODY`] bytes and
/// reading no further. Returns the body and whether it was cut short. A
/// failing connection ends the body early rather than hiding the status.
async fn refusal_body(mut body: Incoming) -> (Bytes, bool) {
    let mut kept = BytesMut::new();
    loop {
        if kept.len() >= MAX_REFUSAL_BODY {
            return (kept.freeze(), !body.is_end_stream());
        }
        let data = match body.frame().await {
            None => return (kept.freeze(), false),
            Some(Err(_)) => return (kept.freeze(), true),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers.
                Err(_) => continue,
            },
        };
        let room = MAX_REFUSAL_BODY - kept.len();
        if data.len() > room {
            kept.extend_from_slice(&data[..room]);
            return (kept.freeze(), true);
        }
        kept.extend_from_slice(&data);
    }
}

/// Whether the comma-separated lists of header `name` hold `token`
/// (case-insensitively).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The dialer's socket while hyper has it: counts the bytes read, so that
/// a response cut short can say how much of it came
/// ([`UpgradeError::ClosedBeforeResponse`]).
struct Counted<T> {
    io: T,
    read: Arc<AtomicUsize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        self.read
            .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A socket with bytes already read from it put back in front: reads yield
/// `prefix` first, then go to the socket; writes go straight to it.
///
/// hyper reads the response head into its buffer, so the same read may
/// bring the first bytes of SPDY the server sent right after the head;
/// [`connect`] takes them back from hyper and the session gets them
/// through this.
#[derive(Debug)]
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner`, with `prefix` to be read first.
    pub fn new(inner: T, prefix: Bytes) -> Rewind<T> {
        Rewind { prefix, inner }
    }

    /// The socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The socket. Reading from it directly skips what is left of the
    /// prefix.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The socket and the part of the prefix not yet read.
    pub fn into_inner(self) -> (T, Bytes) {
        (self.inner, self.prefix)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ===== server =====

/// Why a request is not a SPDY/3.1 upgrade [`accept`] can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Upgrade is an HTTP/1.1 mechanism.
    #[error("unable to upgrade: {0:?} request, HTTP/1.1 needed")]
    NotHttp11(http::Version),
    /// No `Connection: Upgrade`.
    #[error("unable to upgrade: missing Connection: Upgrade")]
    MissingConnectionUpgrade,
    /// No `Upgrade` header naming SPDY/3.1.
    #[error("unable to upgrade: {}", match .0 { Some(u) => format!("Upgrade: {u} does not offer SPDY/3.1"), None => "missing Upgrade: SPDY/3.1".to_owned() })]
    NotSpdy(Option<String>),
    /// The request carries no hyper upgrade: it did not come from a hyper
    /// HTTP/1.1 server connection (a server error, not the client's).
    #[error("unable to upgrade: the request did not come from a hyper HTTP/1.1 connection")]
    NoUpgradeSupport,
}

impl Rejection {
    /// The status to answer with: 400 Bad Request, or 500 for
    /// [`Rejection::NoUpgradeSupport`].
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NoUpgradeSupport => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response to send: [`status`](Self::status) and the reason as a
    /// text body.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let mut response = Response::new(B::from(format!("{self}\n")));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// Checks that `request` asks for an upgrade to SPDY/3.1 (HTTP/1.1,
/// `Connection: Upgrade`, `Upgrade` offering `SPDY/3.1`). Does not need
/// the request to come from hyper; see [`accept`].
pub fn check_request<B>(request: &Request<B>) -> Result<(), Rejection> {
    if request.version() != http::Version::HTTP_11 {
        return Err(Rejection::NotHttp11(request.version()));
    }
    if !has_token(request.headers(), &CONNECTION, "upgrade") {
        return Err(Rejection::MissingConnectionUpgrade);
    }
    if !has_token(request.headers(), &UPGRADE, SPDY_3_1) {
        let offered = request
            .headers()
            .get(UPGRADE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(Rejection::NotSpdy(offered));
    }
    Ok(())
}

/// Takes a SPDY/3.1 upgrade request from a hyper HTTP/1.1 server.
///
/// Checks the request ([`check_request`]) and takes hyper's pending
/// upgrade out of it (`hyper::upgrade::on`), so the rest of the request
/// stays the caller's to read (path, query, other headers). The server
/// connection must be served `with_upgrades()`, or the session fails with
/// an I/O error once the 101 is sent.
pub fn accept<B>(request: &mut Request<B>) -> Result<ServerUpgrade, Rejection> {
    check_request(request)?;
    if request.extensions().get::<OnUpgrade>().is_none() {
        return Err(Rejection::NoUpgradeSupport);
    }
    Ok(ServerUpgrade {
        on_upgrade: hyper::upgrade::on(request),
        headers: HeaderMap::new(),
        config: default_config(),
    })
}

/// An accepted upgrade: makes the 101 response and the SPDY/3.1 server
/// session. From [`accept`].
#[derive(Debug)]
pub struct ServerUpgrade {
    on_upgrade: OnUpgrade,
    headers: HeaderMap,
    config: Config,
}

impl ServerUpgrade {
    /// Adds a header to the 101 response (e.g. the negotiated
    /// `X-Stream-Protocol-Version`). `Connection` and `Upgrade` are set by
    /// the response itself and cannot be changed.
    pub fn header<K: IntoHeaderName>(mut self, name: K, value: HeaderValue) -> ServerUpgrade {
        self.headers.append(name, value);
        self
    }

    /// The session's configuration (default: [`default_config`], without
    /// flow control, for Kubernetes peers; see the [module doc](self)).
    pub fn config(mut self, config: Config) -> ServerUpgrade {
        self.config = config;
        self
    }

    /// The 101 response to return from the service, the session's
    /// [`Handle`] and its [`Connection`] (spawn it; it fails with an I/O
    /// error if the upgrade does not happen).
    pub fn into_parts<B: Default>(self) -> (Response<B>, Handle, Connection<UpgradedIo>) {
        let config = self.config.clone();
        let (response, io) = self.into_io();
        let (handle, connection) = crate::handshake(io, Role::Server, Version::V3_1, config);
        (response, handle, connection)
    }

    /// The 101 response to return from the service and the socket it
    /// will give, for a SPDY/3.1 session in the role of the caller's
    /// choice (the configuration set here is not used): a reverse tunnel's
    /// proxy, which accepted the origin's upgrade, is the SPDY client on
    /// it ([`client::Builder::handshake`](crate::client::Builder::handshake)).
    pub fn into_io<B: Default>(self) -> (Response<B>, UpgradedIo) {
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if name != CONNECTION && name != UPGRADE {
                headers.append(name, value.clone());
            }
        }
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static(SPDY_3_1));
        let io = UpgradedIo {
            state: IoState::Waiting(self.on_upgrade),
        };
        (response, io)
    }

    /// Like [`into_parts`](Self::into_parts), with the connection spawned
    /// on the current tokio runtime (its outcome is dropped; a failed
    /// session shows as [`Handle::accept`] returning `None` and stream
    /// errors).
    pub fn spawn<B: Default>(self) -> (Response<B>, Handle) {
        let (response, handle, connection) = self.into_parts();
        tokio::spawn(connection);
        (response, handle)
    }
}

/// The socket of an upgraded hyper connection, as the server session uses
/// it. It waits for hyper to have sent the 101 (until then reads and
/// writes are pending) and fails with an I/O error if the upgrade does not
/// happen (the client went away, or the server was not served
/// `with_upgrades()`).
pub struct UpgradedIo {
    state: IoState,
}

enum IoState {
    Waiting(OnUpgrade),
    Ready(TokioIo<hyper::upgrade::Upgraded>),
    Failed(String),
}

impl fmt::Debug for UpgradedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            IoState::Waiting(_) => "waiting for the upgrade",
            IoState::Ready(_) => "upgraded",
            IoState::Failed(_) => "upgrade failed",
        };
        f.debug_struct("UpgradedIo").field("state", &state).finish()
    }
}

impl UpgradedIo {
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut TokioIo<hyper::upgrade::Upgraded>>> {
        if let IoState::Waiting(on_upgrade) = &mut self.state {
            self.state = match ready!(Pin::new(on_upgrade).poll(cx)) {
                Ok(upgraded) => IoState::Ready(TokioIo::new(upgraded)),
                Err(e) => IoState::Failed(e.to_string()),
            };
        }
        match &mut self.state {
            IoState::Ready(io) => Poll::Ready(Ok(io)),
            IoState::Failed(why) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("HTTP upgrade failed: {why}"),
            ))),
            IoState::Waiting(_) => unreachable!("resolved above"),
        }
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let io = ready!(self.poll_io(cx))?;
        Pin::new(io).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let io = ready!(self.poll_io(cx))?;
        Pin::new(io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let io = ready!(self.poll_io(cx))?;
        Pin::new(io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.state {
            IoState::Ready(io) => io.is_write_vectored(),
            // The connection decides per call; vectored writes fall back to
            // the first slice where unsupported.
            _ => true,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = ready!(self.poll_io(cx))?;
        Pin::new(io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = ready!(self.poll_io(cx))?;
        Pin::new(io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_request_carries_the_upgrade_and_repeated_headers() {
        let request = UpgradeRequest::post("http://example.com:8080/exec?command=sh")
            .unwrap()
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .unwrap()
            .header("x-stream-protocol-version", "v3.channel.k8s.io")
            .unwrap()
            .header("upgrade", "websocket")
            .unwrap();
        let http = request.to_http().unwrap();
        assert_eq!(http.method(), Method::POST);
        // Origin form on the request line; the authority went to Host.
        assert_eq!(http.uri(), "/exec?command=sh");
        let headers: Vec<(&str, &str)> = http
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("host", "example.com:8080"),
                ("x-stream-protocol-version", "v4.channel.k8s.io"),
                ("x-stream-protocol-version", "v3.channel.k8s.io"),
                ("connection", "Upgrade"),
                ("upgrade", "SPDY/3.1"),
            ]
        );
        let no_host = UpgradeRequest::get("/").unwrap().to_http();
        assert!(matches!(no_host, Err(UpgradeError::InvalidRequest(_))));
    }

    #[test]
    fn tokens_are_matched_in_lists_and_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.append(CONNECTION, HeaderValue::from_static("keep-alive, UPGRADE"));
        headers.append(UPGRADE, HeaderValue::from_static("h2c"));
        headers.append(UPGRADE, HeaderValue::from_static("websocket , spdy/3.1"));
        assert!(has_token(&headers, &CONNECTION, "upgrade"));
        assert!(has_token(&headers, &UPGRADE, SPDY_3_1));
        assert!(!has_token(&headers, &UPGRADE, "SPDY/3"));
    }

    #[tokio::test]
    async fn rewind_reads_the_prefix_first() {
        let mut rewind = Rewind::new(&b" and more"[..], Bytes::from_static(b"SPDY!"));
        let mut all = Vec::new();
        rewind.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"SPDY! and more");
    }
}
