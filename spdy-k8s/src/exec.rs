//! The kubelet's side of `kubectl exec`, over SPDY or a WebSocket:
//! negotiation, the stream set, the outcome report and terminal resizes.

use std::io;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::channels::{self, Connection, Side, EXEC_WEBSOCKET_PROTOCOL};
use super::status::{exit_code_status, failure_status, success_status};
use super::websocket;
use super::{
    compat_config, forbidden, offered_protocols, STREAM_CREATION_TIMEOUT, STREAM_PROTOCOL_HEADER,
};
use super::{ChannelReader, ChannelWriter};
use spdy::io::{StreamReader, StreamWriter};
use spdy::proto::header_block::HeaderBlock;
use spdy::upgrade;
use spdy::{Handle, RstStatus, SendStream};

/// How long [`ExecSession::finish`] waits for the client to hang up.
pub const FINISH_LINGER: Duration = Duration::from_secs(5);

/// The exec (remote command) stream protocols this module speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecProtocol {
    /// `v5.channel.k8s.io`: over a WebSocket, adds a close signal so that
    /// stdin can end on its own; over SPDY (where a stream's end does
    /// that), the same as v4.
    V5,
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
    pub const ALL: [ExecProtocol; 5] = [
        ExecProtocol::V5,
        ExecProtocol::V4,
        ExecProtocol::V3,
        ExecProtocol::V2,
        ExecProtocol::V1,
    ];

    /// The protocol's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecProtocol::V5 => "v5.channel.k8s.io",
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
        !matches!(self, ExecProtocol::V2 | ExecProtocol::V1)
    }

    /// Whether the outcome is reported as a JSON `Status` (v4 on), rather
    /// than as a message for failures only.
    pub fn reports_status(self) -> bool {
        matches!(self, ExecProtocol::V5 | ExecProtocol::V4)
    }
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
    /// Decodes a query string (`command=ls&command=-l&stdout=true&...`;
    /// `+` and `%20` are both a space, bad UTF-8 is replaced).
    pub fn from_query(query: &str) -> ExecRequest {
        let mut request = ExecRequest::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = value == "true" || value == "1";
            match &name[..] {
                "command" => request.command.push(value.into_owned()),
                "container" => request.container = Some(value.into_owned()),
                "stdin" | "input" => request.stdin = flag,
                "stdout" | "output" => request.stdout = flag,
                "stderr" | "error" => request.stderr = flag,
                "tty" => request.tty = flag,
                _ => {}
            }
        }
        request
    }

    /// The query string for this request (`command=...&stdin=true&...`),
    /// form-encoded as client-go's `url.Values.Encode` does (a space is
    /// `+`): the inverse of [`from_query`](Self::from_query).
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for command in &self.command {
            query.append_pair("command", command);
        }
        if let Some(container) = &self.container {
            query.append_pair("container", container);
        }
        for (name, on) in [
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("tty", self.tty),
        ] {
            if on {
                query.append_pair(name, "true");
            }
        }
        query.finish()
    }
}

/// An exec request upgraded (to SPDY/3.1, or to a `v5.channel.k8s.io`
/// WebSocket), waiting for the client's streams. From [`exec`] or
/// [`exec_websocket`].
#[derive(Debug)]
pub struct ExecUpgrade {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The request's parameters.
    pub request: ExecRequest,
    transport: UpgradeTransport,
}

#[derive(Debug)]
enum UpgradeTransport {
    Spdy(Handle),
    WebSocket(hyper::upgrade::OnUpgrade),
}

/// Takes an exec request (`POST .../exec?command=...`) from a hyper
/// HTTP/1.1 server (served `with_upgrades()`).
///
/// Without the upgrade headers the answer is 400; with no offered protocol
/// in common, 403 with `X-Accepted-Stream-Protocol-Versions`; without any
/// `X-Stream-Protocol-Version`, the original `channel.k8s.io`. Otherwise
/// the 101 response to return (with the chosen protocol) and the upgrade.
///
/// kubectl (since 1.30) first asks for a WebSocket instead: route requests
/// for which [`is_websocket_upgrade`](super::is_websocket_upgrade) holds to
/// [`exec_websocket`] (or refuse them, and kubectl falls back to this).
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
            transport: UpgradeTransport::Spdy(handle),
        },
    ))
}

/// Takes an exec request asking for a WebSocket with the
/// `v5.channel.k8s.io` subprotocol (kubectl's default path since 1.30; a
/// `GET`) from a hyper HTTP/1.1 server (served `with_upgrades()`): 400
/// unless it is such a WebSocket upgrade, else the 101 response to return
/// and the upgrade, whose [`session`](ExecUpgrade::session) gives the same
/// [`ExecSession`] as over SPDY.
///
/// Only v5 is served over a WebSocket: older WebSocket protocols cannot
/// end stdin without ending everything, and client-go offers only v5.
#[allow(clippy::result_large_err)]
pub fn exec_websocket<B, R>(
    request: &mut Request<B>,
) -> Result<(Response<R>, ExecUpgrade), Response<R>>
where
    R: From<String> + Default,
{
    let exec_request = ExecRequest::from_query(request.uri().query().unwrap_or(""));
    let (response, on_upgrade) = websocket::accept(request, EXEC_WEBSOCKET_PROTOCOL)?;
    Ok((
        response,
        ExecUpgrade {
            protocol: ExecProtocol::V5,
            request: exec_request,
            transport: UpgradeTransport::WebSocket(on_upgrade),
        },
    ))
}

impl ExecUpgrade {
    /// The SPDY session's handle (`None` over a WebSocket).
    pub fn handle(&self) -> Option<&Handle> {
        match &self.transport {
            UpgradeTransport::Spdy(handle) => Some(handle),
            UpgradeTransport::WebSocket(_) => None,
        }
    }

    /// Waits (at most [`STREAM_CREATION_TIMEOUT`]) for the streams the
    /// request announced, in any order, and replies to each as it comes
    /// (over a WebSocket: for the upgrade to complete; its channels exist
    /// from the start).
    pub async fn session(self) -> io::Result<ExecSession> {
        self.session_within(STREAM_CREATION_TIMEOUT).await
    }

    /// [`session`](Self::session) with another timeout.
    pub async fn session_within(self, timeout: Duration) -> io::Result<ExecSession> {
        let ExecUpgrade {
            protocol,
            request,
            transport,
        } = self;
        let in_time = |result| match result {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for the client's streams",
            )),
        };
        match transport {
            UpgradeTransport::Spdy(handle) => in_time(
                tokio::time::timeout(timeout, spdy_streams(protocol, request, handle)).await,
            ),
            UpgradeTransport::WebSocket(on_upgrade) => in_time(
                tokio::time::timeout(timeout, websocket_channels(request, on_upgrade)).await,
            ),
        }
    }
}

/// Takes the SPDY streams the request announced, replying to each.
async fn spdy_streams(
    protocol: ExecProtocol,
    request: ExecRequest,
    handle: Handle,
) -> io::Result<ExecSession> {
    let expect_resize = request.tty && protocol.has_resize();
    let mut error = None;
    let mut stdin = None;
    let mut stdout = None;
    let mut stderr = None;
    let mut resize = None;
    loop {
        let complete = error.is_some()
            && (stdin.is_some() || !request.stdin)
            && (stdout.is_some() || !request.stdout)
            && (stderr.is_some() || !request.stderr)
            && (resize.is_some() || !expect_resize);
        if complete {
            break;
        }
        let Some(stream) = handle.accept().await else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client went away before opening its streams",
            ));
        };
        let kind = stream.headers.get("streamtype").cloned();
        let reply = HeaderBlock::new();
        let writer = |send| ChannelWriter::from(StreamWriter::new(send));
        match kind.as_deref() {
            Some(b"error") if error.is_none() => {
                error = Some(writer(stream.reply(reply, false)?.0));
            }
            // Our side of stdin stays open until the end: client-go takes
            // its end as "the command is done" and closes stdin at once,
            // cutting off what it was still sending.
            Some(b"stdin") if stdin.is_none() => {
                let (send, recv) = stream.reply(reply, false)?;
                stdin = Some((ChannelReader::from(StreamReader::new(recv)), send));
            }
            Some(b"stdout") if stdout.is_none() => {
                stdout = Some(writer(stream.reply(reply, false)?.0));
            }
            Some(b"stderr") if stderr.is_none() => {
                stderr = Some(writer(stream.reply(reply, false)?.0));
            }
            Some(b"resize") if resize.is_none() => {
                let recv = stream.reply(reply, true)?.1;
                resize = Some(Resize::stream(StreamReader::new(recv).into()));
            }
            _ => stream.refuse(RstStatus::RefusedStream)?,
        }
    }
    let (stdin, stdin_send) = stdin.unzip();
    // The loop only ends with every expected stream, the error stream
    // always among them.
    let Some(error) = error else {
        return Err(io::Error::other("the client opened no error stream"));
    };
    Ok(ExecSession {
        protocol,
        request,
        stdin,
        stdout,
        stderr,
        resize,
        error,
        transport: SessionTransport::Spdy { handle, stdin_send },
    })
}

/// The channels of a v5 WebSocket, once hyper has sent the 101.
async fn websocket_channels(
    request: ExecRequest,
    on_upgrade: hyper::upgrade::OnUpgrade,
) -> io::Result<ExecSession> {
    let ws = websocket::upgraded(on_upgrade, channels::websocket_config()).await?;
    let mut inbound = vec![];
    if request.stdin {
        inbound.push(channels::STDIN);
    }
    if request.tty {
        inbound.push(channels::RESIZE);
    }
    let mut connection = Connection::spawn(ws, Side::Server, &inbound);
    let wanted = |on: bool, channel| on.then(|| ChannelWriter::from(connection.writer(channel)));
    let stdout = wanted(request.stdout, channels::STDOUT);
    let stderr = wanted(request.stderr, channels::STDERR);
    let error = connection.writer(channels::ERROR).into();
    Ok(ExecSession {
        protocol: ExecProtocol::V5,
        stdin: connection.reader(channels::STDIN).map(ChannelReader::from),
        resize: connection.resize().map(Resize::latest),
        stdout,
        stderr,
        error,
        request,
        transport: SessionTransport::WebSocket(connection),
    })
}

/// The streams of an exec session, ready: the same over SPDY and over a
/// WebSocket.
#[derive(Debug)]
pub struct ExecSession {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The request's parameters.
    pub request: ExecRequest,
    /// The command's input (ends at the client's end of stdin), if asked
    /// for. Read it (or drop it): unread input eventually pauses the whole
    /// session, as neither protocol has flow control.
    pub stdin: Option<ChannelReader>,
    /// The command's output, if asked for.
    pub stdout: Option<ChannelWriter>,
    /// The command's error output, if asked for.
    pub stderr: Option<ChannelWriter>,
    /// Terminal size changes, with a TTY (v3 and later).
    pub resize: Option<Resize>,
    /// The error stream: [`finish`](Self::finish) writes the outcome on it.
    pub error: ChannelWriter,
    transport: SessionTransport,
}

#[derive(Debug)]
enum SessionTransport {
    Spdy {
        handle: Handle,
        /// Our side of stdin, ended by `finish`.
        stdin_send: Option<SendStream>,
    },
    WebSocket(Connection),
}

impl ExecSession {
    /// The SPDY session's handle (`None` over a WebSocket).
    pub fn handle(&self) -> Option<&Handle> {
        match &self.transport {
            SessionTransport::Spdy { handle, .. } => Some(handle),
            SessionTransport::WebSocket(_) => None,
        }
    }

    /// Ends the session with the command's exit code: ends stdout and
    /// stderr, reports the outcome on the error stream (v4 and v5: a
    /// `Status`, success for 0 and `NonZeroExitCode` otherwise; older
    /// protocols: a message for a non-zero code, nothing for 0), ends it
    /// and our side of stdin (over a WebSocket: closes it normally), then
    /// waits (at most [`FINISH_LINGER`]) for the client to hang up before
    /// the session goes away.
    pub async fn finish(self, exit_code: i32) -> io::Result<()> {
        let report = match (self.protocol.reports_status(), exit_code) {
            (true, 0) => success_status(),
            (true, code) => exit_code_status(code),
            (false, 0) => String::new(),
            (false, code) => format!("command terminated with non-zero exit code: {code}"),
        };
        self.finish_with(report).await
    }

    /// Ends the session with a failure that is not an exit code (the
    /// command could not run, say): v4 and v5 report a `Status` with
    /// `reason` and `message`, older protocols the message.
    pub async fn fail(self, reason: &str, message: &str) -> io::Result<()> {
        let report = match self.protocol.reports_status() {
            true => failure_status(reason, message, None),
            false => message.to_owned(),
        };
        self.finish_with(report).await
    }

    async fn finish_with(mut self, report: String) -> io::Result<()> {
        // The standard streams end first: the client reads them to their
        // end before it looks at the error stream. One the client reset (it
        // did not want it) fails to end; the report goes out all the same.
        for stream in [self.stdout.as_mut(), self.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = stream.shutdown().await;
        }
        if !report.is_empty() {
            self.error.write_all(report.as_bytes()).await?;
        }
        self.error.shutdown().await?;
        match self.transport {
            SessionTransport::Spdy { handle, stdin_send } => {
                if let Some(mut send) = stdin_send {
                    // The peer may have reset stdin already (its FIN and
                    // our reading done): nothing to end then.
                    let _ = send.finish();
                }
                // Keep the session (and its streams) until the client
                // hangs up, at most FINISH_LINGER, as the kubelet does:
                // dropping the streams now would reset with CANCEL those
                // the client has not finished (stdin, typically) while it
                // still reads the report.
                let _ = tokio::time::timeout(FINISH_LINGER, async move {
                    while let Some(stream) = handle.accept().await {
                        let _ = stream.refuse(RstStatus::RefusedStream);
                    }
                })
                .await;
            }
            SessionTransport::WebSocket(connection) => {
                // Input nobody will read must not hold the driver (and the
                // close behind it): dropped, it is discarded.
                drop((self.stdin.take(), self.resize.take()));
                // The normal close ends every channel at the client, after
                // what was written on them.
                connection.close(FINISH_LINGER).await
            }
        }
        Ok(())
    }
}

/// The resize stream: terminal sizes, as the client sends them
/// (`{"Width":80,"Height":24}` objects, one after another).
///
/// Over a WebSocket only the latest size not yet taken is kept (the
/// connection never waits for the application to take sizes); over SPDY
/// every size is, and a resize stream nobody reads eventually pauses the
/// session like any other stream.
#[derive(Debug)]
pub struct Resize(ResizeSource);

#[derive(Debug)]
enum ResizeSource {
    /// A byte stream of JSON objects (SPDY).
    Stream {
        reader: ChannelReader,
        buffer: Vec<u8>,
    },
    /// One JSON object per message, latest only (WebSocket).
    Latest(channels::Latest),
}

/// The largest resize message kept while waiting for its end.
const MAX_RESIZE_MESSAGE: usize = 4096;

impl Resize {
    fn stream(reader: ChannelReader) -> Resize {
        Resize(ResizeSource::Stream {
            reader,
            buffer: Vec::new(),
        })
    }

    fn latest(latest: channels::Latest) -> Resize {
        Resize(ResizeSource::Latest(latest))
    }

    /// The next size as `(width, height)`; `None` at the stream's end (or
    /// on a stream error, or a message that is not a size).
    pub async fn next(&mut self) -> Option<(u16, u16)> {
        let size = match &mut self.0 {
            ResizeSource::Latest(latest) => {
                serde_json::from_slice::<TerminalSize>(&latest.next().await?).ok()?
            }
            ResizeSource::Stream { reader, buffer } => loop {
                match next_size(buffer) {
                    Ok(Some(size)) => break size,
                    Ok(None) if buffer.len() <= MAX_RESIZE_MESSAGE => {}
                    Ok(None) | Err(_) => return None,
                }
                let mut chunk = [0; 512];
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            },
        };
        Some((size.width, size.height))
    }
}

/// A terminal size as client-go's `TerminalSize` writes it
/// (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TerminalSize {
    width: u16,
    height: u16,
}

/// The first size in `buffer`, taken out of it; `Ok(None)` while it is
/// incomplete, an error once it cannot be a size.
fn next_size(buffer: &mut Vec<u8>) -> serde_json::Result<Option<TerminalSize>> {
    let mut sizes = serde_json::Deserializer::from_slice(buffer).into_iter::<TerminalSize>();
    match sizes.next() {
        Some(Ok(size)) => {
            let end = sizes.byte_offset();
            buffer.drain(..end);
            Ok(Some(size))
        }
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
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
    fn resize_sizes() {
        let mut buffer = br#"{"Width":120,"Height": 40} {"Height":24,"Width":80}{"Wid"#.to_vec();
        let size = |width, height| TerminalSize { width, height };
        assert_eq!(next_size(&mut buffer).unwrap(), Some(size(120, 40)));
        assert_eq!(next_size(&mut buffer).unwrap(), Some(size(80, 24)));
        // Incomplete: kept until the rest comes.
        assert_eq!(next_size(&mut buffer).unwrap(), None);
        assert_eq!(buffer, br#"{"Wid"#);
        buffer.extend_from_slice(br#"th":1,"Height":2}"#);
        assert_eq!(next_size(&mut buffer).unwrap(), Some(size(1, 2)));
        assert_eq!(next_size(&mut buffer).unwrap(), None);
        // Not a size: an error, not a wait.
        for bad in [
            &br#"{"Width":-1,"Height":2}"#[..],
            br#"{"Width":70000,"Height":2}"#,
            b"]",
        ] {
            assert!(next_size(&mut bad.to_vec()).is_err());
        }
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
        assert_eq!(
            r.to_query(),
            "command=sh&command=-c&command=echo+a%26b%3Dc+%25&container=c+1&stdin=true&stdout=true&tty=true"
        );
        assert_eq!(ExecRequest::from_query(&r.to_query()), r);
        // Bad escapes stay as they are; bad UTF-8 is replaced.
        let r = ExecRequest::from_query("command=%zz%2&command=%FF&&=x&stdin");
        assert_eq!(r.command, ["%zz%2", "\u{fffd}"]);
        assert!(!r.stdin);
    }
}
