//! The real `kubectl` (v1.32, /usr/bin/kubectl) against a fake API server
//! built on `spdy_k8s`: `kubectl exec` and `kubectl port-forward` over the
//! SPDY/3.1 upgrade (kubectl's WebSocket attempts switched off with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` and
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, or refused so that it falls
//! back), and over kubectl's default paths too: exec over a
//! `v5.channel.k8s.io` WebSocket (`k8s::exec_websocket`), port-forward with
//! SPDY/3.1 inside WebSocket binary messages (`k8s::port_forward_websocket`).
//! Also: large parallel transfers checked by hash, and kubectl killed
//! mid-transfer (the server ends that session and goes on). Everything on
//! 127.0.0.1.
//!
//! Each test fails, saying so, when kubectl (or the `script` or `tar` it
//! needs) is not installed: it is not skipped silently.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy_k8s::{self as k8s, ExecSession, ForwardedStream, PortForwardSession};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::time::timeout;

const KUBECTL: &str = "/usr/bin/kubectl";
const WAIT: Duration = Duration::from_secs(60);

/// Fails the test, saying what to install, when a program it runs is
/// missing: a test that passes without running anything would hide that
/// kubectl was never exercised (issue 12).
fn require(programs: &[&str], why: &str) {
    if !programs.iter().any(|p| Path::new(p).exists()) {
        panic!(
            "{} not found: {why}. Install it, or leave this file out with \
             `cargo test -p spdy-k8s --lib --test k8s_client`",
            programs.join(" or ")
        );
    }
}

/// kubectl 1.32 at [`KUBECTL`], which every test here runs.
fn require_kubectl() {
    require(&[KUBECTL], "these tests run the real kubectl (v1.32)");
}

// ===== the fake API server =====

/// What the server side has going on, for the tests that check it ends
/// sessions whose client went away.
#[derive(Debug, Default)]
struct Stats {
    /// Exec and port-forward sessions started.
    sessions_started: AtomicUsize,
    /// Exec and port-forward sessions whose server side is over (the exec
    /// finished, or the port-forward session's `next` gave `None` and every
    /// forwarded connection of it ended).
    sessions_ended: AtomicUsize,
    /// Forwarded connections still being copied.
    active_forwards: AtomicUsize,
    /// Serve exec and port-forward over a WebSocket too (else that
    /// upgrade is refused with 400 and kubectl falls back to the SPDY
    /// upgrade).
    websocket: AtomicBool,
    /// Port-forward sessions started over a WebSocket.
    websocket_sessions: AtomicUsize,
    /// Exec sessions started over a WebSocket.
    websocket_exec_sessions: AtomicUsize,
}

async fn start_api_server() -> SocketAddr {
    start_api_server_with_stats(false).await.0
}

async fn start_api_server_with_stats(websocket: bool) -> (SocketAddr, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    stats.websocket.store(websocket, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_stats = stats.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let stats = server_stats.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let stats = stats.clone();
                    async move { Ok::<_, Infallible>(api(req, addr, stats)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let addr = match std::env::var_os("CAPTURE") {
        Some(dir) => capture_proxy(addr, PathBuf::from(dir)).await,
        None => addr,
    };
    (addr, stats)
}

/// Debugging aid: with `CAPTURE=DIR`, kubectl talks to the server through
/// a proxy that records each connection's bytes both ways (`N.c2s`,
/// `N.s2c`; strip the HTTP head and decode with `spdy frames 3.1`).
async fn capture_proxy(target: SocketAddr, dir: PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((client, _)) = listener.accept().await {
            n += 1;
            let server = TcpStream::connect(target).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut r, mut w, name) in [(cr, sw, format!("{n}.c2s")), (sr, cw, format!("{n}.s2c"))]
                .map(|(r, w, name)| {
                    (
                        Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(w) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                        name,
                    )
                })
            {
                let path = dir.join(name);
                tokio::spawn(async move {
                    let mut log = Vec::new();
                    let mut buf = vec![0; 65536];
                    loop {
                        let k = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        log.extend_from_slice(&buf[..k]);
                        std::fs::write(&path, &log).unwrap();
                        if w.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                    let _ = w.shutdown().await;
                });
            }
        }
    });
    addr
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn api(mut req: Request<Incoming>, addr: SocketAddr, stats: Arc<Stats>) -> Response<String> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), &segments[..]) {
        (Method::GET, ["version"]) => json(
            StatusCode::OK,
            r#"{"major":"1","minor":"32","gitVersion":"v1.32.4","platform":"linux/amd64"}"#.into(),
        ),
        (Method::GET, ["api"]) => json(
            StatusCode::OK,
            format!(
                r#"{{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{{"clientCIDR":"0.0.0.0/0","serverAddress":"{addr}"}}]}}"#
            ),
        ),
        (Method::GET, ["apis"]) => json(
            StatusCode::OK,
            r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#.into(),
        ),
        (Method::GET, ["api", "v1"]) => json(
            StatusCode::OK,
            r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[
                {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},
                {"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},
                {"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#
                .into(),
        ),
        (Method::GET, ["api", "v1", "namespaces", namespace, "pods", name]) => json(
            StatusCode::OK,
            format!(
                r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{namespace}","uid":"00000000-0000-0000-0000-000000000001"}},"spec":{{"containers":[{{"name":"main","image":"busybox"}}]}},"status":{{"phase":"Running","containerStatuses":[{{"name":"main","ready":true,"restartCount":0,"image":"busybox","imageID":"","state":{{"running":{{}}}}}}]}}}}"#
            ),
        ),
        // attach speaks the exec protocols; its "command" is the
        // container's main process (`cat` here).
        (_, ["api", "v1", "namespaces", _, "pods", _, "exec" | "attach"]) => {
            // A WebSocket request goes to `k8s::exec` when the server does
            // not serve that path: a 400, and kubectl falls back.
            let websocket = k8s::is_websocket_upgrade(&req) && stats.websocket.load(Ordering::SeqCst);
            let accepted = match websocket {
                true => k8s::exec_websocket(&mut req),
                false => k8s::exec(&mut req),
            };
            match accepted {
                Ok((response, upgrade)) => {
                    stats.sessions_started.fetch_add(1, Ordering::SeqCst);
                    if websocket {
                        stats.websocket_exec_sessions.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::spawn(async move {
                        if let Ok(session) = upgrade.session().await {
                            run_command(session).await;
                        }
                        stats.sessions_ended.fetch_add(1, Ordering::SeqCst);
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        (_, ["api", "v1", "namespaces", _, "pods", _, "portforward"])
            if k8s::is_websocket_upgrade(&req) && stats.websocket.load(Ordering::SeqCst) =>
        {
            match k8s::port_forward_websocket(&mut req) {
                Ok((response, upgrade)) => {
                    stats.sessions_started.fetch_add(1, Ordering::SeqCst);
                    stats.websocket_sessions.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        if let Ok(session) = upgrade.session().await {
                            serve_port_forward(session, &stats).await;
                        }
                        stats.sessions_ended.fetch_add(1, Ordering::SeqCst);
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        (_, ["api", "v1", "namespaces", _, "pods", _, "portforward"]) => {
            match k8s::port_forward(&mut req) {
                Ok((response, session)) => {
                    stats.sessions_started.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        serve_port_forward(session, &stats).await;
                        stats.sessions_ended.fetch_add(1, Ordering::SeqCst);
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#
                .into(),
        ),
    }
}

/// Runs the exec'd command locally, wired to the session's streams.
async fn run_command(mut session: ExecSession) {
    let mut command = session.request.command.clone();
    if command.is_empty() {
        // attach: the container's main process.
        command = vec!["cat".to_owned()];
    }
    if session.request.tty {
        // No terminal here: report the first size kubectl sends instead.
        if let (Some(resize), Some(stdout)) = (session.resize.as_mut(), session.stdout.as_mut()) {
            if let Ok(Some((width, height))) = timeout(WAIT, resize.next()).await {
                let line = format!("size {width}x{height}\n");
                let _ = stdout.write_all(line.as_bytes()).await;
            }
        }
        let _ = session.finish(0).await;
        return;
    }
    let pipe = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let spawned = Command::new(&command[0])
        .args(&command[1..])
        .stdin(pipe(session.stdin.is_some()))
        .stdout(pipe(session.stdout.is_some()))
        .stderr(pipe(session.stderr.is_some()))
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = session.fail("InternalError", &e.to_string()).await;
            return;
        }
    };
    let stdin = match (session.stdin.take(), child.stdin.take()) {
        (Some(mut stream), Some(mut pipe)) => Some(tokio::spawn(async move {
            let copied = tokio::io::copy(&mut stream, &mut pipe).await;
            eprintln!("[server] stdin: {copied:?}");
        })),
        _ => None,
    };
    let mut stdout = session.stdout.take();
    let mut stderr = session.stderr.take();
    // The pipes are dropped once their copy ends (the client may be gone):
    // a command still writing then gets EPIPE instead of blocking forever.
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let copy_out = async {
        if let (Some(mut pipe), Some(stream)) = (out_pipe, stdout.as_mut()) {
            let _ = tokio::io::copy(&mut pipe, stream).await;
        }
    };
    let copy_err = async {
        if let (Some(mut pipe), Some(stream)) = (err_pipe, stderr.as_mut()) {
            let _ = tokio::io::copy(&mut pipe, stream).await;
        }
    };
    tokio::join!(copy_out, copy_err);
    let status = child.wait().await;
    if let Some(task) = stdin {
        task.abort();
    }
    session.stdout = stdout;
    session.stderr = stderr;
    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
    eprintln!(
        "[server] {command:?} ({:?}) exited with {code}",
        session.protocol
    );
    let _ = session.finish(code).await;
}

/// Forwards the session's connections until it and they are over.
async fn serve_port_forward(mut session: PortForwardSession, stats: &Arc<Stats>) {
    let mut forwards = tokio::task::JoinSet::new();
    while let Some(stream) = session.next().await {
        stats.active_forwards.fetch_add(1, Ordering::SeqCst);
        let stats = stats.clone();
        forwards.spawn(async move {
            forward(stream).await;
            stats.active_forwards.fetch_sub(1, Ordering::SeqCst);
        });
    }
    while forwards.join_next().await.is_some() {}
}

/// Forwards one connection to the port on 127.0.0.1.
async fn forward(mut stream: ForwardedStream) {
    match TcpStream::connect(("127.0.0.1", stream.port)).await {
        Ok(mut tcp) => {
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream.data).await;
        }
        Err(e) => {
            let message = format!("error forwarding port {}: {e}", stream.port);
            let _ = stream.error.write_all(message.as_bytes()).await;
        }
    }
    let _ = stream.error.shutdown().await;
}

// ===== kubectl =====

/// A kubeconfig pointing at `addr`, in a fresh folder (also kubectl's
/// HOME, so its cache stays there).
fn kube_home(addr: SocketAddr) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spdy-kubectl-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: default\n    user: fake\n\
         current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
    );
    std::fs::write(dir.join("config"), config).unwrap();
    dir
}

fn kubectl(home: &Path, args: &[&str]) -> Command {
    let mut command = kubectl_with_defaults(home, args);
    command
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    command
}

/// kubectl with its own defaults (WebSocket first, for exec and
/// port-forward, then the SPDY upgrade when that is refused).
fn kubectl_with_defaults(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(KUBECTL);
    command
        .args(args)
        .env("HOME", home)
        .env("KUBECONFIG", home.join("config"))
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .kill_on_drop(true);
    command
}

/// Runs kubectl to its end with `input` on stdin.
async fn run(home: &Path, args: &[&str], input: &[u8]) -> Output {
    run_command_line(kubectl(home, args), args, input).await
}

async fn run_command_line(mut command: Command, args: &[&str], input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    });
    let output = timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {WAIT:?}"))
        .unwrap();
    timeout(WAIT, writer).await.unwrap().unwrap();
    output
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(2000)]),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ===== exec =====

/// How kubectl reaches the server for exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecPath {
    /// kubectl's defaults against a server that serves exec over a
    /// WebSocket (`v5.channel.k8s.io`): no SPDY at all.
    WebSocket,
    /// kubectl's defaults against a server that refuses the WebSocket
    /// (400): kubectl falls back to the SPDY/3.1 upgrade.
    Fallback,
    /// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`: the SPDY/3.1 upgrade
    /// directly.
    Spdy,
}

/// Runs the test `$name(ExecPath)` once per path.
macro_rules! every_exec_path {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::ExecPath;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn websocket() {
                super::$name(ExecPath::WebSocket).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn falls_back_to_spdy() {
                super::$name(ExecPath::Fallback).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn spdy() {
                super::$name(ExecPath::Spdy).await
            }
        }
    )*};
}

every_exec_path!(
    exec_echo,
    exec_stdin_through_cat,
    exec_exit_code_and_stderr,
    exec_kubectl_killed_mid_transfer,
    exec_tty_sends_the_terminal_size,
    attach_reaches_the_main_process,
    cp_both_ways,
);

/// The server for `path`, and a kubectl home pointing at it.
async fn exec_server(path: ExecPath) -> (PathBuf, Arc<Stats>) {
    let (addr, stats) = start_api_server_with_stats(path == ExecPath::WebSocket).await;
    (kube_home(addr), stats)
}

/// kubectl for `path`.
fn kubectl_for(path: ExecPath, home: &Path, args: &[&str]) -> Command {
    match path {
        ExecPath::Spdy => kubectl(home, args),
        ExecPath::WebSocket | ExecPath::Fallback => kubectl_with_defaults(home, args),
    }
}

/// Runs kubectl for `path` to its end with `input` on stdin, and checks
/// that each command it ran took that path.
async fn run_exec(
    path: ExecPath,
    home: &Path,
    stats: &Stats,
    args: &[&str],
    input: &[u8],
) -> Output {
    let count = || {
        (
            stats.sessions_started.load(Ordering::SeqCst),
            stats.websocket_exec_sessions.load(Ordering::SeqCst),
        )
    };
    let before = count();
    let output = run_command_line(kubectl_for(path, home, args), args, input).await;
    let after = count();
    let (sessions, over_websocket) = (after.0 - before.0, after.1 - before.1);
    // Each exec kubectl ran (`cp` runs two) took the path's transport.
    assert!(
        sessions >= 1,
        "no exec session ({path:?}): {}",
        show(&output)
    );
    let expected = if path == ExecPath::WebSocket {
        sessions
    } else {
        0
    };
    assert_eq!(over_websocket, expected, "exec over a WebSocket ({path:?})");
    output
}

async fn exec_echo(path: ExecPath) {
    require_kubectl();
    let (home, stats) = exec_server(path).await;
    let args = ["exec", "pod1", "--", "echo", "hello"];
    let output = run_exec(path, &home, &stats, &args, b"").await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(output.stdout, b"hello\n", "{}", show(&output));
}

async fn exec_stdin_through_cat(path: ExecPath) {
    require_kubectl();
    let (home, stats) = exec_server(path).await;
    // 8 MiB of a pattern that does not repeat at any small period.
    let input: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let args = ["exec", "-i", "pod1", "--", "cat"];
    let output = run_exec(path, &home, &stats, &args, &input).await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(
        output.stdout.len(),
        input.len(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout == input, "the bytes differ");
    // stdin's end reaches the command (cat ends) also when the command
    // writes nothing: the stdin stream's close on its own.
    let args = ["exec", "-i", "pod1", "--", "sh", "-c", "wc -c; exit 4"];
    let output = run_exec(path, &home, &stats, &args, &input[..100_000]).await;
    assert_eq!(output.status.code(), Some(4), "{}", show(&output));
    assert_eq!(output.stdout, b"100000\n", "{}", show(&output));
}

async fn exec_exit_code_and_stderr(path: ExecPath) {
    require_kubectl();
    let (home, stats) = exec_server(path).await;
    let args = [
        "exec",
        "pod1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ];
    let output = run_exec(path, &home, &stats, &args, b"").await;
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    assert_eq!(output.stdout, b"out\n", "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("err\n"), "{}", show(&output));
}

// ===== port-forward =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_echo_server() {
    port_forward(false, false, 1 << 20).await;
}

/// With its defaults kubectl first asks for SPDY inside a WebSocket; the
/// server refuses that upgrade (400) and kubectl falls back to SPDY/3.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_falls_back_from_websocket() {
    port_forward(true, false, 1 << 20).await;
}

/// kubectl's default port-forward path: SPDY/3.1 inside WebSocket binary
/// messages (`SPDY/3.1+portforward.k8s.io`), served by
/// `k8s::port_forward_websocket`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_over_websocket() {
    port_forward(true, true, 10 << 20).await;
}

/// Ten connections in parallel, 10 MiB each way, over the SPDY upgrade;
/// what comes back is checked by its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_ten_connections_of_10_mib() {
    port_forward(false, true, 10 << 20).await;
}

/// The service in the "pod": an echo server on 127.0.0.1; its port.
async fn start_echo_server() -> u16 {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    echo_port
}

/// Starts `kubectl port-forward` to `remote_port` of pod1; the running
/// kubectl and its local address.
async fn start_port_forward(
    home: &Path,
    remote_port: u16,
    defaults: bool,
) -> (tokio::process::Child, SocketAddr) {
    let remote = format!(":{remote_port}");
    let args = ["port-forward", "--address", "127.0.0.1", "pod1", &remote];
    let mut child = if defaults {
        kubectl_with_defaults(home, &args)
    } else {
        kubectl(home, &args)
    }
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run kubectl");
    let mut stderr = child.stderr.take().unwrap();
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(WAIT, lines.next_line())
        .await
        .expect("kubectl port-forward printed nothing in time")
        .unwrap();
    let Some(line) = line else {
        let _ = child.kill().await;
        panic!(
            "kubectl port-forward ended: {}",
            timeout(WAIT, stderr_text).await.unwrap().unwrap()
        );
    };
    // "Forwarding from 127.0.0.1:NNNN -> PORT"
    let local: SocketAddr = line
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.split(" -> ").next())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    assert!(line.ends_with(&format!("-> {remote_port}")), "{line}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, local)
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Chunk `k` (64 KiB) of connection `n`'s data: a pattern that does not
/// repeat at any small period, different for each connection.
fn chunk(n: u32, k: u32) -> Vec<u8> {
    (0..1u32 << 16)
        .map(|i| {
            ((k << 16 | i).wrapping_add(n.wrapping_mul(0x9e37_79b9))).wrapping_mul(2_654_435_761)
                >> 11
        })
        .map(|x| x as u8)
        .collect()
}

/// Sends `size` bytes (a multiple of 64 KiB) through the echo server at
/// the end of `local` and checks the hash of what comes back.
async fn roundtrip(local: SocketAddr, n: u32, size: usize) {
    let chunks = (size >> 16) as u32;
    let tcp = TcpStream::connect(local).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Fnv::new();
        for k in 0..chunks {
            let data = chunk(n, k);
            hash.update(&data);
            w.write_all(&data).await.unwrap();
        }
        (w, hash.0)
    });
    let mut hash = Fnv::new();
    let mut buf = vec![0; 1 << 16];
    let mut received = 0;
    while received < size {
        let k = match r.read(&mut buf).await {
            Ok(0) => panic!("connection {n}: ended after {received} of {size} bytes"),
            Ok(k) => k,
            Err(e) => panic!("connection {n}: {e} after {received} of {size} bytes"),
        };
        hash.update(&buf[..k]);
        received += k;
    }
    let (_w, sent) = writer.await.unwrap();
    assert_eq!(received, size, "connection {n}: more bytes than sent");
    assert_eq!(hash.0, sent, "connection {n}: the bytes differ");
}

/// Ten forwarded connections of `size` bytes in parallel, then one more;
/// with kubectl's `defaults` (WebSocket first) or the SPDY upgrade
/// directly, against a server that serves the `websocket` path or not.
async fn port_forward(defaults: bool, websocket: bool, size: usize) {
    require_kubectl();
    let echo_port = start_echo_server().await;
    let (addr, stats) = start_api_server_with_stats(websocket).await;
    let home = kube_home(addr);
    let (mut child, local) = start_port_forward(&home, echo_port, defaults).await;

    // Ten connections in parallel, then one more after.
    let parallel = async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=10 {
            tasks.spawn(roundtrip(local, n, size));
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    };
    timeout(WAIT, parallel)
        .await
        .expect("the forwarded connections did not finish in time");
    timeout(WAIT, roundtrip(local, 11, size))
        .await
        .expect("the eleventh connection did not finish in time");

    let _ = child.kill().await;
    let _ = timeout(WAIT, child.wait()).await;
    let over_websocket = stats.websocket_sessions.load(Ordering::SeqCst);
    assert_eq!(over_websocket, (defaults && websocket) as usize);
    eventually("the session ends", || {
        stats.sessions_ended.load(Ordering::SeqCst) == stats.sessions_started.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(stats.active_forwards.load(Ordering::SeqCst), 0);
}

/// Waits (at most `WAIT`) for `condition`.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

/// kubectl killed in the middle of a forwarded transfer: the server ends
/// that session and its forwarded connections, and serves the next kubectl
/// commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_kubectl_killed_mid_transfer() {
    killed_mid_port_forward(false).await;
}

/// The same over kubectl's default path, SPDY inside a WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_over_websocket_kubectl_killed_mid_transfer() {
    killed_mid_port_forward(true).await;
}

async fn killed_mid_port_forward(websocket: bool) {
    require_kubectl();
    let echo_port = start_echo_server().await;
    let (addr, stats) = start_api_server_with_stats(websocket).await;
    let home = kube_home(addr);
    let (mut child, local) = start_port_forward(&home, echo_port, websocket).await;

    // Two connections sending without end, and reading without end (a
    // stalled reader would stall the whole session: with no flow control,
    // the server pauses its input); kubectl dies once 2 MiB came back on
    // each.
    let mut connections = Vec::new();
    for n in 0..2u32 {
        let tcp = TcpStream::connect(local).await.unwrap();
        let (mut r, mut w) = tcp.into_split();
        let writer = tokio::spawn(async move {
            let mut k = 0;
            while w.write_all(&chunk(n, k)).await.is_ok() {
                k += 1;
            }
        });
        let (started, mut wait_started) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut started = Some(started);
            let mut buf = vec![0; 1 << 16];
            let mut received = 0;
            while let Ok(k @ 1..) = r.read(&mut buf).await {
                received += k;
                if received >= 2 << 20 {
                    if let Some(started) = started.take() {
                        let _ = started.send(());
                    }
                }
            }
        });
        timeout(WAIT, &mut wait_started)
            .await
            .expect("the transfer did not start in time")
            .unwrap_or_else(|_| panic!("connection {n} ended early"));
        connections.push((reader, writer));
    }
    assert_eq!(stats.active_forwards.load(Ordering::SeqCst), 2);
    child.start_kill().unwrap();
    timeout(WAIT, child.wait()).await.unwrap().unwrap();

    // The server side ends the session and both forwarded connections...
    eventually("the forwarded connections end", || {
        stats.active_forwards.load(Ordering::SeqCst) == 0
    })
    .await;
    eventually("the port-forward session ends", || {
        stats.sessions_ended.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...our local clients see their connections end (kubectl is gone)...
    for (reader, writer) in connections {
        timeout(WAIT, reader)
            .await
            .expect("a local connection did not end")
            .unwrap();
        timeout(WAIT, writer).await.unwrap().unwrap();
    }

    // ...and the server goes on: an exec, and a new port-forward.
    let output = run(&home, &["exec", "pod1", "--", "echo", "still here"], b"").await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(output.stdout, b"still here\n", "{}", show(&output));
    let (mut child, local) = start_port_forward(&home, echo_port, websocket).await;
    timeout(WAIT, roundtrip(local, 3, 1 << 20))
        .await
        .expect("the new port-forward did not finish in time");
    let _ = child.kill().await;
    let _ = timeout(WAIT, child.wait()).await;
    eventually("every session ends", || {
        stats.sessions_ended.load(Ordering::SeqCst) == stats.sessions_started.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(stats.sessions_started.load(Ordering::SeqCst), 3);
    let over_websocket = stats.websocket_sessions.load(Ordering::SeqCst);
    assert_eq!(over_websocket, if websocket { 2 } else { 0 });
}

/// `kubectl exec -it` in a terminal (a pseudo-terminal from `script`, set
/// to 123 columns and 45 rows): kubectl sends the size on the resize
/// stream, which the server decodes.
async fn exec_tty_sends_the_terminal_size(path: ExecPath) {
    require_kubectl();
    require(&["/usr/bin/script"], "script gives kubectl a terminal");
    let (home, stats) = exec_server(path).await;
    let kubectl = kubectl_for(path, &home, &[]);
    let mut command = Command::new("/usr/bin/script");
    for (name, value) in kubectl.as_std().get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let line = format!("stty cols 123 rows 45 && {KUBECTL} exec -it pod1 -- sizes");
    let args = ["-qec", &line, "/dev/null"];
    command.args(args).kill_on_drop(true);
    let before = stats.websocket_exec_sessions.load(Ordering::SeqCst);
    let output = run_command_line(command, &args, b"").await;
    assert!(output.status.success(), "{}", show(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("size 123x45"), "{}", show(&output));
    let over_websocket = stats.websocket_exec_sessions.load(Ordering::SeqCst) - before;
    assert_eq!(over_websocket, (path == ExecPath::WebSocket) as usize);
}

/// `kubectl attach -i` speaks the exec protocols to `.../attach`; the
/// fake server's "main process" is `cat`.
async fn attach_reaches_the_main_process(path: ExecPath) {
    require_kubectl();
    let (home, stats) = exec_server(path).await;
    let args = ["attach", "-i", "pod1"];
    let output = run_exec(path, &home, &stats, &args, b"attached\n").await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(output.stdout, b"attached\n", "{}", show(&output));
}

/// `kubectl cp` both ways: tar over exec's stdin and stdout (the "pod"'s
/// file system is this machine's, in a temporary folder).
async fn cp_both_ways(path: ExecPath) {
    require_kubectl();
    require(
        &["/usr/bin/tar", "/bin/tar"],
        "kubectl cp runs tar in the \"pod\"",
    );
    let (home, stats) = exec_server(path).await;
    let local = home.join("local");
    let remote = home.join("remote");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i * 7 + i / 1013) as u8)
        .collect();
    std::fs::write(local.join("up.bin"), &data).unwrap();
    let up_from = local.join("up.bin");
    let up_to = format!("pod1:{}", remote.join("copied.bin").display());
    let args = ["cp", up_from.to_str().unwrap(), &up_to];
    let output = run_exec(path, &home, &stats, &args, b"").await;
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        std::fs::read(remote.join("copied.bin")).unwrap() == data,
        "upload differs"
    );
    let down_from = format!("pod1:{}", remote.join("copied.bin").display());
    let down_to = local.join("down.bin");
    let args = ["cp", &down_from, down_to.to_str().unwrap()];
    let output = run_exec(path, &home, &stats, &args, b"").await;
    assert!(output.status.success(), "{}", show(&output));
    assert!(std::fs::read(&down_to).unwrap() == data, "download differs");
}

/// kubectl killed in the middle of a large exec stdin transfer (`cat`
/// echoing it back): the server ends the session (the command too) and
/// serves the next kubectl command.
async fn exec_kubectl_killed_mid_transfer(path: ExecPath) {
    require_kubectl();
    let (home, stats) = exec_server(path).await;
    let args = ["exec", "-i", "pod1", "--", "cat"];
    let mut child = kubectl_for(path, &home, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let mut k = 0;
        while stdin.write_all(&chunk(7, k)).await.is_ok() {
            k += 1;
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    timeout(WAIT, async {
        let mut buf = vec![0; 1 << 16];
        let mut received = 0;
        while received < 4 << 20 {
            let k = stdout.read(&mut buf).await.unwrap();
            assert!(k > 0, "kubectl's output ended early");
            received += k;
        }
    })
    .await
    .expect("the transfer did not start in time");
    assert_eq!(stats.sessions_ended.load(Ordering::SeqCst), 0);
    child.start_kill().unwrap();
    timeout(WAIT, child.wait()).await.unwrap().unwrap();
    drop(stdout);
    timeout(WAIT, writer).await.unwrap().unwrap();

    // The exec session ends (cat gets EOF or EPIPE, then the error stream's
    // report fails or lingers at most FINISH_LINGER)...
    eventually("the exec session ends", || {
        stats.sessions_ended.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...and the server goes on.
    let output = run_exec(path, &home, &stats, &args, b"next\n").await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(output.stdout, b"next\n", "{}", show(&output));
}

// ===== negotiation, without kubectl =====

#[tokio::test]
async fn exec_negotiation_refusals() {
    let addr = start_api_server().await;
    let ask = |headers: &'static [(&'static str, &'static str)]| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "POST /api/v1/namespaces/default/pods/p/exec?command=true&stdout=true HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before the head");
            head.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    };
    let no_upgrade = ask(&[("X-Stream-Protocol-Version", "v4.channel.k8s.io")]).await;
    assert!(no_upgrade.starts_with("http/1.1 400"), "{no_upgrade}");
    let unknown = ask(&[
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v9.channel.k8s.io"),
    ])
    .await;
    assert!(unknown.starts_with("http/1.1 403"), "{unknown}");
    assert!(
        unknown.contains("x-accepted-stream-protocol-versions: v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"),
        "{unknown}"
    );
    let chosen = ask(&[
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
        ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
    ])
    .await;
    assert!(chosen.starts_with("http/1.1 101"), "{chosen}");
    assert!(
        chosen.contains("x-stream-protocol-version: v5.channel.k8s.io"),
        "{chosen}"
    );
    assert!(chosen.contains("upgrade: spdy/3.1"), "{chosen}");
}

#[tokio::test]
async fn websocket_negotiation() {
    let (addr, _stats) = start_api_server_with_stats(true).await;
    let ask = |resource: &'static str, protocol: &'static str| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/v1/namespaces/default/pods/p/{resource} HTTP/1.1\r\nHost: {addr}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before the head");
            head.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    };
    for (resource, protocol, other) in [
        (
            "portforward",
            "SPDY/3.1+portforward.k8s.io",
            "v5.channel.k8s.io",
        ),
        // Only v5 over a WebSocket: v4 cannot end stdin on its own.
        (
            "exec?command=true&stdout=true",
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
        ),
    ] {
        let refused = ask(resource, other).await;
        assert!(refused.starts_with("http/1.1 400"), "{refused}");
        let chosen = ask(resource, protocol).await;
        assert!(chosen.starts_with("http/1.1 101"), "{chosen}");
        // RFC 6455's example key and answer.
        assert!(
            chosen.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{chosen}"
        );
        let echoed = format!("sec-websocket-protocol: {}", protocol.to_ascii_lowercase());
        assert!(chosen.contains(&echoed), "{chosen}");
        assert!(chosen.contains("upgrade: websocket"), "{chosen}");
    }
}
