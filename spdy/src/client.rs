//! HTTP over SPDY, client side: send an `http::Request`, get an
//! `http::Response` with a streaming body.
//!
//! ```no_run
//! # async fn demo() -> Result<(), spdy::Error> {
//! use http_body_util::Empty;
//! let client = spdy::client::Client::connect("127.0.0.1:4040", spdy::Version::V3_1).await?;
//! let req = http::Request::get("http://127.0.0.1:4040/").body(Empty::<bytes::Bytes>::new()).unwrap();
//! let mut res = client.send_request(req).await?;
//! let body = res.body_mut().collect_to_vec(1 << 20).await?;
//! # let _ = body; Ok(()) }
//! ```

use std::ops::Deref;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use spdy_proto::frame::{RstStatus, Version};
use spdy_proto::session::{Config, OpenOptions, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::body::{send_body, RecvBody};
use crate::conn::Connection;
use crate::error::Error;
use crate::{headers, Handle};

/// The priority of a request, as a request extension (0 highest; 0..=7 in
/// SPDY/3, 0..=3 in SPDY/2). Requests without it get 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(pub u8);

/// Settings for a client session.
#[derive(Debug, Clone)]
pub struct Builder {
    version: Version,
    config: Config,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            version: Version::V3_1,
            config: Config::default().with_accept_push(false),
        }
    }
}

impl Builder {
    /// SPDY/3.1 with default limits.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The version to speak.
    pub fn version(mut self, version: Version) -> Builder {
        self.version = version;
        self
    }

    /// Session limits and windows. (Server push is off unless
    /// [`enable_push`](Self::enable_push) turns it on, whatever `config`
    /// says.)
    pub fn config(mut self, config: Config) -> Builder {
        let push = self.config.accept_push();
        self.config = config.with_accept_push(push);
        self
    }

    /// Accepts server pushes, to be taken with
    /// [`SendRequest::accept_push`]. Off by default: pushes nobody takes
    /// would hold flow-control windows and memory, so without this they are
    /// refused.
    pub fn enable_push(mut self, enable: bool) -> Builder {
        self.config = self.config.with_accept_push(enable);
        self
    }

    /// Starts a client session on a connected socket (any socket: one this
    /// program accepted works as well as one it dialed). Spawn the
    /// [`Connection`].
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
}

/// Starts a client session of `version` on `io`, with default limits.
pub fn handshake<T>(io: T, version: Version) -> (SendRequest, Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    Builder::new().version(version).handshake(io)
}

/// Sends requests on one session. Clone it to send from several tasks; the
/// session goes away when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SendRequest {
    handle: Handle,
    version: Version,
}

impl SendRequest {
    /// Sends a request and waits for the response headers. The request body
    /// is streamed with backpressure by a task of its own; the response body
    /// streams as it is read. If the peer's MAX_CONCURRENT_STREAMS is
    /// reached the request waits its turn.
    pub async fn send_request<B>(&self, req: Request<B>) -> Result<Response<RecvBody>, Error>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let block = headers::request_block(self.version, &req);
        let (parts, body) = req.into_parts();
        let head = parts.method == http::Method::HEAD;
        let priority = parts.extensions.get::<Priority>().map_or(0, |p| p.0);
        let fin = body.is_end_stream();
        let options = OpenOptions {
            priority,
            fin,
            unidirectional: false,
        };
        let (send, mut recv) = self.handle.open_stream(block, options)?;
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
        let reply = tokio::select! {
            reply = recv.reply() => reply?,
            // (A body sent whole drops the sender: this branch is then
            // disabled and the reply awaited alone.)
            Ok(e) = &mut body_failed => return Err(e),
        };
        match headers::response_parts(self.version, &reply) {
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
                // A SYN_REPLY without a status: "the client must reply with
                // a RST_STREAM frame indicating a PROTOCOL ERROR".
                let _ = self.handle.reset(recv.id(), RstStatus::ProtocolError);
                Err(e.into())
            }
        }
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

/// A client connected over plain TCP, with its connection task spawned.
#[derive(Debug, Clone)]
pub struct Client {
    send: SendRequest,
}

impl Client {
    /// Connects to `addr` and starts a session of `version` (SPDY on a
    /// plain TCP connection).
    pub async fn connect(addr: impl ToSocketAddrs, version: Version) -> Result<Client, Error> {
        Client::connect_with(addr, Builder::new().version(version)).await
    }

    /// Connects with the given settings.
    pub async fn connect_with(addr: impl ToSocketAddrs, builder: Builder) -> Result<Client, Error> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = builder.handshake(tcp);
        tokio::spawn(conn);
        Ok(Client { send })
    }
}

impl Deref for Client {
    type Target = SendRequest;

    fn deref(&self) -> &SendRequest {
        &self.send
    }
}
