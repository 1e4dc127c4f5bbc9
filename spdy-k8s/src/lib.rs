//! Kubernetes streaming, both ends: the kubelet's (or API server's) side
//! of `kubectl exec` and `kubectl port-forward`, and kubectl's.
//!
//! kubectl 1.32 reaches these two ways, and a server should serve both:
//!
//! | | kubectl's default (WebSocket) | the SPDY/3.1 upgrade (fallback) |
//! | --- | --- | --- |
//! | exec | [`exec_websocket`]: `v5.channel.k8s.io` channels | [`exec`]: `channel.k8s.io` ... `v5.channel.k8s.io` |
//! | port-forward | [`port_forward_websocket`]: SPDY/3.1 inside binary messages | [`port_forward`]: `portforward.k8s.io` |
//!
//! `kubectl attach` speaks the exec protocols to `.../attach` (no
//! command: the session is the container's main process), so the exec
//! functions serve it too; `kubectl cp` is an exec of `tar`.
//!
//! Each takes the request inside a hyper HTTP/1.1 server served
//! `with_upgrades()` (route with [`is_websocket_upgrade`]), negotiates the
//! protocol and gives the response to return (101, or the refusal) with
//! the upgrade. An exec gives the same [`ExecSession`] either way, its
//! streams [`ChannelReader`] / [`ChannelWriter`]; a port-forward the same
//! [`PortForwardSession`]. SPDY sessions run with
//! [`Config::with_peer_flow_control(false)`](spdy::Config::with_peer_flow_control):
//! Kubernetes' SPDY implementation (spdystream) does no flow control.
//!
//! The client side is here too: [`exec_client`] / [`exec_websocket_client`]
//! and [`port_forward_client`] / [`port_forward_websocket_client`] upgrade
//! a connected socket and open the streams as client-go does.
//!
//! ```no_run
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use tokio::io::AsyncWriteExt;
//!
//! fn handle(mut req: Request<Incoming>) -> Response<String> {
//!     let accepted = match spdy_k8s::is_websocket_upgrade(&req) {
//!         true => spdy_k8s::exec_websocket(&mut req),
//!         false => spdy_k8s::exec(&mut req),
//!     };
//!     let (response, upgrade) = match accepted {
//!         Ok(accepted) => accepted,
//!         Err(refusal) => return refusal,
//!     };
//!     tokio::spawn(async move {
//!         let Ok(mut session) = upgrade.session().await else { return };
//!         if let Some(stdout) = session.stdout.as_mut() {
//!             let _ = stdout.write_all(b"hello\n").await;
//!         }
//!         let _ = session.finish(0).await;
//!     });
//!     response
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};

use spdy::proto::header_block::HeaderBlock;
use spdy::upgrade;
use spdy::{Config, Handle, RecvStream, SendStream};

mod channels;
mod exec;
mod exec_client;
mod port_forward;
mod port_forward_client;
mod status;
mod stream;
mod websocket;
pub mod ws;

pub use channels::EXEC_WEBSOCKET_PROTOCOL;
pub use exec::{
    exec, exec_websocket, ExecProtocol, ExecRequest, ExecSession, ExecUpgrade, Resize,
    FINISH_LINGER,
};
pub use exec_client::{exec_client, exec_websocket_client, ExecClient, ResizeSender};
pub use port_forward::{
    port_forward, port_forward_websocket, ForwardedStream, PortForwardSession,
    PortForwardWebSocket, MAX_PENDING_FORWARDS, PORT_FORWARD_WEBSOCKET_PROTOCOL,
};
pub use port_forward_client::{
    port_forward_client, port_forward_websocket_client, PortForwardClient,
};
pub use status::{exit_code_status, failure_status, success_status};
pub use stream::{ChannelReader, ChannelWriter};
pub use websocket::is_websocket_upgrade;

/// The request header carrying the offered (and, in the 101, the chosen)
/// stream protocol.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The header of a 403 listing the protocols the server speaks.
pub const ACCEPTED_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";
/// The port-forward protocol.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// How long the client has to open its exec streams after the upgrade
/// (the kubelet's default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocols the client offers, in its order: every
/// `X-Stream-Protocol-Version` header, each possibly a comma-separated
/// list.
pub fn offered_protocols<B>(request: &Request<B>) -> Vec<String> {
    request
        .headers()
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The session configuration for Kubernetes peers: no flow control.
pub(crate) fn compat_config() -> Config {
    Config::default().with_peer_flow_control(false)
}

/// 403: no protocol in common.
pub(crate) fn forbidden<R: From<String>>(offered: &[String], accepted: &str) -> Response<R> {
    let body = format!(
        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {accepted}\n"
    );
    let mut response = Response::new(R::from(body));
    *response.status_mut() = StatusCode::FORBIDDEN;
    if let Ok(value) = HeaderValue::from_str(accepted) {
        response
            .headers_mut()
            .insert(ACCEPTED_PROTOCOLS_HEADER, value);
    }
    response
}

/// How long the client helpers ([`exec_client`], [`port_forward_client`],
/// [`PortForwardClient::forward`]) wait for the upgrade and for the replies
/// to the streams they open (client-go's stream creation timeout).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP upgrade failed (a refusal, with its status and body, is
    /// [`upgrade::UpgradeError::Refused`]).
    #[error(transparent)]
    Upgrade(#[from] upgrade::UpgradeError),
    /// The server switched to a stream protocol we did not offer (or
    /// named none where one is required).
    #[error("the server chose the stream protocol {0:?}, which was not offered")]
    Protocol(Option<String>),
    /// The WebSocket handshake or connection failed (other than by a
    /// refusal, which is [`ClientError::Upgrade`]).
    #[error("WebSocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// A stream or the session failed (or timed out: kind `TimedOut`).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The remote command could not run, or failed otherwise than with an
    /// exit code (a v4 `Status` other than `Success` / `NonZeroExitCode`,
    /// or the error text of an older protocol).
    #[error("remote command failed: {message}")]
    Failed {
        /// The `Status`'s `reason` (v4), if any.
        reason: Option<String>,
        /// The message.
        message: String,
    },
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
        ClientError::WebSocket(Box::new(e))
    }
}

impl From<spdy::Error> for ClientError {
    fn from(e: spdy::Error) -> ClientError {
        ClientError::Io(e.into())
    }
}

/// The upgrade of the client helpers: the session (its connection spawned)
/// and the protocol the server chose.
pub(crate) async fn client_upgrade<T>(
    io: T,
    request: upgrade::UpgradeRequest,
) -> Result<(Handle, Option<String>), ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (handle, connection, response) = tokio::time::timeout(
        CLIENT_TIMEOUT,
        upgrade::connect(io, request, compat_config()),
    )
    .await
    .map_err(|_| timed_out("no answer to the upgrade request"))??;
    tokio::spawn(connection);
    let negotiated = response
        .headers()
        .get(STREAM_PROTOCOL_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    Ok((handle, negotiated))
}

/// Opens a stream with `headers` and waits for its reply; then, with
/// `end_ours`, ends our side of it (a stream we never write on). As
/// client-go does: no FIN on the SYN_STREAM, an empty DATA with FIN after
/// the reply.
pub(crate) async fn open_replied(
    handle: &Handle,
    headers: &[(&str, &str)],
    end_ours: bool,
) -> Result<(SendStream, RecvStream), ClientError> {
    let block: HeaderBlock = headers
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let (mut send, mut recv) = handle.open_stream(block, Default::default())?;
    match tokio::time::timeout(CLIENT_TIMEOUT, recv.reply()).await {
        Ok(reply) => {
            reply?;
        }
        Err(_) => return Err(timed_out("no reply to a stream")),
    }
    if end_ours {
        send.finish()?;
    }
    Ok((send, recv))
}

pub(crate) fn timed_out(what: &str) -> ClientError {
    ClientError::Io(io::Error::new(io::ErrorKind::TimedOut, what.to_owned()))
}

/// Connects as kubectl 1.32 does: the WebSocket path first and, if the
/// server refuses that upgrade (an older server, or one without it), the
/// SPDY/3.1 upgrade on a new connection. `dial` opens a connection to the
/// server (TCP, or TLS) each time it is called. Gives what the first
/// path that works gives; any other failure of the WebSocket path is
/// returned as is.
async fn with_fallback<T, D, Fut, R, W, WFut, S, SFut>(
    dial: D,
    websocket: W,
    spdy: S,
) -> Result<R, ClientError>
where
    D: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
    W: FnOnce(T) -> WFut,
    WFut: std::future::Future<Output = Result<R, ClientError>>,
    S: FnOnce(T) -> SFut,
    SFut: std::future::Future<Output = Result<R, ClientError>>,
{
    match websocket(dial().await?).await {
        Err(ClientError::Upgrade(e)) if e.refused().is_some() => spdy(dial().await?).await,
        other => other,
    }
}

/// [`exec_websocket_client`], falling back to [`exec_client`] when the
/// server refuses the WebSocket upgrade (see kubectl's
/// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS`). `dial` opens a new connection
/// each time it is called.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use spdy_k8s::{self as k8s, ExecRequest};
/// use spdy::upgrade::UpgradeRequest;
///
/// let exec = ExecRequest { command: vec!["date".into()], stdout: true, ..Default::default() };
/// let path = format!("/api/v1/namespaces/default/pods/p/exec?{}", exec.to_query());
/// let request = UpgradeRequest::post(&path)?.host("127.0.0.1:8001")?;
/// let dial = || tokio::net::TcpStream::connect("127.0.0.1:8001");
/// let session = k8s::exec_connect(dial, request, &exec).await?;
/// # Ok(()) }
/// ```
pub async fn exec_connect<D, Fut, T>(
    dial: D,
    request: upgrade::UpgradeRequest,
    exec: &ExecRequest,
) -> Result<ExecClient, ClientError>
where
    D: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let again = request.clone();
    with_fallback(
        dial,
        |io| exec_websocket_client(io, request, exec),
        |io| exec_client(io, again, exec),
    )
    .await
}

/// [`port_forward_websocket_client`], falling back to
/// [`port_forward_client`] when the server refuses the WebSocket upgrade
/// (see kubectl's `KUBECTL_PORT_FORWARD_WEBSOCKETS`). `dial` opens a new
/// connection each time it is called.
pub async fn port_forward_connect<D, Fut, T>(
    dial: D,
    request: upgrade::UpgradeRequest,
) -> Result<PortForwardClient, ClientError>
where
    D: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let again = request.clone();
    with_fallback(
        dial,
        |io| port_forward_websocket_client(io, request),
        |io| port_forward_client(io, again),
    )
    .await
}
