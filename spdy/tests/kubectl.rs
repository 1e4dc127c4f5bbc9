//! The real `kubectl` (v1.32, /usr/bin/kubectl) against a fake API server
//! built on `spdy::k8s`: `kubectl exec` and `kubectl port-forward` over the
//! SPDY/3.1 upgrade (the WebSocket paths are switched off with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` and
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`). Everything on 127.0.0.1.
//!
//! Skipped (with a note) when kubectl is not installed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::k8s::{self, ExecSession, ForwardedStream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::time::timeout;

const KUBECTL: &str = "/usr/bin/kubectl";
const WAIT: Duration = Duration::from_secs(60);

fn kubectl_available() -> bool {
    if Path::new(KUBECTL).exists() {
        return true;
    }
    eprintln!("skipped: {KUBECTL} is not installed");
    false
}

// ===== the fake API server =====

async fn start_api_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    service_fn(move |req| async move { Ok::<_, Infallible>(api(req, addr)) });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    match std::env::var_os("CAPTURE") {
        Some(dir) => capture_proxy(addr, PathBuf::from(dir)).await,
        None => addr,
    }
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

fn api(mut req: Request<Incoming>, addr: SocketAddr) -> Response<String> {
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
        (_, ["api", "v1", "namespaces", _, "pods", _, "exec"]) => match k8s::exec(&mut req) {
            Ok((response, upgrade)) => {
                tokio::spawn(async move {
                    if let Ok(session) = upgrade.session().await {
                        run_command(session).await;
                    }
                });
                response
            }
            Err(refusal) => refusal,
        },
        (_, ["api", "v1", "namespaces", _, "pods", _, "portforward"]) => {
            match k8s::port_forward(&mut req) {
                Ok((response, mut session)) => {
                    tokio::spawn(async move {
                        while let Some(stream) = session.next().await {
                            tokio::spawn(forward(stream));
                        }
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
    let command = session.request.command.clone();
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
    let copy_out = async {
        if let (Some(pipe), Some(stream)) = (child.stdout.as_mut(), stdout.as_mut()) {
            let _ = tokio::io::copy(pipe, stream).await;
        }
    };
    let copy_err = async {
        if let (Some(pipe), Some(stream)) = (child.stderr.as_mut(), stderr.as_mut()) {
            let _ = tokio::io::copy(pipe, stream).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_echo() {
    if !kubectl_available() {
        return;
    }
    let home = kube_home(start_api_server().await);
    let output = run(&home, &["exec", "pod1", "--", "echo", "hello"], b"").await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(output.stdout, b"hello\n", "{}", show(&output));
}

/// With its defaults kubectl first asks for a WebSocket; the server
/// refuses that upgrade (400) and kubectl falls back to SPDY/3.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_falls_back_from_websocket() {
    if !kubectl_available() {
        return;
    }
    let home = kube_home(start_api_server().await);
    let args = ["exec", "-i", "pod1", "--", "sh", "-c", "cat; exit 4"];
    let output = run_command_line(kubectl_with_defaults(&home, &args), &args, b"piped\n").await;
    assert_eq!(output.status.code(), Some(4), "{}", show(&output));
    assert_eq!(output.stdout, b"piped\n", "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stdin_through_cat() {
    if !kubectl_available() {
        return;
    }
    let home = kube_home(start_api_server().await);
    // 8 MiB of a pattern that does not repeat at any small period.
    let input: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let output = run(&home, &["exec", "-i", "pod1", "--", "cat"], &input).await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(
        output.stdout.len(),
        input.len(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout == input, "the bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_code_and_stderr() {
    if !kubectl_available() {
        return;
    }
    let home = kube_home(start_api_server().await);
    let output = run(
        &home,
        &[
            "exec",
            "pod1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    assert_eq!(output.stdout, b"out\n", "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("err\n"), "{}", show(&output));
}

// ===== port-forward =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_echo_server() {
    port_forward(false).await;
}

/// With its defaults kubectl first asks for SPDY inside a WebSocket; the
/// server refuses that upgrade (400) and kubectl falls back to SPDY/3.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_falls_back_from_websocket() {
    port_forward(true).await;
}

async fn port_forward(defaults: bool) {
    if !kubectl_available() {
        return;
    }
    // The service in the "pod": an echo server.
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
    let home = kube_home(start_api_server().await);
    let remote = format!(":{echo_port}");
    let args = ["port-forward", "--address", "127.0.0.1", "pod1", &remote];
    let mut child = if defaults {
        kubectl_with_defaults(&home, &args)
    } else {
        kubectl(&home, &args)
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
    assert!(line.ends_with(&format!("-> {echo_port}")), "{line}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Ten connections in parallel, 1 MiB each, then one more after.
    let roundtrip = |n: u32| async move {
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_add(n).wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let tcp = TcpStream::connect(local).await.unwrap();
        let (mut r, mut w) = tcp.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w
        });
        let mut back = vec![0; data.len()];
        if let Err(e) = r.read_exact(&mut back).await {
            panic!("connection {n}: {e}");
        }
        let _w = writer.await.unwrap();
        assert!(back == data, "connection {n}: the bytes differ");
    };
    let parallel = async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=10 {
            tasks.spawn(roundtrip(n));
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    };
    timeout(WAIT, parallel)
        .await
        .expect("the forwarded connections did not finish in time");
    timeout(WAIT, roundtrip(11))
        .await
        .expect("the fourth connection did not finish in time");

    let _ = child.kill().await;
    let _ = timeout(WAIT, child.wait()).await;
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
        unknown.contains("x-accepted-stream-protocol-versions: v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"),
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
        chosen.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{chosen}"
    );
    assert!(chosen.contains("upgrade: spdy/3.1"), "{chosen}");
}
