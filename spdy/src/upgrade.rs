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
//! or a TLS stream): it writes the request, reads the response head (at
//! most [`MAX_RESPONSE_HEAD`] bytes), checks the 101 and the echoed
//! headers, and starts a SPDY/3.1 client session on the same socket. Bytes
//! the server sent right after the head are already SPDY; [`Rewind`] hands
//! them to the session first. Any other answer is
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
//!     upgrade::connect(tcp, request, spdy::Config::default()).await?;
//! tokio::spawn(connection);
//! println!("negotiated {:?}", response.headers().get("x-stream-protocol-version"));
//! let headers: HeaderBlock = [("streamtype", "stdout")].into_iter().collect();
//! let (_send, mut stdout) = handle.open_stream(headers, spdy::OpenOptions { fin: true, ..Default::default() })?;
//! stdout.reply().await?;
//! let output = stdout.read_to_end(1 << 20).await?;
//! # let _ = output; Ok(()) }
//! ```
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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, IntoHeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

#[cfg(doc)]
use crate::IncomingStream;
use crate::{Config, Connection, Handle, Role, Version};

/// The protocol token of the `Upgrade` header.
pub const SPDY_3_1: &str = "SPDY/3.1";

/// The largest response head [`connect`] reads (status line and headers,
/// interim 1xx responses included); a larger one is
/// [`UpgradeError::HeadTooLarge`].
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The most of a refusal's body [`connect`] keeps (see [`Refused`]).
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Header lines a response head may have.
const MAX_HEADERS: usize = 128;

/// Bytes read per read call while looking for the end of the head.
const READ_CHUNK: usize = 4096;

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

    /// The request as it goes on the wire.
    fn encode(&self) -> Result<Vec<u8>, UpgradeError> {
        let target = self.target();
        let host = self.host_value()?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            if name == HOST || name == CONNECTION || name == UPGRADE {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: ");
        out.extend_from_slice(SPDY_3_1.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        Ok(out)
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

/// Upgrades a connected socket to a SPDY/3.1 session, as the client.
///
/// Writes `request` with `Connection: Upgrade` and `Upgrade: SPDY/3.1`,
/// reads the response head, and if it is `101 Switching Protocols` with
/// both headers echoed, starts a SPDY/3.1 client session on the same
/// socket with `config`. Returns the session's [`Handle`], its
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
    config: Config,
) -> Result<(Handle, Connection<Rewind<T>>, Response<()>), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
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
    mut io: T,
    request: impl Into<UpgradeRequest>,
) -> Result<(Rewind<T>, Response<()>), UpgradeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let request = request.into();
    let wire = request.encode()?;
    io.write_all(&wire).await?;
    io.flush().await?;

    let (response, buf) = read_head(&mut io).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let no_body = request.method == Method::HEAD
            || response.status() == StatusCode::NO_CONTENT
            || response.status() == StatusCode::NOT_MODIFIED;
        let (body, truncated) = if no_body {
            (Bytes::new(), false)
        } else {
            read_body(&mut io, buf, response.headers()).await
        };
        let (parts, ()) = response.into_parts();
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
    Ok((Rewind::new(io, buf.freeze()), response))
}

/// Reads the final response head (interim 1xx skipped, 101 excepted):
/// the response and the bytes read after it.
async fn read_head<T: AsyncRead + Unpin>(
    io: &mut T,
) -> Result<(Response<()>, BytesMut), UpgradeError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut consumed = 0;
    loop {
        match parse_head(&buf)? {
            Some((response, len)) => {
                consumed += len;
                if consumed > MAX_RESPONSE_HEAD {
                    return Err(UpgradeError::HeadTooLarge {
                        limit: MAX_RESPONSE_HEAD,
                    });
                }
                buf.advance(len);
                let status = response.status();
                // 100 Continue, 102 Processing, 103 Early Hints: the real
                // answer follows.
                if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                return Ok((response, buf));
            }
            None => {
                if consumed + buf.len() > MAX_RESPONSE_HEAD {
                    return Err(UpgradeError::HeadTooLarge {
                        limit: MAX_RESPONSE_HEAD,
                    });
                }
                buf.reserve(READ_CHUNK);
                if io.read_buf(&mut buf).await? == 0 {
                    return Err(UpgradeError::ClosedBeforeResponse {
                        received: consumed + buf.len(),
                    });
                }
            }
        }
    }
}

/// Parses one response head at the start of `buf`: the response and the
/// head's length, or `None` if more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<(Response<()>, usize)>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(UpgradeError::MalformedResponse(e.to_string())),
    };
    let code = parsed.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| UpgradeError::MalformedResponse(format!("status code {code}")))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = match parsed.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let map = response.headers_mut();
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            UpgradeError::MalformedResponse(format!("header name {:?}", header.name))
        })?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| {
            UpgradeError::MalformedResponse(format!("value of header {:?}", header.name))
        })?;
        map.append(name, value);
    }
    Ok(Some((response, len)))
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

/// Reads a refusal's body: by `Content-Length`, chunked, or up to the
/// close, keeping at most [`MAX_REFUSAL_BODY`] bytes. Returns the body and
/// whether it was cut short. A failing connection ends the body early
/// rather than hiding the status.
async fn read_body<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: BytesMut,
    headers: &HeaderMap,
) -> (Bytes, bool) {
    let mut reader = BodyReader { io, buf };
    let chunked = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = Vec::new();
    let complete = if chunked {
        reader.chunked(&mut body).await
    } else if let Some(length) = length {
        reader.exact(&mut body, length).await
    } else {
        reader.until_close(&mut body).await
    };
    (Bytes::from(body), !complete)
}

struct BodyReader<'a, T> {
    io: &'a mut T,
    buf: BytesMut,
}

impl<T: AsyncRead + Unpin> BodyReader<'_, T> {
    /// Reads more into the buffer; false at the end of the stream or on an
    /// error.
    async fn fill(&mut self) -> bool {
        self.buf.reserve(READ_CHUNK);
        matches!(self.io.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// Moves up to `n` buffered bytes to `body` (within the limit).
    fn take(&mut self, body: &mut Vec<u8>, n: usize) -> usize {
        let n = n.min(self.buf.len());
        let room = MAX_REFUSAL_BODY - body.len();
        body.extend_from_slice(&self.buf[..n.min(room)]);
        self.buf.advance(n);
        n
    }

    async fn exact(&mut self, body: &mut Vec<u8>, length: u64) -> bool {
        let mut left = length;
        loop {
            let n = self.take(body, usize::try_from(left).unwrap_or(usize::MAX));
            left -= n as u64;
            if left == 0 {
                return true;
            }
            if body.len() == MAX_REFUSAL_BODY || !self.fill().await {
                return false;
            }
        }
    }

    async fn until_close(&mut self, body: &mut Vec<u8>) -> bool {
        loop {
            self.take(body, usize::MAX);
            if body.len() == MAX_REFUSAL_BODY {
                return false;
            }
            if !self.fill().await {
                return true;
            }
        }
    }

    async fn chunked(&mut self, body: &mut Vec<u8>) -> bool {
        loop {
            let Some(line) = self.line().await else {
                return false;
            };
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let Some(size) = std::str::from_utf8(size)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            else {
                return false;
            };
            if size == 0 {
                return true;
            }
            if !self.exact(body, size).await {
                return false;
            }
            // The CRLF after the chunk's data.
            if self.line().await.is_none_or(|l| !l.is_empty()) {
                return false;
            }
        }
    }

    /// The next CRLF-terminated line (without the CRLF); `None` at the end
    /// of the stream or for an overlong line.
    async fn line(&mut self) -> Option<Vec<u8>> {
        const MAX_LINE: usize = 4096;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(end).to_vec();
                self.buf.advance(2);
                return Some(line);
            }
            if self.buf.len() > MAX_LINE || !self.fill().await {
                return None;
            }
        }
    }
}

/// A socket with bytes already read from it put back in front: reads yield
/// `prefix` first, then go to the socket; writes go straight to it.
///
/// [`connect`] reads the response head in chunks, so the same read may
/// bring the first bytes of SPDY the server sent right after the head; the
/// session gets them through this.
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
        config: Config::default(),
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

    /// The session's configuration (default: `Config::default()`).
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
        let wire = String::from_utf8(request.encode().unwrap()).unwrap();
        assert_eq!(
            wire,
            "POST /exec?command=sh HTTP/1.1\r\nHost: example.com:8080\r\n\
             x-stream-protocol-version: v4.channel.k8s.io\r\n\
             x-stream-protocol-version: v3.channel.k8s.io\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
        );
        let no_host = UpgradeRequest::get("/").unwrap().encode();
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
    async fn interim_responses_are_skipped_and_leftover_bytes_kept() {
        let mut io: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade\r\n\r\n\
            SPDY!";
        let (response, leftover) = read_head(&mut io).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(&leftover[..], b"SPDY!");
        let mut rewind = Rewind::new(&b" and more"[..], leftover.freeze());
        let mut all = Vec::new();
        rewind.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"SPDY! and more");
    }

    #[tokio::test]
    async fn an_endless_head_is_refused() {
        // One header line that never ends, and too many lines.
        let long_line = format!(
            "HTTP/1.1 200 OK\r\nx-filler: {}",
            "a".repeat(2 * MAX_RESPONSE_HEAD)
        );
        let result = read_head(&mut long_line.as_bytes()).await;
        assert!(
            matches!(result, Err(UpgradeError::HeadTooLarge { .. })),
            "{result:?}"
        );
        let many_lines = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "x-filler: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        let result = read_head(&mut many_lines.as_bytes()).await;
        assert!(
            matches!(result, Err(UpgradeError::MalformedResponse(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn chunked_and_closed_bodies_are_read() {
        let mut body = Vec::new();
        let mut io: &[u8] = b"";
        let mut reader = BodyReader {
            io: &mut io,
            buf: BytesMut::from(&b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..]),
        };
        assert!(reader.chunked(&mut body).await);
        assert_eq!(body, b"hello world");
        let mut body = Vec::new();
        let mut io: &[u8] = b" and the rest";
        let mut reader = BodyReader {
            io: &mut io,
            buf: BytesMut::from(&b"start"[..]),
        };
        assert!(reader.until_close(&mut body).await);
        assert_eq!(body, b"start and the rest");
    }
}
