//! The client's side of `kubectl port-forward`: SPDY over the HTTP
//! upgrade, or inside a WebSocket.

use http::HeaderValue;

use super::port_forward::{spdy_in_websocket_config, PORT_FORWARD_WEBSOCKET_PROTOCOL};
use super::websocket;
use super::{
    client_upgrade, compat_config, open_replied, ClientError, PORT_FORWARD_PROTOCOL,
    STREAM_PROTOCOL_HEADER,
};
use spdy::io::{StreamIo, StreamReader};
use spdy::upgrade;
use spdy::Handle;

/// The client side of a port-forward session (`kubectl port-forward`),
/// from [`port_forward_client`].
#[derive(Debug)]
pub struct PortForwardClient {
    handle: Handle,
    next_request_id: std::sync::atomic::AtomicU64,
}

/// Upgrades `io` (a connected TCP or TLS stream) for a port-forward
/// request (`portforward.k8s.io`), as `kubectl port-forward` does with the
/// SPDY upgrade; then [`PortForwardClient::forward`] opens connections.
/// `request` is the upgrade request (method, target, `Host`, extra
/// headers). The session runs without flow control towards the server, on
/// a task spawned on the current tokio runtime; the upgrade is awaited at
/// most [`CLIENT_TIMEOUT`](super::CLIENT_TIMEOUT).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use spdy::upgrade::UpgradeRequest;
///
/// let request = UpgradeRequest::post("/api/v1/namespaces/default/pods/p/portforward")?
///     .host("127.0.0.1:8001")?;
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8001").await?;
/// let session = spdy_k8s::port_forward_client(tcp, request).await?;
/// let (mut data, _error) = session.forward(80).await?;
/// let mut local = tokio::net::TcpStream::connect("127.0.0.1:9090").await?;
/// tokio::io::copy_bidirectional(&mut local, &mut data).await?;
/// # Ok(()) }
/// ```
pub async fn port_forward_client<T>(
    io: T,
    request: impl Into<upgrade::UpgradeRequest>,
) -> Result<PortForwardClient, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut request = request.into();
    request.headers.remove(STREAM_PROTOCOL_HEADER);
    request.headers.insert(
        STREAM_PROTOCOL_HEADER,
        HeaderValue::from_static(PORT_FORWARD_PROTOCOL),
    );
    let (handle, negotiated) = client_upgrade(io, request).await?;
    if negotiated.as_deref() != Some(PORT_FORWARD_PROTOCOL) {
        return Err(ClientError::Protocol(negotiated));
    }
    Ok(PortForwardClient::new(handle))
}

impl PortForwardClient {
    fn new(handle: Handle) -> PortForwardClient {
        PortForwardClient {
            handle,
            next_request_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Opens one forwarded connection to `port`: its error stream (ended
    /// on our side at once), then its data stream, each with `streamtype`,
    /// `port` and a fresh `requestid` (0, 1, 2, ...), each after the
    /// reply to the one before (at most [`CLIENT_TIMEOUT`](super::CLIENT_TIMEOUT) each). Gives the
    /// connection's bytes (both ways; `shutdown` half-closes) and the error
    /// stream, where the server reports a failure (say, nothing listens on
    /// the port) as text before ending it. May be called from several
    /// tasks at once.
    pub async fn forward(&self, port: u16) -> Result<(StreamIo, StreamReader), ClientError> {
        let id = self
            .next_request_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let port = port.to_string();
        let headers = |kind| {
            [
                ("streamtype", kind),
                ("port", &port[..]),
                ("requestid", &id[..]),
            ]
        };
        let (_, error) = open_replied(&self.handle, &headers("error"), true).await?;
        let (send, recv) = open_replied(&self.handle, &headers("data"), false).await?;
        Ok((StreamIo::new(send, recv), StreamReader::new(error)))
    }
}

/// [`port_forward_client`] over kubectl's default path: a WebSocket
/// upgrade (`GET`, whatever `request`'s method) offering
/// `SPDY/3.1+portforward.k8s.io`, then the same SPDY/3.1 session inside its
/// binary messages. The handshake is awaited at most
/// [`CLIENT_TIMEOUT`](super::CLIENT_TIMEOUT); a refusal is
/// [`UpgradeError::Refused`](spdy::upgrade::UpgradeError::Refused) (kubectl
/// then falls back to [`port_forward_client`]).
pub async fn port_forward_websocket_client<T>(
    io: T,
    request: impl Into<upgrade::UpgradeRequest>,
) -> Result<PortForwardClient, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ws = websocket::connect(
        io,
        request.into(),
        PORT_FORWARD_WEBSOCKET_PROTOCOL,
        spdy_in_websocket_config(),
    )
    .await?;
    let (handle, connection) = spdy::handshake(
        crate::ws::WsIo::new(ws),
        spdy::Role::Client,
        spdy::Version::V3_1,
        compat_config(),
    );
    tokio::spawn(connection);
    Ok(PortForwardClient::new(handle))
}
