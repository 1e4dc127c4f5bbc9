//! The WebSocket handshakes of kubectl's default paths (since 1.30 for
//! exec, 1.31 for port-forward), both ends: the server's checks and 101,
//! the client's request. What runs inside differs: SPDY/3.1 for
//! port-forward ([`crate::ws::WsIo`]), the `v5.channel.k8s.io` channels for
//! exec.

use std::io;

use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::{timed_out, ClientError, CLIENT_TIMEOUT};
use spdy::upgrade::{self, Refused, UpgradeError};

const PROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Whether `request` asks for a WebSocket (`Upgrade: websocket`).
pub fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    header_items(request, UPGRADE.as_str())
        .iter()
        .any(|p| p.eq_ignore_ascii_case("websocket"))
}

/// Every comma-separated item of every `name` header.
fn header_items<B>(request: &Request<B>, name: &str) -> Vec<String> {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Checks a WebSocket upgrade request offering `protocol` (RFC 6455
/// 4.2.1): 400 unless it is one (version 13, with a key, offering
/// `protocol`), else the 101 to return and the upgrade to await.
#[allow(clippy::result_large_err)]
pub(super) fn accept<B, R>(
    request: &mut Request<B>,
    protocol: &'static str,
) -> Result<(Response<R>, OnUpgrade), Response<R>>
where
    R: From<String> + Default,
{
    let bad = |message: &str| {
        let mut response = Response::new(R::from(format!("{message}\n")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    if !is_websocket_upgrade(request)
        || !header_items(request, CONNECTION.as_str())
            .iter()
            .any(|v| v.eq_ignore_ascii_case("upgrade"))
    {
        return Err(bad("not a WebSocket upgrade"));
    }
    if !header_items(request, "sec-websocket-version")
        .iter()
        .any(|v| v == "13")
    {
        return Err(bad("unsupported WebSocket version"));
    }
    if !header_items(request, PROTOCOL_HEADER)
        .iter()
        .any(|p| p == protocol)
    {
        return Err(bad(&format!(
            "unable to negotiate protocol: the server accepts {protocol}"
        )));
    }
    let Some(key) = request.headers().get("sec-websocket-key") else {
        return Err(bad("no Sec-WebSocket-Key"));
    };
    let accept = crate::ws::derive_accept_key(key.as_bytes());
    if request.extensions().get::<OnUpgrade>().is_none() {
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
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    Ok((response, on_upgrade))
}

/// The server's WebSocket once hyper has sent the 101.
pub(super) async fn upgraded(
    on_upgrade: OnUpgrade,
    config: WebSocketConfig,
) -> io::Result<WebSocketStream<TokioIo<Upgraded>>> {
    let upgraded = on_upgrade
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

/// The client's handshake on `io`: a GET for `request`'s target with its
/// headers (`Host`, `Authorization`, ...), offering `protocol`, which the
/// server must choose. At most [`CLIENT_TIMEOUT`].
pub(super) async fn connect<T>(
    io: T,
    request: upgrade::UpgradeRequest,
    protocol: &str,
    config: WebSocketConfig,
) -> Result<WebSocketStream<T>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let invalid = |what: String| ClientError::Upgrade(UpgradeError::InvalidRequest(what));
    let host = host_value(&request).map_err(invalid)?;
    let host_text = host
        .to_str()
        .map_err(|_| invalid("a Host that is not text".to_owned()))?;
    let mut ws_request = format!("ws://{host_text}{}", target(&request))
        .into_client_request()
        .map_err(|e| invalid(format!("not a WebSocket request: {e}")))?;
    let headers = ws_request.headers_mut();
    headers.insert(HOST, host);
    for (name, value) in &request.headers {
        let generated = name == HOST
            || name == CONNECTION
            || name == UPGRADE
            || name.as_str().starts_with("sec-websocket-");
        if !generated {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        PROTOCOL_HEADER,
        HeaderValue::from_str(protocol)
            .map_err(|_| invalid(format!("invalid protocol {protocol:?}")))?,
    );
    let handshake = tokio_tungstenite::client_async_with_config(ws_request, io, Some(config));
    let (ws, response) = tokio::time::timeout(CLIENT_TIMEOUT, handshake)
        .await
        .map_err(|_| timed_out("no answer to the WebSocket upgrade request"))?
        .map_err(|e| match e {
            WsError::Http(response) => {
                let (parts, body) = response.into_parts();
                ClientError::Upgrade(UpgradeError::Refused(Box::new(Refused {
                    status: parts.status,
                    headers: parts.headers,
                    body: body.unwrap_or_default().into(),
                    truncated: false,
                })))
            }
            e => ClientError::from(e),
        })?;
    let chosen = response
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    if chosen.as_deref() != Some(protocol) {
        return Err(ClientError::Protocol(chosen));
    }
    Ok(ws)
}

/// The request target: path and query (`/` if the URI has neither), as the
/// SPDY upgrade puts it on its request line.
fn target(request: &upgrade::UpgradeRequest) -> &str {
    request
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|pq| !pq.is_empty())
        .unwrap_or("/")
}

/// `Host`: the request's header, or else the URI's authority (the same
/// rule as the SPDY upgrade, so both of kubectl's paths reach one server).
fn host_value(request: &upgrade::UpgradeRequest) -> Result<HeaderValue, String> {
    if let Some(host) = request.headers.get(HOST) {
        return Ok(host.clone());
    }
    let authority = request
        .uri
        .authority()
        .ok_or_else(|| "no Host: give one, or an absolute URI".to_owned())?;
    HeaderValue::from_str(authority.as_str()).map_err(|_| "invalid authority".to_owned())
}
