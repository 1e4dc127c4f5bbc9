//! An "exec" server, the kubelet's side of `kubectl exec`: an HTTP/1.1
//! server that upgrades `POST /exec?command=...` to SPDY/3.1, takes the
//! `error`, `stdin`, `stdout` and `stderr` streams by their `streamtype`
//! header, runs the command wired to them, and reports how it ended on the
//! error stream as a Kubernetes `Status` (the `v4.channel.k8s.io`
//! protocol).
//!
//! ```sh
//! cargo run -p spdy --example exec_server                  # 127.0.0.1:7070
//! cargo run -p spdy --example exec_server -- 127.0.0.1:0   # any free port
//! ```
//!
//! and, in another terminal, the client (`exec_client.rs`):
//!
//! ```sh
//! echo hello | cargo run -p spdy --example exec_client -- http://127.0.0.1:7070 tr a-z A-Z
//! ```
//!
//! It runs whatever command it is sent, as you: it listens on loopback only
//! and is a demonstration, not a service to expose.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::io::{StreamReader, StreamWriter};
use spdy::proto::header_block::HeaderBlock;
use spdy::{Handle, IncomingStream, RecvStream, RstStatus, SendStream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// The stream protocol spoken (Kubernetes' name for it).
const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client has to open its streams after the upgrade.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7070".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let service =
                service_fn(move |req| async move { Ok::<_, Infallible>(handle(req, peer)) });
            // `with_upgrades` lets the connection be taken over after the 101.
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
            {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// The HTTP/1.1 part: check the request, negotiate, upgrade.
fn handle(mut req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<String> {
    if req.uri().path() != "/exec" {
        return text(StatusCode::NOT_FOUND, "try /exec?command=...\n");
    }
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let command = query.all("command");
    if command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "no command given\n");
    }
    // The client offers protocol versions; no offer at all is the legacy
    // protocol, which this server does not speak either.
    let offered = req.headers().get_all("x-stream-protocol-version");
    if !offered.iter().any(|v| v.as_bytes() == PROTOCOL.as_bytes()) {
        let mut response = text(StatusCode::FORBIDDEN, "no stream protocol in common\n");
        response.headers_mut().insert(
            "x-accepted-stream-protocol-versions",
            HeaderValue::from_static(PROTOCOL),
        );
        return response;
    }
    let upgrade = match spdy::upgrade::accept(&mut req) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // `upgrade::default_config()`, without flow control, as kubectl
    // (spdystream) does none: see `spdy::upgrade`'s module doc.
    let (response, session) = upgrade
        .config(spdy::upgrade::default_config())
        .header(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL),
        )
        .spawn();
    eprintln!("{peer}: exec {command:?}");
    let expected = Expected {
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
    };
    tokio::spawn(async move {
        if let Err(e) = exec(session, command, expected).await {
            eprintln!("{peer}: {e}");
        }
    });
    response
}

/// Which streams the client said it opens (the error stream always).
#[derive(Debug, Clone, Copy)]
struct Expected {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

#[derive(Default)]
struct Streams {
    error: Option<SendStream>,
    stdin: Option<RecvStream>,
    stdout: Option<SendStream>,
    stderr: Option<SendStream>,
}

impl Streams {
    fn complete(&self, expected: Expected) -> bool {
        self.error.is_some()
            && (self.stdin.is_some() || !expected.stdin)
            && (self.stdout.is_some() || !expected.stdout)
            && (self.stderr.is_some() || !expected.stderr)
    }

    /// Takes one stream the client opened, by its `streamtype`. Streams
    /// it only writes were opened by the client with FIN.
    fn take(&mut self, stream: IncomingStream) -> Result<(), spdy::Error> {
        let kind = stream
            .headers
            .get("streamtype")
            .cloned()
            .unwrap_or_default();
        let reply = HeaderBlock::new();
        match &kind[..] {
            b"error" => self.error = Some(stream.reply(reply, false)?.0),
            // Our side of stdin stays open: client-go (kubectl) takes a FIN
            // there as "the command finished" and stops sending input.
            b"stdin" => self.stdin = Some(stream.reply(reply, false)?.1),
            b"stdout" => self.stdout = Some(stream.reply(reply, false)?.0),
            b"stderr" => self.stderr = Some(stream.reply(reply, false)?.0),
            // Terminal resizing: no terminal here; read and ignore.
            b"resize" => {
                let (_, mut recv) = stream.reply(reply, true)?;
                tokio::spawn(async move { while let Some(Ok(_)) = recv.data().await {} });
            }
            _ => stream.refuse(RstStatus::RefusedStream)?,
        }
        Ok(())
    }
}

/// The SPDY part: collect the streams, run the command, report.
async fn exec(
    session: Handle,
    command: Vec<String>,
    expected: Expected,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut streams = Streams::default();
    let collect = async {
        while !streams.complete(expected) {
            let Some(stream) = session.accept().await else {
                return Err("the client went away before opening its streams".into());
            };
            streams.take(stream)?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect)
        .await
        .map_err(|_| "timed out waiting for the client's streams")??;
    let mut error = streams.error.take().expect("complete");

    let spawned = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(if expected.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if expected.stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if expected.stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let status = failure(
                "InternalError",
                &format!("cannot run {:?}: {e}", command[0]),
                None,
            );
            for stream in [streams.stdout.as_mut(), streams.stderr.as_mut()]
                .into_iter()
                .flatten()
            {
                stream.finish()?;
            }
            error.write(Bytes::from(status)).await?;
            error.finish()?;
            return Ok(());
        }
    };

    // stdin: the client's stream into the command, closed at its FIN. The
    // command may exit without reading it all: the copy is then dropped,
    // which resets the stream.
    let stdin_copy = match (streams.stdin.take(), child.stdin.take()) {
        (Some(stream), Some(mut pipe)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut StreamReader::new(stream), &mut pipe).await;
        })),
        _ => None,
    };
    // stdout and stderr: the command's pipes onto the streams, then FIN.
    let stdout_copy = pipe_out(child.stdout.take(), streams.stdout.take());
    let stderr_copy = pipe_out(child.stderr.take(), streams.stderr.take());
    let (status, out, err) = tokio::join!(child.wait(), stdout_copy, stderr_copy);
    if let Some(task) = stdin_copy {
        task.abort();
    }
    let report = match status {
        Ok(status) if status.success() => r#"{"metadata":{},"status":"Success"}"#.to_owned(),
        Ok(status) => match status.code() {
            Some(code) => failure(
                "NonZeroExitCode",
                &format!("command terminated with non-zero exit code: {code}"),
                Some(code),
            ),
            None => failure("InternalError", &format!("command ended by {status}"), None),
        },
        Err(e) => failure("InternalError", &e.to_string(), None),
    };
    out?;
    err?;
    error.write(Bytes::from(report)).await?;
    error.finish()?;
    // Dropping the session handle sends GOAWAY; the connection closes once
    // the streams are done.
    Ok(())
}

/// Copies a child's output pipe to a stream and ends the stream.
async fn pipe_out<R>(pipe: Option<R>, stream: Option<SendStream>) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let (Some(mut pipe), Some(stream)) = (pipe, stream) else {
        return Ok(());
    };
    let mut stream = StreamWriter::new(stream);
    tokio::io::copy(&mut pipe, &mut stream).await?;
    stream.shutdown().await
}

/// A Kubernetes `Status` of failure, as the v4 protocol sends it.
fn failure(reason: &str, message: &str, exit_code: Option<i32>) -> String {
    let mut status = serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    });
    if let Some(code) = exit_code {
        status["details"] = serde_json::json!({
            "causes": [{"reason": "ExitCode", "message": code.to_string()}]
        });
    }
    status.to_string()
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response
}

/// A decoded query string (`application/x-www-form-urlencoded`).
struct Query(HashMap<String, Vec<String>>);

impl Query {
    fn parse(query: &str) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            map.entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Query(map)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn flag(&self, name: &str) -> bool {
        self.0
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v == "true" || v == "1")
    }
}
