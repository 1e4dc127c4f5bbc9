//! Port-forward with SPDY/3.1 carried in WebSocket binary messages:
//! kubectl's default path since 1.31.

use std::io;

use http::{HeaderValue, Request, Response, StatusCode};

use super::compat_config;
use super::port_forward::PortForwardSession;

/// The WebSocket subprotocol of port-forward with SPDY/3.1 inside binary
/// messages (kubectl's default since 1.31).
pub const PORT_FORWARD_WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Whether `request` asks for a WebSocket (`Upgrade: websocket`).
pub fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
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
/// [`PortForwardSession`] as [`port_forward`](super::port_forward)).
#[allow(clippy::result_large_err)]
pub fn port_forward_websocket<B, R>(
    request: &mut Request<B>,
) -> Result<(Response<R>, PortForwardWebSocket), Response<R>>
where
    R: From<String> + Default,
{
    let bad = |message: &str| {
        let mut response = Response::new(R::from(format!("{message}\n")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    let header = |name: &str| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect::<Vec<_>>()
    };
    if !is_websocket_upgrade(request)
        || !header("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("upgrade"))
    {
        return Err(bad("not a WebSocket upgrade"));
    }
    if !header("sec-websocket-version").iter().any(|v| v == "13") {
        return Err(bad("unsupported WebSocket version"));
    }
    if !header("sec-websocket-protocol")
        .iter()
        .any(|p| p == PORT_FORWARD_WEBSOCKET_PROTOCOL)
    {
        return Err(bad(&format!(
            "unable to negotiate protocol: the server accepts {PORT_FORWARD_WEBSOCKET_PROTOCOL}"
        )));
    }
    let Some(key) = request.headers().get("sec-websocket-key") else {
        return Err(bad("no Sec-WebSocket-Key"));
    };
    let accept = crate::ws::derive_accept_key(key.as_bytes());
    if request
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        let mut response = Response::new(R::from(
            "the server cannot upgrade this connection\n".to_owned(),
        ));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Err(response);
    }
    let on_upgrade = hyper::upgrade::on(request);
    let mut response = Response::new(R::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(PORT_FORWARD_WEBSOCKET_PROTOCOL),
    );
    Ok((response, PortForwardWebSocket { on_upgrade }))
}

impl PortForwardWebSocket {
    /// Waits for the upgrade (hyper sends the 101 once the response is
    /// returned), then starts the SPDY/3.1 server session inside the
    /// WebSocket, spawned on the current tokio runtime.
    pub async fn session(self) -> io::Result<PortForwardSession> {
        let upgraded = self
            .on_upgrade
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (handle, connection) = crate::handshake(
            crate::ws::WsIo::new(ws),
            crate::Role::Server,
            crate::Version::V3_1,
            compat_config(),
        );
        tokio::spawn(connection);
        Ok(PortForwardSession::new(handle))
    }
}
