//! The client helpers of `spdy_k8s` (`exec_client`, `port_forward_client`)
//! against its server helpers (`exec`, `port_forward`) inside a hyper
//! HTTP/1.1 server on 127.0.0.1. The "commands" run in process, so that
//! everything is deterministic.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::upgrade::UpgradeRequest;
use spdy_k8s::{
    self as k8s, ClientError, ExecProtocol, ExecRequest, ExecSession, PortForwardSession,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

// ===== the server =====

/// The `requestid` and `port` of each forwarded connection the server saw.
type Seen = Arc<Mutex<Vec<(String, u16)>>>;

async fn start_server() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let server_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = server_seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(serve(req, seen)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

fn serve(mut req: Request<Incoming>, seen: Seen) -> Response<String> {
    match req.uri().path() {
        "/portforward" if k8s::is_websocket_upgrade(&req) => {
            match k8s::port_forward_websocket(&mut req) {
                Ok((response, upgrade)) => {
                    tokio::spawn(async move {
                        if let Ok(session) = upgrade.session().await {
                            forward_all(session, seen).await;
                        }
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        // `/legacy/...`: a server without the WebSocket paths (`k8s::exec`
        // and `k8s::port_forward` answer a WebSocket request with 400).
        path @ ("/exec" | "/legacy/exec") => {
            let accepted = match path == "/exec" && k8s::is_websocket_upgrade(&req) {
                true => k8s::exec_websocket(&mut req),
                false => k8s::exec(&mut req),
            };
            match accepted {
                Ok((response, upgrade)) => {
                    tokio::spawn(async move {
                        if let Ok(session) = upgrade.session_within(WAIT).await {
                            run(session).await;
                        }
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        "/portforward" | "/legacy/portforward" => match k8s::port_forward(&mut req) {
            Ok((response, session)) => {
                tokio::spawn(forward_all(session, seen));
                response
            }
            Err(refusal) => refusal,
        },
        _ => {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// The in-process "commands":
/// - `echo CODE`: stdin back on stdout, `to stderr\n` on stderr, exit CODE;
/// - `sizes`: each terminal size as `WxH\n` on stdout, exit 0 at the end
///   of the resize stream;
/// - anything else: fails as a command that cannot run.
async fn run(mut session: ExecSession) {
    let command = session.request.command.clone();
    match command.first().map(String::as_str) {
        Some("echo") => {
            let code = command[1].parse().unwrap();
            if let Some(stderr) = session.stderr.as_mut() {
                stderr.write_all(b"to stderr\n").await.unwrap();
            }
            if let (Some(stdin), Some(stdout)) = (session.stdin.as_mut(), session.stdout.as_mut()) {
                tokio::io::copy(stdin, stdout).await.unwrap();
            }
            session.finish(code).await.unwrap();
        }
        Some("big") => {
            // 2 MiB on stdout, more than any queue holds.
            if let Some(stdout) = session.stdout.as_mut() {
                let _ = stdout.write_all(&vec![b'x'; 2 << 20]).await;
            }
            let _ = session.finish(0).await;
        }
        Some("drain") => {
            // Reads stdin to its end and reports how that went.
            let mut stdin = session.stdin.take().unwrap();
            let mut input = Vec::new();
            let outcome = stdin.read_to_end(&mut input).await.map_err(|e| e.kind());
            if let Some(report) = drained().lock().unwrap().remove(&command[1]) {
                let _ = report.send(outcome);
            }
            let _ = session.finish(0).await;
        }
        Some("sizes") => {
            let mut resize = session.resize.take().unwrap();
            let stdout = session.stdout.as_mut().unwrap();
            while let Some((width, height)) = resize.next().await {
                let line = format!("{width}x{height}\n");
                stdout.write_all(line.as_bytes()).await.unwrap();
            }
            session.finish(0).await.unwrap();
        }
        _ => {
            let message = format!("executable file not found: {command:?}");
            session.fail("InternalError", &message).await.unwrap();
        }
    }
}

/// Where the `drain` command reports what it read from stdin (bytes, or
/// how it failed), by the name in its command line.
type DrainReport = tokio::sync::oneshot::Sender<Result<usize, std::io::ErrorKind>>;

fn drained() -> &'static Mutex<HashMap<String, DrainReport>> {
    static DRAINED: OnceLock<Mutex<HashMap<String, DrainReport>>> = OnceLock::new();
    DRAINED.get_or_init(Default::default)
}

/// Forwards each connection to its port on 127.0.0.1.
async fn forward_all(mut session: PortForwardSession, seen: Seen) {
    while let Some(mut stream) = session.next().await {
        seen.lock()
            .unwrap()
            .push((stream.request_id.clone(), stream.port));
        tokio::spawn(async move {
            match TcpStream::connect(("127.0.0.1", stream.port)).await {
                Ok(mut tcp) => {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream.data).await;
                }
                Err(e) => {
                    let message = format!("error forwarding port {}: {e}", stream.port);
                    let _ = stream.error.write_all(message.as_bytes()).await;
                    let _ = stream
                        .data
                        .writer()
                        .get_mut()
                        .reset(spdy::RstStatus::Cancel);
                }
            }
            let _ = stream.error.shutdown().await;
        });
    }
}

/// An echo service: each connection's bytes back, until its end.
async fn start_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

// ===== helpers =====

/// FNV-1a, 64 bits.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `len` deterministic pseudo-random bytes (xorshift from `seed`).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(WAIT, r.read_to_end(&mut out))
        .await
        .expect("timed out reading")
        .unwrap();
    out
}

/// How the client reaches the server: the SPDY/3.1 upgrade, or kubectl's
/// default WebSocket path (`v5.channel.k8s.io` channels for exec, SPDY
/// inside binary messages for port-forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Spdy,
    WebSocket,
}

/// Runs the test `$name(Transport)` once per transport.
macro_rules! over_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn spdy() {
                super::$name(super::Transport::Spdy).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn websocket() {
                super::$name(super::Transport::WebSocket).await
            }
        }
    )*};
}

over_both!(
    exec_echoes_stdin_with_separate_stderr_and_exit_code,
    exec_success_and_failure,
    exec_tty_sends_sizes_on_the_resize_stream,
    exec_client_gone_is_an_error_on_stdin,
    exec_wait_without_reading_the_output,
    exec_unread_resize_does_not_hold_stdin,
    port_forward_five_parallel_connections,
    port_forward_failure_comes_on_the_error_stream,
);

async fn exec(
    addr: SocketAddr,
    exec: &ExecRequest,
    transport: Transport,
) -> Result<k8s::ExecClient, ClientError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post(&format!("/exec?{}", exec.to_query()))
        .unwrap()
        .host(&addr.to_string())
        .unwrap();
    let session = async {
        match transport {
            Transport::Spdy => k8s::exec_client(tcp, request, exec).await,
            Transport::WebSocket => k8s::exec_websocket_client(tcp, request, exec).await,
        }
    };
    timeout(WAIT, session)
        .await
        .expect("timed out opening the exec session")
}

fn command(args: &[&str]) -> ExecRequest {
    ExecRequest {
        command: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

// ===== exec =====

async fn exec_echoes_stdin_with_separate_stderr_and_exit_code(transport: Transport) {
    let (addr, _) = start_server().await;
    let request = ExecRequest {
        stdin: true,
        stdout: true,
        stderr: true,
        ..command(&["echo", "3"])
    };
    let mut session = exec(addr, &request, transport).await.unwrap();
    assert_eq!(session.protocol, ExecProtocol::V5);
    assert_eq!(session.handle().is_some(), transport == Transport::Spdy);
    assert!(session.resize.is_none());
    let input = pattern(1 << 20, 42);
    let mut stdin = session.stdin.take().unwrap();
    let sent = input.clone();
    let feed = tokio::spawn(async move {
        stdin.write_all(&sent).await.unwrap();
        stdin.shutdown().await.unwrap();
    });
    let (out, err) = tokio::join!(
        read_all(session.stdout.take().unwrap()),
        read_all(session.stderr.take().unwrap())
    );
    timeout(WAIT, feed).await.unwrap().unwrap();
    assert_eq!(out.len(), input.len());
    assert_eq!(fnv(&out), fnv(&input), "stdout differs from stdin");
    assert_eq!(err, b"to stderr\n");
    let code = timeout(WAIT, session.wait()).await.unwrap().unwrap();
    assert_eq!(code, 3);
}

async fn exec_success_and_failure(transport: Transport) {
    let (addr, _) = start_server().await;
    // Exit code 0, no stdin: stdout ends at once.
    let mut session = exec(
        addr,
        &ExecRequest {
            stdout: true,
            stderr: true,
            ..command(&["echo", "0"])
        },
        transport,
    )
    .await
    .unwrap();
    assert!(session.stdin.is_none());
    let (out, err) = tokio::join!(
        read_all(session.stdout.take().unwrap()),
        read_all(session.stderr.take().unwrap())
    );
    assert_eq!((out.len(), &err[..]), (0, &b"to stderr\n"[..]));
    assert_eq!(timeout(WAIT, session.wait()).await.unwrap().unwrap(), 0);

    // A command that cannot run: the Status's reason and message.
    let mut session = exec(
        addr,
        &ExecRequest {
            stdout: true,
            ..command(&["no-such-command", "a b"])
        },
        transport,
    )
    .await
    .unwrap();
    assert!(read_all(session.stdout.take().unwrap()).await.is_empty());
    match timeout(WAIT, session.wait()).await.unwrap() {
        Err(ClientError::Failed { reason, message }) => {
            assert_eq!(reason.as_deref(), Some("InternalError"));
            assert_eq!(
                message,
                r#"executable file not found: ["no-such-command", "a b"]"#
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

async fn exec_tty_sends_sizes_on_the_resize_stream(transport: Transport) {
    let (addr, _) = start_server().await;
    let mut session = exec(
        addr,
        &ExecRequest {
            stdout: true,
            tty: true,
            ..command(&["sizes"])
        },
        transport,
    )
    .await
    .unwrap();
    let mut resize = session.resize.take().expect("a resize stream with a tty");
    resize.send(80, 24).await.unwrap();
    resize.send(132, 43).await.unwrap();
    resize.close().await.unwrap();
    let out = read_all(session.stdout.take().unwrap()).await;
    match transport {
        Transport::Spdy => assert_eq!(out, b"80x24\n132x43\n"),
        // Only the latest size not yet taken is kept: the first may be
        // replaced by the second before the server takes it.
        Transport::WebSocket => assert!(
            out == b"80x24\n132x43\n" || out == b"132x43\n",
            "{:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(timeout(WAIT, session.wait()).await.unwrap().unwrap(), 0);
}

/// A client that goes away in the middle of stdin: the command reads an
/// error, not a clean end of its input.
async fn exec_client_gone_is_an_error_on_stdin(transport: Transport) {
    let (addr, _) = start_server().await;
    let name = format!("gone-{transport:?}");
    let (report, outcome) = tokio::sync::oneshot::channel();
    drained().lock().unwrap().insert(name.clone(), report);
    let mut session = exec(
        addr,
        &ExecRequest {
            stdin: true,
            stdout: true,
            ..command(&["drain", &name])
        },
        transport,
    )
    .await
    .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(&pattern(100_000, 7)).await.unwrap();
    stdin.flush().await.unwrap();
    drop(stdin);
    drop(session);
    let outcome = timeout(WAIT, outcome).await.unwrap().unwrap();
    assert!(outcome.is_err(), "stdin cut short read as {outcome:?}");
}

/// `wait` with stdout never taken out: the output is discarded, not left
/// to hold the session (and the report behind it).
async fn exec_wait_without_reading_the_output(transport: Transport) {
    let (addr, _) = start_server().await;
    let request = ExecRequest {
        stdout: true,
        ..command(&["big"])
    };
    let session = exec(addr, &request, transport).await.unwrap();
    assert_eq!(timeout(WAIT, session.wait()).await.unwrap().unwrap(), 0);
}

/// The server's `echo` keeps the resize stream in the session and never
/// reads it: the client's sizes must not hold stdin behind them.
async fn exec_unread_resize_does_not_hold_stdin(transport: Transport) {
    let (addr, _) = start_server().await;
    let request = ExecRequest {
        stdin: true,
        stdout: true,
        tty: true,
        ..command(&["echo", "0"])
    };
    let mut session = exec(addr, &request, transport).await.unwrap();
    let mut resize = session.resize.take().unwrap();
    for width in 0..20 {
        resize.send(80 + width, 24).await.unwrap();
    }
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"hello").await.unwrap();
    stdin.shutdown().await.unwrap();
    assert_eq!(read_all(session.stdout.take().unwrap()).await, b"hello");
    assert_eq!(timeout(WAIT, session.wait()).await.unwrap().unwrap(), 0);
}

/// `exec_connect` / `port_forward_connect` take the WebSocket path, or
/// fall back to the SPDY upgrade on a new connection when the server
/// refuses it, as kubectl does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_falls_back_like_kubectl() {
    let (addr, _) = start_server().await;
    let echo = start_echo().await;
    let dial = || TcpStream::connect(addr);
    for (prefix, websocket) in [("", true), ("/legacy", false)] {
        let exec = ExecRequest {
            stdin: true,
            stdout: true,
            ..command(&["echo", "5"])
        };
        let request = UpgradeRequest::post(&format!("{prefix}/exec?{}", exec.to_query()))
            .unwrap()
            .host(&addr.to_string())
            .unwrap();
        let mut session = timeout(WAIT, k8s::exec_connect(dial, request, &exec))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.handle().is_none(), websocket, "{prefix}");
        let mut stdin = session.stdin.take().unwrap();
        stdin.write_all(b"both ways").await.unwrap();
        stdin.shutdown().await.unwrap();
        assert_eq!(read_all(session.stdout.take().unwrap()).await, b"both ways");
        assert_eq!(timeout(WAIT, session.wait()).await.unwrap().unwrap(), 5);

        let request = UpgradeRequest::post(&format!("{prefix}/portforward"))
            .unwrap()
            .host(&addr.to_string())
            .unwrap();
        let forwards = timeout(WAIT, k8s::port_forward_connect(dial, request))
            .await
            .unwrap()
            .unwrap();
        let (mut data, _) = timeout(WAIT, forwards.forward(echo))
            .await
            .unwrap()
            .unwrap();
        data.write_all(b"forwarded").await.unwrap();
        data.shutdown().await.unwrap();
        assert_eq!(read_all(data).await, b"forwarded", "{prefix}");
    }
}

#[tokio::test]
async fn exec_with_no_common_protocol_is_refused() {
    let (addr, _) = start_server().await;
    let exec = ExecRequest {
        stdout: true,
        ..command(&["echo", "0"])
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post(&format!("/exec?{}", exec.to_query()))
        .unwrap()
        .host(&addr.to_string())
        .unwrap()
        .header("x-stream-protocol-version", "v9.channel.k8s.io")
        .unwrap();
    let result = timeout(WAIT, k8s::exec_client(tcp, request, &exec))
        .await
        .unwrap();
    match result {
        Err(ClientError::Upgrade(e)) => {
            let refused = e.refused().expect("a refusal");
            assert_eq!(refused.status, StatusCode::FORBIDDEN);
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

// ===== port forward =====

async fn port_forward(addr: SocketAddr, transport: Transport) -> k8s::PortForwardClient {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post("/portforward")
        .unwrap()
        .host(&addr.to_string())
        .unwrap();
    let session = async {
        match transport {
            Transport::Spdy => k8s::port_forward_client(tcp, request).await,
            Transport::WebSocket => k8s::port_forward_websocket_client(tcp, request).await,
        }
    };
    timeout(WAIT, session)
        .await
        .expect("timed out opening the port-forward session")
        .unwrap()
}

async fn port_forward_five_parallel_connections(transport: Transport) {
    let (addr, seen) = start_server().await;
    let echo = start_echo().await;
    let session = Arc::new(port_forward(addr, transport).await);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..5u64 {
        let session = session.clone();
        tasks.spawn(async move {
            let (data, error) = timeout(WAIT, session.forward(echo)).await.unwrap().unwrap();
            let input = pattern(256 * 1024 + n as usize, n + 1);
            let (reader, mut writer) = data.split();
            let sent = input.clone();
            let feed = async move {
                writer.write_all(&sent).await.unwrap();
                writer.shutdown().await.unwrap();
            };
            let (_, back, error) = tokio::join!(feed, read_all(reader), read_all(error));
            assert_eq!(back.len(), input.len(), "connection {n}");
            assert_eq!(fnv(&back), fnv(&input), "connection {n}: the bytes differ");
            assert!(error.is_empty(), "connection {n}: {error:?}");
        });
    }
    while let Some(result) = timeout(WAIT, tasks.join_next()).await.unwrap() {
        result.unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let expected: Vec<(String, u16)> = (0..5).map(|n| (n.to_string(), echo)).collect();
    assert_eq!(seen, expected, "one requestid per connection, from 0");
}

async fn port_forward_failure_comes_on_the_error_stream(transport: Transport) {
    let (addr, _) = start_server().await;
    // A port nothing listens on (bound, then released).
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let session = port_forward(addr, transport).await;
    let (mut data, error) = timeout(WAIT, session.forward(closed))
        .await
        .unwrap()
        .unwrap();
    let message = String::from_utf8(read_all(error).await).unwrap();
    assert!(
        message.starts_with(&format!("error forwarding port {closed}")),
        "{message}"
    );
    let mut buf = Vec::new();
    let read = timeout(WAIT, data.read_to_end(&mut buf)).await.unwrap();
    assert!(read.is_err(), "the data stream is reset: {read:?}");

    // The session goes on: the next connection works.
    let echo = start_echo().await;
    let (mut data, _) = timeout(WAIT, session.forward(echo)).await.unwrap().unwrap();
    data.write_all(b"ping").await.unwrap();
    data.shutdown().await.unwrap();
    assert_eq!(read_all(data).await, b"ping");
}
