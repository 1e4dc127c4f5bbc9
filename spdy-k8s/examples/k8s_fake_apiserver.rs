//! A tiny fake Kubernetes API server for the real `kubectl`: it answers
//! kubectl's discovery (`/version`, `/api`, `/apis`, `/api/v1`) and the GET
//! of any pod (one container, `main`, Running), runs `kubectl exec`
//! commands as local processes (the argv from the `command` parameters,
//! wired to stdin, stdout and stderr, the exit code reported with
//! `ExecSession::finish`) and forwards `kubectl port-forward` ports to
//! local TCP services on 127.0.0.1. Port-forward goes over kubectl's
//! default path, SPDY/3.1 inside a WebSocket (`k8s::port_forward_websocket`),
//! or the SPDY/3.1 upgrade (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`); exec
//! over kubectl's default path too, a `v5.channel.k8s.io` WebSocket
//! (`k8s::exec_websocket`), or the SPDY/3.1 upgrade
//! (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`).
//!
//! ```sh
//! cargo run -p spdy-k8s --example k8s_fake_apiserver -- 8001   # 0: any free port
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT`; then, in another
//! terminal:
//!
//! ```sh
//! kubectl --server http://127.0.0.1:8001 exec pod1 -- uname -a
//! echo hello | kubectl --server http://127.0.0.1:8001 exec -i pod1 -- tr a-z A-Z
//! echo hi | kubectl --server http://127.0.0.1:8001 attach -i pod1   # the main process is cat
//! kubectl --server http://127.0.0.1:8001 port-forward pod1 9090:22
//! ```
//!
//! It runs whatever command it is sent, as you: it listens on loopback only
//! and is a demonstration, not a service to expose. No TTY (`-t` runs the
//! command without one), no authentication.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy_k8s::{self as k8s, ExecSession, ForwardedStream};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a port: {port}"),
            )
        })?,
        None => 0,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(move |req| async move { Ok::<_, Infallible>(api(req, addr)) });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
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
    eprintln!("{} {}", req.method(), req.uri());
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
            // kubectl's default is a v5.channel.k8s.io WebSocket; with
            // KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, the SPDY/3.1 upgrade.
            // Both give the same ExecSession.
            let accepted = match k8s::is_websocket_upgrade(&req) {
                true => k8s::exec_websocket(&mut req),
                false => k8s::exec(&mut req),
            };
            match accepted {
                Ok((response, upgrade)) => {
                    tokio::spawn(async move {
                        match upgrade.session().await {
                            Ok(session) => run_command(session).await,
                            Err(e) => eprintln!("exec: {e}"),
                        }
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
        // kubectl's default: SPDY/3.1 inside a WebSocket.
        (_, ["api", "v1", "namespaces", _, "pods", _, "portforward"])
            if k8s::is_websocket_upgrade(&req) =>
        {
            match k8s::port_forward_websocket(&mut req) {
                Ok((response, upgrade)) => {
                    tokio::spawn(async move {
                        match upgrade.session().await {
                            Ok(mut session) => {
                                while let Some(stream) = session.next().await {
                                    tokio::spawn(forward(stream));
                                }
                            }
                            Err(e) => eprintln!("port-forward: {e}"),
                        }
                    });
                    response
                }
                Err(refusal) => refusal,
            }
        }
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
    let mut command = session.request.command.clone();
    if command.is_empty() {
        // `kubectl attach`: the "container's main process" is `cat`.
        command = vec!["cat".to_owned()];
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
            let message = format!("cannot run {:?}: {e}", command[0]);
            eprintln!("exec: {message}");
            let _ = session.fail("InternalError", &message).await;
            return;
        }
    };
    let stdin = match (session.stdin.take(), child.stdin.take()) {
        (Some(mut stream), Some(mut pipe)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stream, &mut pipe).await;
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
    eprintln!("exec: {command:?} exited with {code}");
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
            eprintln!("port-forward: {message}");
            let _ = stream.error.write_all(message.as_bytes()).await;
        }
    }
    let _ = stream.error.shutdown().await;
}
