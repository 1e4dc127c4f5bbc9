//! Port forwarding the way `kubectl port-forward` does it: an HTTP/1.1
//! request upgraded to SPDY/3.1, then, per forwarded TCP connection, a
//! pair of streams (`streamtype: error` and `streamtype: data`, both with
//! `port` and `requestid` headers). The server (the kubelet's part) dials
//! the port on 127.0.0.1 for each pair and copies bytes both ways over the
//! data stream; if it cannot, it says why on the error stream.
//!
//! With no arguments it runs a demo in one process: a target service, the
//! server, and the client forwarding a local port to it:
//!
//! ```sh
//! cargo run -p spdy --example portforward
//! ```
//!
//! Or the two parts apart (the client forwards local port 8022 to port 22
//! at the server, and prints the local address):
//!
//! ```sh
//! cargo run -p spdy --example portforward -- server 127.0.0.1:7071
//! cargo run -p spdy --example portforward -- client http://127.0.0.1:7071 8022:22
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::io::StreamIo;
use spdy::proto::header_block::HeaderBlock;
use spdy::upgrade::{self, UpgradeRequest};
use spdy::{Handle, IncomingStream, OpenOptions, RstStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PROTOCOL: &str = "portforward.k8s.io";
const USAGE: &str = "usage: portforward [server [ADDR] | client URL LOCAL_PORT:REMOTE_PORT]";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => demo().await,
        ["server"] => serve(TcpListener::bind("127.0.0.1:7071").await?).await,
        ["server", addr] => serve(TcpListener::bind(addr).await?).await,
        ["client", url, ports] => {
            let (local, remote) = ports.split_once(':').ok_or(USAGE)?;
            let listener = TcpListener::bind(("127.0.0.1", local.parse::<u16>()?)).await?;
            let session = connect(url.parse()?).await?;
            println!(
                "forwarding {} -> port {remote} at {url}",
                listener.local_addr()?
            );
            forward(session, listener, remote.parse()?).await
        }
        _ => Err(USAGE.into()),
    }
}

// ===== the server (kubelet) side =====

/// Serves port-forward upgrades on `listener`.
async fn serve(listener: TcpListener) -> Result<(), BoxError> {
    println!("port-forward server on http://{}", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let service =
                service_fn(|req| async move { Ok::<_, Infallible>(upgrade_request(req)) });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
            {
                eprintln!("[server] {peer}: {e}");
            }
        });
    }
}

fn upgrade_request(mut req: Request<Incoming>) -> Response<String> {
    let upgrade = match upgrade::accept(&mut req) {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // `upgrade::default_config()`, without flow control, as kubectl does
    // none.
    let (response, session) = upgrade
        .config(upgrade::default_config())
        .header(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL),
        )
        .spawn();
    tokio::spawn(pair_streams(session));
    response
}

/// Pairs each connection's error and data streams by `requestid`, and
/// forwards each complete pair.
async fn pair_streams(session: Handle) {
    type Pair = (Option<IncomingStream>, Option<IncomingStream>);
    let mut pending: HashMap<Bytes, Pair> = HashMap::new();
    while let Some(stream) = session.accept().await {
        let Some(id) = stream.headers.get("requestid").cloned() else {
            let _ = stream.refuse(RstStatus::ProtocolError);
            continue;
        };
        let pair = pending.entry(id.clone()).or_default();
        match stream.headers.get("streamtype").map(|t| &t[..]) {
            Some(b"error") => pair.0 = Some(stream),
            Some(b"data") => pair.1 = Some(stream),
            _ => {
                let _ = stream.refuse(RstStatus::ProtocolError);
                continue;
            }
        }
        if let (Some(_), Some(_)) = pair {
            if let Some((Some(error), Some(data))) = pending.remove(&id) {
                tokio::spawn(forward_pair(error, data));
            }
        }
    }
}

/// Dials the pair's port and copies both ways; a failure goes to the
/// error stream.
async fn forward_pair(error: IncomingStream, data: IncomingStream) {
    let port = data
        .headers
        .get("port")
        .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u16>().ok());
    let (Ok((data_send, data_recv)), Ok((mut error_send, _))) = (
        data.reply(HeaderBlock::new(), false),
        error.reply(HeaderBlock::new(), false),
    ) else {
        return;
    };
    let outcome = match port {
        None => Err("no valid port header".to_owned()),
        Some(port) => match TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) => Err(format!("error forwarding port {port}: {e}")),
            Ok(mut tcp) => {
                let mut stream = StreamIo::new(data_send, data_recv);
                match tokio::io::copy_bidirectional(&mut tcp, &mut stream).await {
                    Ok((from_port, to_port)) => {
                        eprintln!("[server] port {port}: {to_port} bytes to it, {from_port} back");
                        Ok(())
                    }
                    Err(e) => Err(format!("error forwarding port {port}: {e}")),
                }
            }
        },
    };
    if let Err(message) = outcome {
        eprintln!("[server] {message}");
        let _ = error_send.write(Bytes::from(message)).await;
    }
    let _ = error_send.finish();
}

// ===== the client (kubectl) side =====

/// Upgrades a connection to the server at `url`.
async fn connect(url: Uri) -> Result<Handle, BoxError> {
    let authority = url.authority().ok_or("the URL has no host")?.as_str();
    let host = url.host().ok_or("the URL has no host")?;
    let tcp = TcpStream::connect((host, url.port_u16().unwrap_or(80))).await?;
    let request = UpgradeRequest::post("/portforward")?
        .host(authority)?
        .header("x-stream-protocol-version", PROTOCOL)?;
    // kubelets and kubectl (spdystream) do no flow control: the Upgrade
    // path's default config does none either, or a forwarded connection
    // would stop at 64 KiB (see `spdy::upgrade`'s module doc).
    let (session, connection, _response) =
        upgrade::connect(tcp, request, upgrade::default_config()).await?;
    tokio::spawn(connection);
    Ok(session)
}

/// Forwards every connection accepted on `listener` to `port` at the
/// server, each over a new pair of streams.
async fn forward(session: Handle, listener: TcpListener, port: u16) -> Result<(), BoxError> {
    let mut request_id = 0u64;
    loop {
        let (local, peer) = listener.accept().await?;
        request_id += 1;
        let session = session.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_one(&session, local, port, request_id).await {
                eprintln!("[client] {peer}: {e}");
            }
        });
    }
}

async fn forward_one(
    session: &Handle,
    mut local: TcpStream,
    port: u16,
    request_id: u64,
) -> Result<(), BoxError> {
    let headers = |kind: &str| -> HeaderBlock {
        [
            ("streamtype", kind.to_owned()),
            ("port", port.to_string()),
            ("requestid", request_id.to_string()),
        ]
        .into_iter()
        .collect()
    };
    // We never write on the error stream: it is opened with FIN.
    let fin = OpenOptions {
        fin: true,
        ..Default::default()
    };
    let (_error_send, mut error_recv) = session.open_stream(headers("error"), fin)?;
    let (data_send, mut data_recv) = session.open_stream(headers("data"), Default::default())?;
    data_recv.reply().await?;
    let mut data = StreamIo::new(data_send, data_recv);
    let copied = tokio::io::copy_bidirectional(&mut local, &mut data).await;
    // The server's word on what went wrong, if anything did.
    error_recv.reply().await?;
    let message = error_recv.read_to_end(64 * 1024).await?;
    if !message.is_empty() {
        return Err(String::from_utf8_lossy(&message).into_owned().into());
    }
    copied?;
    Ok(())
}

// ===== the demo =====

async fn demo() -> Result<(), BoxError> {
    // The service to reach: answers each line with its upper-case form.
    let target = TcpListener::bind("127.0.0.1:0").await?;
    let target_port = target.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = target.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    if tcp.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let server = TcpListener::bind("127.0.0.1:0").await?;
    let server_url: Uri = format!("http://{}", server.local_addr()?).parse()?;
    tokio::spawn(serve(server));

    let session = connect(server_url.clone()).await?;
    let local = TcpListener::bind("127.0.0.1:0").await?;
    let local_addr: SocketAddr = local.local_addr()?;
    println!("[client] forwarding {local_addr} -> port {target_port} at {server_url}");
    tokio::spawn(forward(session.clone(), local, target_port));

    // Three connections through the forward at once.
    let mut tasks = Vec::new();
    for n in 1..=3 {
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(local_addr).await?;
            let line = format!("hello from connection {n}\n");
            tcp.write_all(line.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).await?;
            Ok::<_, BoxError>(answer)
        }));
    }
    for task in tasks {
        print!("[demo] the target answered: {}", task.await??);
    }

    // A port nobody listens on: the server's error stream says so.
    let closed = TcpListener::bind("127.0.0.1:0").await?;
    let closed_port = closed.local_addr()?.port();
    drop(closed);
    // (A local connection of our own, to hand to `forward_one` directly.)
    let (_ours, local) = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let ours = TcpStream::connect(listener.local_addr()?).await?;
        (ours, listener.accept().await?.0)
    };
    match forward_one(&session, local, closed_port, 1000).await {
        Ok(()) => println!("[demo] port {closed_port} unexpectedly forwarded"),
        Err(e) => println!("[demo] forwarding to a closed port fails: {e}"),
    }
    Ok(())
}
