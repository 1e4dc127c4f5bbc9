//! An "exec" client, the `kubectl exec` side: upgrades an HTTP/1.1
//! connection to SPDY/3.1, opens the `error`, `stdin`, `stdout` and
//! `stderr` streams (`streamtype` header), wires its own stdin, stdout and
//! stderr to them, and exits with the remote command's exit code (read
//! from the Kubernetes `Status` on the error stream).
//!
//! With `exec_server` running (`cargo run -p spdy --example exec_server`):
//!
//! ```sh
//! echo hello | cargo run -p spdy --example exec_client -- http://127.0.0.1:7070 tr a-z A-Z
//! cargo run -p spdy --example exec_client -- http://127.0.0.1:7070 sh -c 'echo out; echo err >&2; exit 3' </dev/null; echo "exit code $?"
//! ```
//!
//! The URL's path defaults to `/exec`; the command and its arguments go in
//! the query as `command=` parameters, as with the Kubernetes API.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use spdy::proto::header_block::HeaderBlock;
use spdy::upgrade::{self, UpgradeRequest};
use spdy::{Handle, OpenOptions, RecvStream, SendStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const USAGE: &str = "usage: exec_client http://HOST:PORT[/PATH] COMMAND [ARG...]";
const PROTOCOL: &str = "v4.channel.k8s.io";

#[tokio::main]
async fn main() {
    match run().await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("exec_client: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url: Uri = args.next().ok_or(USAGE)?.parse()?;
    let command: Vec<String> = args.collect();
    if command.is_empty() {
        return Err(USAGE.into());
    }
    if url.scheme_str() != Some("http") {
        return Err(
            "only http:// URLs here (upgrade::connect takes a TLS stream just as well)".into(),
        );
    }
    let authority = url.authority().ok_or("the URL has no host")?.as_str();
    let host = url.host().ok_or("the URL has no host")?;
    let path = match url.path() {
        "" | "/" => "/exec",
        path => path,
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for arg in &command {
        query.append_pair("command", arg);
    }
    query.extend_pairs([("stdin", "true"), ("stdout", "true"), ("stderr", "true")]);
    let target = format!("{path}?{}", query.finish());

    let tcp = TcpStream::connect((host, url.port_u16().unwrap_or(80))).await?;
    let request = UpgradeRequest::post(&target)?
        .host(authority)?
        .header("x-stream-protocol-version", PROTOCOL)?;
    let (session, connection, response) = tokio::time::timeout(
        Duration::from_secs(30),
        // Without flow control, as the kubelet (spdystream) does none: see
        // `spdy::upgrade`'s module doc.
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .map_err(|_| "no answer to the upgrade request in 30 s")??;
    let negotiated = response.headers().get("x-stream-protocol-version");
    if negotiated.is_none_or(|v| v != PROTOCOL) {
        return Err(format!("the server chose protocol {negotiated:?}, not {PROTOCOL}").into());
    }
    tokio::spawn(connection);

    // The error stream first, as kubectl does; we never write on it, nor on
    // stdout and stderr: those are opened with FIN.
    let (_, mut error) = open(&session, "error", true)?;
    let (stdin, _) = open(&session, "stdin", false)?;
    let (_, stdout) = open(&session, "stdout", true)?;
    let (_, stderr) = open(&session, "stderr", true)?;

    tokio::spawn(feed_stdin(stdin));
    let status = async {
        error.reply().await?;
        error.read_to_end(1 << 20).await
    };
    let (out, err, status) = tokio::join!(
        copy_out(stdout, std::io::stdout()),
        copy_out(stderr, std::io::stderr()),
        status
    );
    // The status says best what happened (a command that could not start
    // leaves its output streams cut short).
    let code = exit_code(&status?)?;
    out?;
    err?;
    Ok(code)
}

fn open(session: &Handle, kind: &str, fin: bool) -> Result<(SendStream, RecvStream), spdy::Error> {
    let headers: HeaderBlock = [("streamtype", kind.to_owned())].into_iter().collect();
    session.open_stream(
        headers,
        OpenOptions {
            fin,
            ..Default::default()
        },
    )
}

/// Our stdin onto the stdin stream, then FIN. Standard input is read on a
/// thread of its own (blocking reads); the command may end first, and the
/// process then exits without waiting for more input.
async fn feed_stdin(mut stream: SendStream) -> Result<(), spdy::Error> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                break;
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        stream.write(chunk).await?;
    }
    stream.finish()
}

/// A stream onto one of our outputs, until the server ends it.
async fn copy_out(
    mut stream: RecvStream,
    mut out: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    stream.reply().await?;
    while let Some(chunk) = stream.data().await {
        let chunk = chunk?;
        // Terminal and pipe writes block: tell the runtime.
        tokio::task::block_in_place(|| {
            out.write_all(&chunk)?;
            out.flush()
        })?;
    }
    Ok(())
}

/// The exit code from the error stream's Kubernetes `Status`.
fn exit_code(status: &[u8]) -> Result<i32, Box<dyn std::error::Error>> {
    if status.is_empty() {
        return Ok(0);
    }
    let status: serde_json::Value = serde_json::from_slice(status)?;
    if status["status"] == "Success" {
        return Ok(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let causes = status["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(code) = causes
            .iter()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str()?.parse().ok())
        {
            return Ok(code);
        }
    }
    let message = status["message"]
        .as_str()
        .unwrap_or("remote command failed");
    Err(message.to_owned().into())
}
