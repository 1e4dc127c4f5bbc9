//! Server helpers for Kubernetes streaming over SPDY/3.1: the kubelet's
//! side of `kubectl exec` (the `channel.k8s.io` protocols, up to
//! `v4.channel.k8s.io`) and of `kubectl port-forward`
//! (`portforward.k8s.io`).
//!
//! Both start inside a hyper HTTP/1.1 server served `with_upgrades()`:
//! [`exec`] / [`port_forward`] check the request, negotiate the
//! `X-Stream-Protocol-Version` and give the response to return (101, or the
//! refusal), with the session. The session runs with
//! [`Config::with_peer_flow_control(false)`](crate::Config::with_peer_flow_control):
//! Kubernetes' SPDY implementation (spdystream) does no flow control.
//!
//! kubectl's default port-forward path (since 1.31) carries SPDY/3.1 inside
//! WebSocket binary messages (`Sec-WebSocket-Protocol:
//! SPDY/3.1+portforward.k8s.io`): route requests for which
//! [`is_websocket_upgrade`] holds to [`port_forward_websocket`], which gives
//! the same [`PortForwardSession`] (over [`crate::ws::WsIo`]).
//!
//! The client side (`kubectl`'s) is here too: [`exec_client`] and
//! [`port_forward_client`] upgrade a connected socket and open the streams
//! as client-go does.
//!
//! ```no_run
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use tokio::io::AsyncWriteExt;
//!
//! fn handle(mut req: Request<Incoming>) -> Response<String> {
//!     let (response, upgrade) = match spdy::k8s::exec(&mut req) {
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

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::io::{StreamIo, StreamReader, StreamWriter};
use crate::proto::header_block::HeaderBlock;
use crate::upgrade;
use crate::{Config, Handle, RecvStream, RstStatus, SendStream};

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

/// How long [`ExecSession::finish`] waits for the client to hang up.
pub const FINISH_LINGER: Duration = Duration::from_secs(5);

/// Forwarded connections whose second stream has not arrived yet; beyond
/// this, new ones are refused (a peer could otherwise open halves of pairs
/// without end).
pub const MAX_PENDING_FORWARDS: usize = 128;

/// The exec (remote command) stream protocols this module speaks.
///
/// `v5.channel.k8s.io` (the close signal on stdin) is not supported: a
/// client offering it gets the next one it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecProtocol {
    /// `v4.channel.k8s.io`: the exit status as a JSON `Status` on the error
    /// stream.
    V4,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v2.channel.k8s.io`: one stream per standard stream, plus error.
    V2,
    /// `channel.k8s.io`: the original protocol.
    V1,
}

impl ExecProtocol {
    /// Every supported protocol, most preferred first.
    pub const ALL: [ExecProtocol; 4] = [
        ExecProtocol::V4,
        ExecProtocol::V3,
        ExecProtocol::V2,
        ExecProtocol::V1,
    ];

    /// The protocol's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecProtocol::V4 => "v4.channel.k8s.io",
            ExecProtocol::V3 => "v3.channel.k8s.io",
            ExecProtocol::V2 => "v2.channel.k8s.io",
            ExecProtocol::V1 => "channel.k8s.io",
        }
    }

    /// The protocol named `name`, if supported.
    pub fn from_name(name: &str) -> Option<ExecProtocol> {
        ExecProtocol::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Whether the client opens a resize stream (with a TTY).
    pub fn has_resize(self) -> bool {
        matches!(self, ExecProtocol::V3 | ExecProtocol::V4)
    }
}

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

/// What an exec request asks for, from its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments (`command=` parameters, in order).
    pub command: Vec<String>,
    /// The container (`container=`), if named.
    pub container: Option<String>,
    /// The client opens a stdin stream.
    pub stdin: bool,
    /// The client opens a stdout stream.
    pub stdout: bool,
    /// The client opens a stderr stream.
    pub stderr: bool,
    /// A terminal is asked for (and, from v3 on, a resize stream opened).
    pub tty: bool,
}

impl ExecRequest {
    /// Decodes a query string (`command=ls&command=-l&stdout=true&...`).
    pub fn from_query(query: &str) -> ExecRequest {
        let mut request = ExecRequest::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            let flag = value == "true" || value == "1";
            match &percent_decode(name)[..] {
                "command" => request.command.push(value),
                "container" => request.container = Some(value),
                "stdin" | "input" => request.stdin = flag,
                "stdout" | "output" => request.stdout = flag,
                "stderr" | "error" => request.stderr = flag,
                "tty" => request.tty = flag,
                _ => {}
            }
        }
        request
    }
}

/// An exec request upgraded to SPDY/3.1, waiting for the client's streams.
/// From [`exec`].
#[derive(Debug)]
pub struct ExecUpgrade {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The request's parameters.
    pub request: ExecRequest,
    handle: Handle,
}

/// Takes an exec request (`POST .../exec?command=...`) from a hyper
/// HTTP/1.1 server (served `with_upgrades()`).
///
/// Without the upgrade headers the answer is 400; with no offered protocol
/// in common, 403 with `X-Accepted-Stream-Protocol-Versions`; without any
/// `X-Stream-Protocol-Version`, the original `channel.k8s.io`. Otherwise
/// the 101 response to return (with the chosen protocol) and the upgrade.
#[allow(clippy::result_large_err)]
pub fn exec<B, R>(request: &mut Request<B>) -> Result<(Response<R>, ExecUpgrade), Response<R>>
where
    R: From<String> + Default,
{
    upgrade::check_request(request).map_err(|r| r.into_response())?;
    let offered = offered_protocols(request);
    let protocol = if offered.is_empty() {
        ExecProtocol::V1
    } else {
        match offered.iter().find_map(|p| ExecProtocol::from_name(p)) {
            Some(protocol) => protocol,
            None => {
                let names: Vec<&str> = ExecProtocol::ALL.iter().map(|p| p.as_str()).collect();
                return Err(forbidden(&offered, &names.join(",")));
            }
        }
    };
    let exec_request = ExecRequest::from_query(request.uri().query().unwrap_or(""));
    let mut server = upgrade::accept(request).map_err(|r| r.into_response())?;
    if !offered.is_empty() {
        server = server.header(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static(protocol.as_str()),
        );
    }
    let (response, handle) = server.config(compat_config()).spawn();
    Ok((
        response,
        ExecUpgrade {
            protocol,
            request: exec_request,
            handle,
        },
    ))
}

impl ExecUpgrade {
    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Waits (at most [`STREAM_CREATION_TIMEOUT`]) for the streams the
    /// request announced, in any order, and replies to each as it comes.
    pub async fn session(self) -> io::Result<ExecSession> {
        self.session_within(STREAM_CREATION_TIMEOUT).await
    }

    /// [`session`](Self::session) with another timeout.
    pub async fn session_within(self, timeout: Duration) -> io::Result<ExecSession> {
        let ExecUpgrade {
            protocol,
            request,
            handle,
        } = self;
        let expect_resize = request.tty && protocol.has_resize();
        let mut error = None;
        let mut stdin = None;
        let mut stdout = None;
        let mut stderr = None;
        let mut resize = None;
        let complete = |error: &Option<_>,
                        stdin: &Option<_>,
                        stdout: &Option<_>,
                        stderr: &Option<_>,
                        resize: &Option<_>| {
            error.is_some()
                && (stdin.is_some() || !request.stdin)
                && (stdout.is_some() || !request.stdout)
                && (stderr.is_some() || !request.stderr)
                && (resize.is_some() || !expect_resize)
        };
        let collect = async {
            while !complete(&error, &stdin, &stdout, &stderr, &resize) {
                let Some(stream) = handle.accept().await else {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client went away before opening its streams",
                    ));
                };
                let kind = stream.headers.get("streamtype").cloned();
                let reply = HeaderBlock::new();
                match kind.as_deref() {
                    Some(b"error") if error.is_none() => {
                        error = Some(StreamWriter::new(stream.reply(reply, false)?.0));
                    }
                    // Our side of stdin stays open until the end: client-go
                    // takes its end as "the command is done" and closes
                    // stdin at once, cutting off what it was still sending.
                    Some(b"stdin") if stdin.is_none() => {
                        let (send, recv) = stream.reply(reply, false)?;
                        stdin = Some((StreamReader::new(recv), send));
                    }
                    Some(b"stdout") if stdout.is_none() => {
                        stdout = Some(StreamWriter::new(stream.reply(reply, false)?.0));
                    }
                    Some(b"stderr") if stderr.is_none() => {
                        stderr = Some(StreamWriter::new(stream.reply(reply, false)?.0));
                    }
                    Some(b"resize") if resize.is_none() => {
                        resize = Some(Resize::new(stream.reply(reply, true)?.1));
                    }
                    _ => stream.refuse(RstStatus::RefusedStream)?,
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, collect).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out waiting for the client's streams",
                ))
            }
        }
        let (stdin, stdin_send) = stdin.unzip();
        // The collection loop only ends with every expected stream, the
        // error stream always among them.
        let Some(error) = error else {
            return Err(io::Error::other("the client opened no error stream"));
        };
        Ok(ExecSession {
            protocol,
            request,
            stdin,
            stdin_send,
            stdout,
            stderr,
            resize,
            error,
            handle,
        })
    }
}

/// The streams of an exec session, replied to and ready.
#[derive(Debug)]
pub struct ExecSession {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The request's parameters.
    pub request: ExecRequest,
    /// The command's input (ends at the client's FIN), if asked for.
    pub stdin: Option<StreamReader>,
    /// The command's output, if asked for.
    pub stdout: Option<StreamWriter>,
    /// The command's error output, if asked for.
    pub stderr: Option<StreamWriter>,
    /// Terminal size changes, with a TTY (v3 and v4).
    pub resize: Option<Resize>,
    /// The error stream: [`finish`](Self::finish) writes the outcome on it.
    pub error: StreamWriter,
    /// Our side of stdin, ended by `finish`.
    stdin_send: Option<SendStream>,
    handle: Handle,
}

impl ExecSession {
    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Ends the session with the command's exit code: ends stdout and
    /// stderr, reports the outcome on the error stream (v4: a `Status`,
    /// success for 0 and `NonZeroExitCode` otherwise; older protocols: a
    /// message for a non-zero code, nothing for 0), ends it and our side of
    /// stdin, then waits (at most [`FINISH_LINGER`]) for the client to hang
    /// up before the session goes away.
    pub async fn finish(self, exit_code: i32) -> io::Result<()> {
        let report = match (self.protocol, exit_code) {
            (ExecProtocol::V4, 0) => success_status(),
            (ExecProtocol::V4, code) => exit_code_status(code),
            (_, 0) => String::new(),
            (_, code) => format!("command terminated with non-zero exit code: {code}"),
        };
        self.finish_with(report).await
    }

    /// Ends the session with a failure that is not an exit code (the
    /// command could not run, say): v4 reports a `Status` with `reason`
    /// and `message`, older protocols the message.
    pub async fn fail(self, reason: &str, message: &str) -> io::Result<()> {
        let report = match self.protocol {
            ExecProtocol::V4 => failure_status(reason, message, None),
            _ => message.to_owned(),
        };
        self.finish_with(report).await
    }

    async fn finish_with(mut self, report: String) -> io::Result<()> {
        // The standard streams end first: the client reads them to their
        // end before it looks at the error stream.
        for stream in [self.stdout.as_mut(), self.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            stream.shutdown().await?;
        }
        if !report.is_empty() {
            self.error.write_all(report.as_bytes()).await?;
        }
        self.error.shutdown().await?;
        if let Some(mut send) = self.stdin_send.take() {
            // The peer may have reset stdin already (its FIN and our
            // reading done): nothing to end then.
            let _ = send.finish();
        }
        // Keep the session (and its streams) until the client hangs up,
        // at most FINISH_LINGER, as the kubelet does: dropping the streams
        // now would reset with CANCEL those the client has not finished
        // (stdin, typically) while it still reads the report.
        let handle = self.handle.clone();
        let _ = tokio::time::timeout(FINISH_LINGER, async move {
            while let Some(stream) = handle.accept().await {
                let _ = stream.refuse(RstStatus::RefusedStream);
            }
        })
        .await;
        Ok(())
    }
}

/// The `Status` the v4 protocol reports for success.
pub fn success_status() -> String {
    r#"{"metadata":{},"status":"Success"}"#.to_owned()
}

/// The `Status` the v4 protocol reports for a non-zero exit code (what
/// client-go's `errorDecoderV4` turns into an exit code; it parses the
/// code as an unsigned 8-bit number).
pub fn exit_code_status(code: i32) -> String {
    failure_status(
        "NonZeroExitCode",
        &format!("command terminated with non-zero exit code: {code}"),
        Some(code),
    )
}

/// A failure `Status` with `reason`, `message` and, for an exit code, the
/// `ExitCode` cause.
pub fn failure_status(reason: &str, message: &str, exit_code: Option<i32>) -> String {
    let mut status = format!(
        r#"{{"metadata":{{}},"status":"Failure","message":{},"reason":{}"#,
        json_string(message),
        json_string(reason)
    );
    if let Some(code) = exit_code {
        status.push_str(&format!(
            r#","details":{{"causes":[{{"reason":"ExitCode","message":"{code}"}}]}}"#
        ));
    }
    status.push('}');
    status
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The resize stream: terminal sizes, as the client sends them
/// (`{"Width":80,"Height":24}` objects, one after another).
#[derive(Debug)]
pub struct Resize {
    recv: RecvStream,
    buffer: Vec<u8>,
}

/// The largest resize message kept while waiting for its end.
const MAX_RESIZE_MESSAGE: usize = 4096;

impl Resize {
    fn new(recv: RecvStream) -> Resize {
        Resize {
            recv,
            buffer: Vec::new(),
        }
    }

    /// The next size as `(width, height)`; `None` at the stream's end (or
    /// on a stream error, or a message that is not a size).
    pub async fn next(&mut self) -> Option<(u16, u16)> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'}') {
                let message: Vec<u8> = self.buffer.drain(..=end).collect();
                let text = String::from_utf8_lossy(&message);
                return Some((json_number(&text, "Width")?, json_number(&text, "Height")?));
            }
            if self.buffer.len() > MAX_RESIZE_MESSAGE {
                return None;
            }
            let data = self.recv.data().await?.ok()?;
            self.buffer.extend_from_slice(&data);
        }
    }
}

/// The unsigned number of `"key":` in a flat JSON object.
fn json_number(text: &str, key: &str) -> Option<u16> {
    let start = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

// ===== port forward =====

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
    Ok((
        response,
        PortForwardSession {
            handle,
            pending: HashMap::new(),
        },
    ))
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

// ===== port forward over a WebSocket =====

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
/// [`PortForwardSession`] as [`port_forward`]).
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
        Ok(PortForwardSession {
            handle,
            pending: HashMap::new(),
        })
    }
}

/// The streams of one forwarded connection seen so far.
#[derive(Debug, Default)]
struct Pending {
    error: Option<StreamWriter>,
    data: Option<(Option<u16>, StreamIo)>,
}

// ===== common =====

/// The session configuration for Kubernetes peers: no flow control.
fn compat_config() -> Config {
    Config::default().with_peer_flow_control(false)
}

/// 403: no protocol in common.
fn forbidden<R: From<String>>(offered: &[String], accepted: &str) -> Response<R> {
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

/// Percent-decoding, with `+` for space.
fn percent_decode(s: &str) -> String {
    let hex = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ===== client =====

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

impl From<crate::Error> for ClientError {
    fn from(e: crate::Error) -> ClientError {
        ClientError::Io(e.into())
    }
}

impl ExecRequest {
    /// The query string for this request (`command=...&stdin=true&...`),
    /// values percent-encoded: the inverse of [`from_query`](Self::from_query).
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .command
            .iter()
            .map(|c| format!("command={}", percent_encode(c)))
            .collect();
        if let Some(container) = &self.container {
            parts.push(format!("container={}", percent_encode(container)));
        }
        for (name, on) in [
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("tty", self.tty),
        ] {
            if on {
                parts.push(format!("{name}=true"));
            }
        }
        parts.join("&")
    }
}

/// The client side of an exec session (`kubectl exec`): its streams,
/// replied to and ready, from [`exec_client`].
///
/// Read `stdout` and `stderr` to their end (take them out, and read them
/// concurrently with [`wait`](Self::wait) or before it): a stream nobody
/// reads eventually pauses the whole session.
#[derive(Debug)]
pub struct ExecClient {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The command's input, if asked for: `shutdown` it to end stdin.
    pub stdin: Option<StreamWriter>,
    /// The command's output, if asked for.
    pub stdout: Option<StreamReader>,
    /// The command's error output, if asked for.
    pub stderr: Option<StreamReader>,
    /// Terminal size changes, with a TTY (v3 and v4).
    pub resize: Option<ResizeSender>,
    error: RecvStream,
    handle: Handle,
}

/// The largest outcome report [`ExecClient::wait`] reads.
const MAX_STATUS: usize = 1 << 20;

/// Upgrades `io` (a connected TCP or TLS stream) for an exec request and
/// opens its streams, as `kubectl exec` does.
///
/// `request` is the upgrade request (method, target, `Host`, extra headers
/// such as `Authorization`); its query must announce what `exec` asks for,
/// [`ExecRequest::to_query`] writes it. Unless `request` offers its own,
/// every [`ExecProtocol`] is offered (`X-Stream-Protocol-Version`, v4
/// first); the session runs without flow control towards the server
/// ([`Config::with_peer_flow_control(false)`](crate::Config::with_peer_flow_control)),
/// on a task spawned on the current tokio runtime. The streams are opened
/// in client-go's order (error, stdin, stdout, stderr, resize), each after
/// the reply to the one before. The upgrade and each reply are awaited at
/// most [`CLIENT_TIMEOUT`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use spdy::k8s::{self, ExecRequest};
/// use spdy::upgrade::UpgradeRequest;
/// use tokio::io::AsyncReadExt;
///
/// let exec = ExecRequest {
///     command: vec!["ls".into(), "-l".into()],
///     stdout: true,
///     ..Default::default()
/// };
/// let path = format!("/api/v1/namespaces/default/pods/p/exec?{}", exec.to_query());
/// let request = UpgradeRequest::post(&path)?.host("127.0.0.1:8001")?;
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8001").await?;
/// let mut session = k8s::exec_client(tcp, request, &exec).await?;
/// let mut out = Vec::new();
/// session.stdout.take().unwrap().read_to_end(&mut out).await?;
/// let code = session.wait().await?;
/// # Ok(()) }
/// ```
pub async fn exec_client<T>(
    io: T,
    request: impl Into<upgrade::UpgradeRequest>,
    exec: &ExecRequest,
) -> Result<ExecClient, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut request = request.into();
    if !request.headers.contains_key(STREAM_PROTOCOL_HEADER) {
        for protocol in ExecProtocol::ALL {
            request.headers.append(
                STREAM_PROTOCOL_HEADER,
                HeaderValue::from_static(protocol.as_str()),
            );
        }
    }
    let (handle, negotiated) = client_upgrade(io, request).await?;
    let protocol = match negotiated {
        // client-go: no protocol named is the original one.
        None => ExecProtocol::V1,
        Some(name) => match ExecProtocol::from_name(&name) {
            Some(protocol) => protocol,
            None => return Err(ClientError::Protocol(Some(name))),
        },
    };
    let (_, error) = open_replied(&handle, &[("streamtype", "error")], true).await?;
    let stdin = match exec.stdin {
        true => {
            let (send, _) = open_replied(&handle, &[("streamtype", "stdin")], false).await?;
            Some(StreamWriter::new(send))
        }
        false => None,
    };
    let stdout = match exec.stdout {
        true => {
            let (_, recv) = open_replied(&handle, &[("streamtype", "stdout")], true).await?;
            Some(StreamReader::new(recv))
        }
        false => None,
    };
    let stderr = match exec.stderr {
        true => {
            let (_, recv) = open_replied(&handle, &[("streamtype", "stderr")], true).await?;
            Some(StreamReader::new(recv))
        }
        false => None,
    };
    let resize = match exec.tty && protocol.has_resize() {
        true => {
            let (send, _) = open_replied(&handle, &[("streamtype", "resize")], false).await?;
            Some(ResizeSender {
                writer: StreamWriter::new(send),
            })
        }
        false => None,
    };
    Ok(ExecClient {
        protocol,
        stdin,
        stdout,
        stderr,
        resize,
        error,
        handle,
    })
}

impl ExecClient {
    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Waits for the outcome on the error stream: the exit code (0 for a
    /// v4 `Success`, or an empty report with older protocols; the
    /// `ExitCode` cause of a v4 `NonZeroExitCode`), or
    /// [`ClientError::Failed`] for any other report. Streams not taken out
    /// are dropped first; the session ends when this returns.
    pub async fn wait(self) -> Result<i32, ClientError> {
        let ExecClient {
            protocol,
            mut error,
            handle,
            ..
        } = self;
        let report = error.read_to_end(MAX_STATUS).await?;
        drop(handle);
        decode_exit(protocol, &report)
    }
}

/// The outcome of an exec from its error stream's report.
fn decode_exit(protocol: ExecProtocol, report: &[u8]) -> Result<i32, ClientError> {
    let text = String::from_utf8_lossy(report);
    if text.trim().is_empty() {
        return Ok(0);
    }
    if protocol != ExecProtocol::V4 {
        return Err(ClientError::Failed {
            reason: None,
            message: text.trim().to_owned(),
        });
    }
    let Some(Json::Object(status)) = Json::parse(&text) else {
        return Err(ClientError::Failed {
            reason: None,
            message: format!("undecodable status: {}", text.trim()),
        });
    };
    let field = |object: &[(String, Json)], key: &str| -> Option<String> {
        match object.iter().find(|(k, _)| k == key)? {
            (_, Json::String(s)) => Some(s.clone()),
            _ => None,
        }
    };
    if field(&status, "status").as_deref() == Some("Success") {
        return Ok(0);
    }
    let reason = field(&status, "reason");
    let message = field(&status, "message").unwrap_or_else(|| "remote command failed".to_owned());
    if reason.as_deref() == Some("NonZeroExitCode") {
        let causes = match status.iter().find(|(k, _)| k == "details") {
            Some((_, Json::Object(details))) => match details.iter().find(|(k, _)| k == "causes") {
                Some((_, Json::Array(causes))) => causes.as_slice(),
                _ => &[],
            },
            _ => &[],
        };
        let code = causes.iter().find_map(|cause| match cause {
            Json::Object(cause) if field(cause, "reason").as_deref() == Some("ExitCode") => {
                field(cause, "message")?.trim().parse::<i32>().ok()
            }
            _ => None,
        });
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(ClientError::Failed { reason, message })
}

/// The client's resize stream: sends terminal sizes.
#[derive(Debug)]
pub struct ResizeSender {
    writer: StreamWriter,
}

impl ResizeSender {
    /// Sends a terminal size (`{"Width":..,"Height":..}`).
    pub async fn send(&mut self, width: u16, height: u16) -> io::Result<()> {
        let message = format!(r#"{{"Width":{width},"Height":{height}}}"#);
        self.writer.write_all(message.as_bytes()).await
    }

    /// Ends the resize stream.
    pub async fn close(&mut self) -> io::Result<()> {
        self.writer.shutdown().await
    }
}

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
/// most [`CLIENT_TIMEOUT`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use spdy::upgrade::UpgradeRequest;
///
/// let request = UpgradeRequest::post("/api/v1/namespaces/default/pods/p/portforward")?
///     .host("127.0.0.1:8001")?;
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8001").await?;
/// let session = spdy::k8s::port_forward_client(tcp, request).await?;
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
    Ok(PortForwardClient {
        handle,
        next_request_id: std::sync::atomic::AtomicU64::new(0),
    })
}

impl PortForwardClient {
    /// The session's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Opens one forwarded connection to `port`: its error stream (ended
    /// on our side at once), then its data stream, each with `streamtype`,
    /// `port` and a fresh `requestid` (0, 1, 2, ...), each after the
    /// reply to the one before (at most [`CLIENT_TIMEOUT`] each). Gives the
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

/// The upgrade of the client helpers: the session (its connection spawned)
/// and the protocol the server chose.
async fn client_upgrade<T>(
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
async fn open_replied(
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

fn timed_out(what: &str) -> ClientError {
    ClientError::Io(io::Error::new(io::ErrorKind::TimedOut, what.to_owned()))
}

/// Percent-encoding of a query value (all but the unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON value, for the `Status` on the error stream .
#[derive(Debug, Clone, PartialEq)]
enum Json {
    /// `null`, `true`, `false` or a number.
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// How deep [`Json::parse`] nests.
const MAX_JSON_DEPTH: usize = 64;

impl Json {
    /// The one JSON value of `text` (surrounding whitespace allowed).
    fn parse(text: &str) -> Option<Json> {
        let mut chars = text.chars().peekable();
        let value = Json::value(&mut chars, 0)?;
        skip_ws(&mut chars);
        chars.peek().is_none().then_some(value)
    }

    fn value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, depth: usize) -> Option<Json> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        skip_ws(chars);
        match *chars.peek()? {
            '{' => {
                chars.next();
                let mut fields = Vec::new();
                skip_ws(chars);
                if chars.next_if_eq(&'}').is_some() {
                    return Some(Json::Object(fields));
                }
                loop {
                    skip_ws(chars);
                    let Json::String(key) = Json::value(chars, depth + 1)? else {
                        return None;
                    };
                    skip_ws(chars);
                    chars.next_if_eq(&':')?;
                    let value = Json::value(chars, depth + 1)?;
                    fields.push((key, value));
                    skip_ws(chars);
                    match chars.next()? {
                        ',' => continue,
                        '}' => return Some(Json::Object(fields)),
                        _ => return None,
                    }
                }
            }
            '[' => {
                chars.next();
                let mut items = Vec::new();
                skip_ws(chars);
                if chars.next_if_eq(&']').is_some() {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(Json::value(chars, depth + 1)?);
                    skip_ws(chars);
                    match chars.next()? {
                        ',' => continue,
                        ']' => return Some(Json::Array(items)),
                        _ => return None,
                    }
                }
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '"' => return Some(Json::String(s)),
                        '\\' => match chars.next()? {
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            '/' => s.push('/'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                let high = hex4(chars)?;
                                let c = if (0xd800..0xdc00).contains(&high) {
                                    // A surrogate pair: \uD83D\uDE00.
                                    if chars.next()? != '\\' || chars.next()? != 'u' {
                                        return None;
                                    }
                                    let low = hex4(chars)?;
                                    if !(0xdc00..0xe000).contains(&low) {
                                        return None;
                                    }
                                    0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                                } else {
                                    high
                                };
                                s.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                            }
                            _ => return None,
                        },
                        c => s.push(c),
                    }
                }
            }
            c if c == '-' || c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_digit() || "+-.eE".contains(*c)) {
                    n.push(c);
                }
                n.parse::<f64>().ok().map(|_| Json::Scalar)
            }
            _ => {
                let word: String =
                    std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphabetic())).collect();
                match &word[..] {
                    "null" | "true" | "false" => Some(Json::Scalar),
                    _ => None,
                }
            }
        }
    }
}

fn skip_ws(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
}

/// Four hex digits (a `\\u` escape's).
fn hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
    u32::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        let r = ExecRequest::from_query(
            "command=sh&command=-c&command=echo+a%20b&container=c1&stdin=true&stdout=true&stderr=false&tty=1",
        );
        assert_eq!(r.command, ["sh", "-c", "echo a b"]);
        assert_eq!(r.container.as_deref(), Some("c1"));
        assert!(r.stdin && r.stdout && !r.stderr && r.tty);
    }

    #[test]
    fn statuses() {
        assert_eq!(
            exit_code_status(3),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(json_string("a\"b\\\n\u{1}"), r#""a\"b\\\n\u0001""#);
    }

    #[test]
    fn resize_numbers() {
        let t = r#"{"Width":120,"Height": 40}"#;
        assert_eq!(json_number(t, "Width"), Some(120));
        assert_eq!(json_number(t, "Height"), Some(40));
    }

    #[test]
    fn query_round_trip() {
        let r = ExecRequest {
            command: vec!["sh".into(), "-c".into(), "echo a&b=c %".into()],
            container: Some("c 1".into()),
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        assert_eq!(ExecRequest::from_query(&r.to_query()), r);
    }

    #[test]
    fn exit_decoding() {
        let v4 = ExecProtocol::V4;
        assert_eq!(decode_exit(v4, b"").unwrap(), 0);
        assert_eq!(decode_exit(v4, success_status().as_bytes()).unwrap(), 0);
        assert_eq!(decode_exit(v4, exit_code_status(3).as_bytes()).unwrap(), 3);
        assert_eq!(
            decode_exit(v4, exit_code_status(255).as_bytes()).unwrap(),
            255
        );
        // client-go's order of fields, with kind and code.
        let status = r#" {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]},"code":500}
"#;
        assert_eq!(decode_exit(v4, status.as_bytes()).unwrap(), 7);
        match decode_exit(
            v4,
            failure_status("InternalError", "no \"such\" file \u{e9}", None).as_bytes(),
        ) {
            Err(ClientError::Failed { reason, message }) => {
                assert_eq!(reason.as_deref(), Some("InternalError"));
                assert_eq!(message, "no \"such\" file \u{e9}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_exit(v4, b"{\"status\":"),
            Err(ClientError::Failed { .. })
        ));
        assert!(matches!(
            decode_exit(
                ExecProtocol::V2,
                b"command terminated with non-zero exit code: 2"
            ),
            Err(ClientError::Failed { .. })
        ));
        assert_eq!(decode_exit(ExecProtocol::V3, b"").unwrap(), 0);
    }

    #[test]
    fn json_values() {
        assert_eq!(
            Json::parse(r#"{"a":[1,-2.5e3,true,null,{}],"b":"\u00e9\ud83d\ude00\n"}"#),
            Some(Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::Scalar,
                        Json::Scalar,
                        Json::Scalar,
                        Json::Scalar,
                        Json::Object(vec![])
                    ])
                ),
                ("b".into(), Json::String("\u{e9}\u{1f600}\n".into())),
            ]))
        );
        for bad in ["", "{", "[1,]", r#"{"a" 1}"#, "tru", "{} x", "\"\\x\""] {
            assert_eq!(Json::parse(bad), None, "{bad}");
        }
        let deep = "[".repeat(1000);
        assert_eq!(Json::parse(&deep), None);
    }
}
