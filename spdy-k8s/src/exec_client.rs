//! The client's side of `kubectl exec`, over SPDY or a WebSocket.

use std::io;

use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::channels::{self, Connection, Side, EXEC_WEBSOCKET_PROTOCOL};
use super::status::decode_exit;
use super::websocket;
use super::{
    client_upgrade, open_replied, ChannelReader, ChannelWriter, ClientError, ExecProtocol,
    ExecRequest, STREAM_PROTOCOL_HEADER,
};
use spdy::io::{StreamReader, StreamWriter};
use spdy::upgrade;
use spdy::Handle;

/// The client side of an exec session (`kubectl exec`): its streams,
/// replied to and ready, from [`exec_client`] or [`exec_websocket_client`].
///
/// Read `stdout` and `stderr` to their end (take them out, and read them
/// concurrently with [`wait`](Self::wait) or before it): a stream nobody
/// reads eventually pauses the whole session.
#[derive(Debug)]
pub struct ExecClient {
    /// The negotiated protocol.
    pub protocol: ExecProtocol,
    /// The command's input, if asked for: `shutdown` it to end stdin.
    pub stdin: Option<ChannelWriter>,
    /// The command's output, if asked for.
    pub stdout: Option<ChannelReader>,
    /// The command's error output, if asked for.
    pub stderr: Option<ChannelReader>,
    /// Terminal size changes, with a TTY (v3 and later).
    pub resize: Option<ResizeSender>,
    error: ChannelReader,
    transport: ClientTransport,
}

#[derive(Debug)]
enum ClientTransport {
    Spdy(Handle),
    /// Held, not used: dropping it ends the connection.
    WebSocket(#[allow(dead_code)] Connection),
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
/// ([`Config::with_peer_flow_control(false)`](spdy::Config::with_peer_flow_control)),
/// on a task spawned on the current tokio runtime. The streams are opened
/// in client-go's order (error, stdin, stdout, stderr, resize), each after
/// the reply to the one before. The upgrade and each reply are awaited at
/// most [`CLIENT_TIMEOUT`](super::CLIENT_TIMEOUT).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use spdy_k8s::{self as k8s, ExecRequest};
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
            Some(StreamWriter::new(send).into())
        }
        false => None,
    };
    let stdout = match exec.stdout {
        true => {
            let (_, recv) = open_replied(&handle, &[("streamtype", "stdout")], true).await?;
            Some(StreamReader::new(recv).into())
        }
        false => None,
    };
    let stderr = match exec.stderr {
        true => {
            let (_, recv) = open_replied(&handle, &[("streamtype", "stderr")], true).await?;
            Some(StreamReader::new(recv).into())
        }
        false => None,
    };
    let resize = match exec.tty && protocol.has_resize() {
        true => {
            let (send, _) = open_replied(&handle, &[("streamtype", "resize")], false).await?;
            Some(ResizeSender {
                writer: StreamWriter::new(send).into(),
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
        error: StreamReader::new(error).into(),
        transport: ClientTransport::Spdy(handle),
    })
}

/// [`exec_client`] over kubectl's default path: a WebSocket upgrade
/// (`GET`, whatever `request`'s method) offering `v5.channel.k8s.io`, whose
/// binary messages carry the streams as numbered channels. `request`'s
/// query announces the streams, as with [`exec_client`]. The handshake is
/// awaited at most [`CLIENT_TIMEOUT`](super::CLIENT_TIMEOUT); a refusal is
/// [`UpgradeError::Refused`](spdy::upgrade::UpgradeError::Refused)
/// (kubectl then falls back to the SPDY upgrade of [`exec_client`]).
pub async fn exec_websocket_client<T>(
    io: T,
    request: impl Into<upgrade::UpgradeRequest>,
    exec: &ExecRequest,
) -> Result<ExecClient, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ws = websocket::connect(
        io,
        request.into(),
        EXEC_WEBSOCKET_PROTOCOL,
        channels::websocket_config(),
    )
    .await?;
    let mut inbound = vec![channels::ERROR];
    if exec.stdout {
        inbound.push(channels::STDOUT);
    }
    if exec.stderr {
        inbound.push(channels::STDERR);
    }
    let mut connection = Connection::spawn(ws, Side::Client, &inbound);
    let writer = |on: bool, channel| on.then(|| ChannelWriter::from(connection.writer(channel)));
    let stdin = writer(exec.stdin, channels::STDIN);
    let resize = writer(exec.tty, channels::RESIZE).map(|writer| ResizeSender { writer });
    let (Some(error), stdout, stderr) = (
        connection.reader(channels::ERROR),
        connection.reader(channels::STDOUT),
        connection.reader(channels::STDERR),
    ) else {
        return Err(ClientError::Io(io::Error::other("no error channel")));
    };
    Ok(ExecClient {
        protocol: ExecProtocol::V5,
        stdin,
        stdout: stdout.map(ChannelReader::from),
        stderr: stderr.map(ChannelReader::from),
        resize,
        error: error.into(),
        transport: ClientTransport::WebSocket(connection),
    })
}

impl ExecClient {
    /// The SPDY session's handle (`None` over a WebSocket).
    pub fn handle(&self) -> Option<&Handle> {
        match &self.transport {
            ClientTransport::Spdy(handle) => Some(handle),
            ClientTransport::WebSocket(_) => None,
        }
    }

    /// Waits for the outcome on the error stream: the exit code (0 for a
    /// `Success` status, or an empty report with protocols before v4; the
    /// `ExitCode` cause of a `NonZeroExitCode` status), or
    /// [`ClientError::Failed`] for any other report. Streams not taken out
    /// are dropped first; the session ends when this returns.
    pub async fn wait(self) -> Result<i32, ClientError> {
        let ExecClient {
            protocol,
            error,
            transport,
            stdin,
            stdout,
            stderr,
            resize,
        } = self;
        // Unread output would hold the session (and the report behind it).
        drop((stdin, stdout, stderr, resize));
        let mut report = Vec::new();
        error
            .take(MAX_STATUS as u64 + 1)
            .read_to_end(&mut report)
            .await?;
        drop(transport);
        if report.len() > MAX_STATUS {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an outcome report over {MAX_STATUS} bytes"),
            )));
        }
        decode_exit(protocol, &report)
    }
}

/// The client's resize stream: sends terminal sizes.
#[derive(Debug)]
pub struct ResizeSender {
    writer: ChannelWriter,
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
