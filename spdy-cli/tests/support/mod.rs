//! What the tunnel tests share: `spdy proxy` and `spdy origin` started as
//! real processes, and public HTTP/1.1 requests to the proxy.

// (Each test file uses a part of these.)
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout;

/// The longest any one step may take.
pub const LIMIT: Duration = Duration::from_secs(30);
pub const TOKEN: &str = "test-secret";

pub fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + seed * 17 + i / 509) % 256) as u8)
        .collect()
}

/// A running `spdy` process (killed when dropped), its standard error
/// line by line.
pub struct Process {
    pub child: Child,
    pub stdout: Vec<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Process {
    /// Starts `spdy ARGS` and reads `stdout_lines` lines of its standard
    /// output.
    pub async fn start(args: &[&str], env: &[(&str, &str)], stdout_lines: usize) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spdy"))
            .args(args)
            .env_remove("SPDY_TUNNEL_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn spdy");
        let (lines, stderr) = mpsc::unbounded_channel();
        let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        for _ in 0..stdout_lines {
            let line = timeout(LIMIT, out.next_line())
                .await
                .expect("no output in time")
                .unwrap()
                .unwrap_or_else(|| panic!("spdy {args:?} ended early"));
            stdout.push(line);
        }
        Process {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Waits for a line of standard error containing `needle` (after those
    /// already waited for).
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let found = timeout(LIMIT, async {
            while let Some(line) = self.stderr.recv().await {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no line with {needle:?}; saw {:#?}", self.seen),
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        // The shell's `kill` (a `kill` program may not be installed).
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its code.
    pub async fn exit_code(mut self) -> Option<i32> {
        let status = timeout(LIMIT, self.child.wait()).await;
        status.expect("still running").unwrap().code()
    }
}

/// A proxy (with the test token) on free ports: the process, its public
/// address and its tunnel address.
pub async fn proxy(tunnels: &str) -> (Process, String, String) {
    proxy_with(tunnels, &[]).await
}

pub async fn proxy_with(tunnels: &str, extra: &[&str]) -> (Process, String, String) {
    let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--tunnels", tunnels];
    args.extend_from_slice(extra);
    let process = Process::start(&args, &[("SPDY_TUNNEL_TOKEN", TOKEN)], 2).await;
    let public = process.stdout[0]
        .strip_prefix("listening on http://")
        .or_else(|| process.stdout[0].strip_prefix("listening on https://"))
        .unwrap()
        .to_owned();
    let tunnel = process.stdout[1]
        .strip_prefix("tunnels on http://")
        .or_else(|| process.stdout[1].strip_prefix("tunnels on https://"))
        .unwrap()
        .to_owned();
    (process, public, tunnel)
}

pub async fn origin(tunnel: &str, name: &str, token: &str, backend: &[&str]) -> Process {
    let mut args = vec![
        "origin", "--proxy", tunnel, "--name", name, "--token", token,
    ];
    args.extend_from_slice(backend);
    Process::start(&args, &[], 0).await
}

/// One HTTP/1.1 request to the proxy: status, headers and whole body.
pub async fn fetch(
    public: &str,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let tcp = TcpStream::connect(public).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = timeout(LIMIT, sender.send_request(request))
        .await
        .expect("no response in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = timeout(LIMIT, body.collect())
        .await
        .expect("no body in time")
        .unwrap()
        .to_bytes();
    (parts.status, parts.headers, body.to_vec())
}

/// A GET to the proxy whose body is left to the caller to read (or not):
/// the response, with the client side of its connection (dropping the
/// sender and aborting the task closes it).
pub async fn start_get(
    public: &str,
    host: &str,
    path: &str,
) -> (
    Response<Incoming>,
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    start_get_from(public, None, host, path).await
}

/// [`start_get`] from a given local address (127.0.0.2, 127.0.0.3...:
/// Linux routes all of 127/8 to loopback, so each is a client address of
/// its own to the proxy).
pub async fn start_get_from(
    public: &str,
    from: Option<IpAddr>,
    host: &str,
    path: &str,
) -> (
    Response<Incoming>,
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = connect_from(public, from).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = timeout(LIMIT, sender.send_request(request))
        .await
        .expect("no response in time")
        .unwrap();
    (response, sender, connection)
}

pub fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A TCP connection to `to`, from `from` if given.
pub async fn connect_from(to: &str, from: Option<IpAddr>) -> TcpStream {
    let to: std::net::SocketAddr = to.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(from) = from {
        socket.bind((from, 0).into()).unwrap();
    }
    timeout(LIMIT, socket.connect(to))
        .await
        .expect("no connection in time")
        .unwrap()
}

/// The resident memory of process `pid`, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// What the local HTTP/1.1 server of the forwarding tests saw.
#[derive(Default)]
pub struct Seen {
    /// An endless body stopped being taken.
    pub abandoned: Notify,
    /// A request for `/upload` arrived (its body follows).
    pub upload_started: Notify,
    /// A request body that broke before its end.
    pub body_failed: Notify,
    /// Connections accepted.
    pub connections: std::sync::atomic::AtomicUsize,
}

/// A local HTTP/1.1 server: `/echo` answers with the request's method,
/// path, Host, X-Forwarded-For and body length; `/endless` streams until
/// the reader goes away.
pub async fn local_server(seen: Arc<Seen>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(local_answer(req, seen).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

pub type LocalBody = http_body_util::Either<Full<Bytes>, Endless>;

/// A body fed by a channel, as long as the sender sends.
pub struct Endless(pub mpsc::Receiver<Bytes>);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(Frame::data(d))))
    }
}

async fn local_answer(req: Request<Incoming>, seen: Arc<Seen>) -> Response<LocalBody> {
    if req.uri().path() == "/upload" {
        seen.upload_started.notify_one();
    }
    if req.uri().path() == "/endless" {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![b'e'; 64 * 1024]);
            while tx.send(chunk.clone()).await.is_ok() {}
            // The body's receiver is gone: nobody reads any more.
            seen.abandoned.notify_one();
        });
        return Response::new(http_body_util::Either::Right(Endless(rx)));
    }
    let header = |name| {
        req.headers()
            .get(name)
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned()
    };
    let text = format!(
        "{} {} host={} xff={} forwarded={}",
        req.method(),
        req.uri(),
        header("host"),
        header("x-forwarded-for"),
        header("forwarded"),
    );
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            seen.body_failed.notify_one();
            Bytes::new()
        }
    };
    let mut response = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        format!("{text} body={}", body.len()),
    ))));
    // A header this hop names as its own: it must not reach the client.
    let headers = response.headers_mut();
    headers.insert("connection", "x-secret".parse().unwrap());
    headers.insert("x-secret", "s".parse().unwrap());
    response
}
