//! The kubelet's side of `kubectl port-forward` over SPDY: stream pairs
//! told apart by `requestid`.

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::websocket;
use super::{
    compat_config, forbidden, offered_protocols, PORT_FORWARD_PROTOCOL, STREAM_PROTOCOL_HEADER,
};
use spdy::io::{StreamIo, StreamWriter};
use spdy::proto::header_block::HeaderBlock;
use spdy::upgrade;
use spdy::{Handle, RstStatus};

/// Forwarded connections whose second stream has not arrived yet; beyond
/// this, new ones are refused (a peer could otherwise open halves of pairs
/// without end).
pub const MAX_PENDING_FORWARDS: usize = 128;

/// Takes a port-forward request (`POST .../portforward`) from a hyper
/// HTTP/1.1 server (served `with_upgrades()`): 400 without the upgrade
/// headers, 403 (with `X-Accepted-Stream-Protocol-Versions`) if
/// `portforward.k8s.io` is not offered, else the 101 response and the
/// session.
#[allow(clippy::result_large_err)]
pub fn port_forward<B, R>(
    request: &mut Request<B>,
) -> Result<(Response<R>, PortForwardSession), Response<R>>
where
    R: From<String> + Default,
{
    upgrade::check_request(request).map_err(|r| r.into_response())?;
    let offered = offered_protocols(request);
    if !offered.iter().any(|p| p == PORT_FORWARD_PROTOCOL) {
        return Err(forbidden(&offered, PORT_FORWARD_PROTOCOL));
    }
    let (response, handle) = upgrade::accept(request)
        .map_err(|r| r.into_response())?
        .header(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static(PORT_FORWARD_PROTOCOL),
        )
        .config(compat_config())
        .spawn();
    Ok((response, PortForwardSession::new(handle)))
}

/// One forwarded connection: its data stream (both ways) and its error
/// stream (ours to write a failure on; finish it when done).
#[derive(Debug)]
pub struct ForwardedStream {
    /// The port to forward to (`port` header).
    pub port: u16,
    /// The client's id for the connection (`requestid` header).
    pub request_id: String,
    /// The connection's bytes, both ways.
    pub data: StreamIo,
    /// The error stream: a message here fails the connection at the client.
    pub error: StreamWriter,
}

/// The streams of a port-forward session, paired by `requestid`.
#[derive(Debug)]
pub struct PortForwardSession {
    handle: Handle,
    pending: HashMap<Bytes, Pending>,
}

impl PortForwardSession {
    pub(super) fn new(handle: Handle) -> PortForwardSession {
        PortForwardSession {
            handle,
            pending: HashMap::new(),
        }
    }

    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The next forwarded connection, once both of its streams arrived;
    /// `None` when the session is over. Each stream is replied to as it
    /// arrives (client-go waits for the error stream's reply before it
    /// opens the data stream). Streams without a `requestid`, with an
    /// unknown `streamtype` or a second one of a kind are refused; a pair
    /// whose `port` is not a port gets a message on its error stream and a
    /// reset data stream.
    pub async fn next(&mut self) -> Option<ForwardedStream> {
        while let Some(stream) = self.handle.accept().await {
            let Some(id) = stream.headers.get("requestid").cloned() else {
                let _ = stream.refuse(RstStatus::ProtocolError);
                continue;
            };
            let kind = stream.headers.get("streamtype").cloned();
            if !self.pending.contains_key(&id) && self.pending.len() >= MAX_PENDING_FORWARDS {
                let _ = stream.refuse(RstStatus::RefusedStream);
                continue;
            }
            let pair = self.pending.entry(id.clone()).or_default();
            match kind.as_deref() {
                Some(b"error") if pair.error.is_none() => {
                    // We never read the error stream (the client ends its
                    // side at once).
                    let Ok((send, _)) = stream.reply(HeaderBlock::new(), false) else {
                        continue;
                    };
                    pair.error = Some(StreamWriter::new(send));
                }
                Some(b"data") if pair.data.is_none() => {
                    let port = stream
                        .headers
                        .get("port")
                        .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u16>().ok())
                        .filter(|&p| p != 0);
                    let Ok((send, recv)) = stream.reply(HeaderBlock::new(), false) else {
                        continue;
                    };
                    pair.data = Some((port, StreamIo::new(send, recv)));
                }
                _ => {
                    let _ = stream.refuse(RstStatus::ProtocolError);
                    continue;
                }
            }
            if pair.error.is_none() || pair.data.is_none() {
                continue;
            }
            let Some(Pending {
                error: Some(mut error),
                data: Some((port, mut data)),
            }) = self.pending.remove(&id)
            else {
                continue;
            };
            let request_id = String::from_utf8_lossy(&id).into_owned();
            let Some(port) = port else {
                let _ = data.writer().get_mut().reset(RstStatus::Cancel);
                let message = format!("invalid port in request {request_id}");
                tokio::spawn(async move {
                    let _ = error.write_all(message.as_bytes()).await;
                    let _ = error.shutdown().await;
                });
                continue;
            };
            return Some(ForwardedStream {
                port,
                request_id,
                data,
                error,
            });
        }
        None
    }
}

/// The streams of one forwarded connection seen so far.
#[derive(Debug, Default)]
struct Pending {
    error: Option<StreamWriter>,
    data: Option<(Option<u16>, StreamIo)>,
}

// ===== over a WebSocket =====

/// The WebSocket subprotocol of port-forward with SPDY/3.1 inside binary
/// messages (kubectl's default since 1.31).
pub const PORT_FORWARD_WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The WebSocket limits for SPDY inside: a message may carry a whole
/// spdystream DATA frame (up to 16 MiB, with its head).
pub(super) fn spdy_in_websocket_config() -> WebSocketConfig {
    WebSocketConfig {
        max_message_size: Some((16 << 20) + 64),
        max_frame_size: Some((16 << 20) + 64),
        ..Default::default()
    }
}

/// A port-forward request upgraded to a WebSocket carrying SPDY/3.1, from
/// [`port_forward_websocket`].
#[derive(Debug)]
pub struct PortForwardWebSocket {
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Takes a port-forward request asking for a WebSocket with the
/// `SPDY/3.1+portforward.k8s.io` subprotocol (`GET .../portforward`) from a
/// hyper HTTP/1.1 server (served `with_upgrades()`): 400 unless it is a
/// WebSocket upgrade (version 13, with a key) offering that subprotocol,
/// else the 101 response to return and the upgrade
/// ([`PortForwardWebSocket::session`] gives the same
/// [`PortForwardSession`] as [`port_forward`]).
#[allow(clippy::result_large_err)]
pub fn port_forward_websocket<B, R>(
    request: &mut Request<B>,
) -> Result<(Response<R>, PortForwardWebSocket), Response<R>>
where
    R: From<String> + Default,
{
    let (response, on_upgrade) = websocket::accept(request, PORT_FORWARD_WEBSOCKET_PROTOCOL)?;
    Ok((response, PortForwardWebSocket { on_upgrade }))
}

impl PortForwardWebSocket {
    /// Waits for the upgrade (hyper sends the 101 once the response is
    /// returned), then starts the SPDY/3.1 server session inside the
    /// WebSocket, spawned on the current tokio runtime.
    pub async fn session(self) -> io::Result<PortForwardSession> {
        let ws = websocket::upgraded(self.on_upgrade, spdy_in_websocket_config()).await?;
        let (handle, connection) = spdy::handshake(
            crate::ws::WsIo::new(ws),
            spdy::Role::Server,
            spdy::Version::V3_1,
            compat_config(),
        );
        tokio::spawn(connection);
        Ok(PortForwardSession::new(handle))
    }
}
