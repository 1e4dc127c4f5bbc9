//! HTTP/1.1 Upgrade to SPDY/3.1 and raw streams, over real loopback
//! sockets: the handshake (leftover bytes included), refusals, a
//! kubelet-like port-forward (many connections, a large transfer with a
//! hash check, either peer vanishing) and an exec-like run.
//!
//! Every wait is bounded by `LIMIT`; every port is 0; nothing sleeps to
//! synchronise.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::io::{stream_error, StreamIo};
use spdy::proto::header_block::HeaderBlock;
use spdy::proto::session::StreamError;
use spdy::upgrade::{self, UpgradeError, UpgradeRequest};
use spdy::{Error, Handle, IncomingStream, OpenOptions, RstStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);

/// Awaits `f`, failing the test if it takes longer than `LIMIT`.
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match timeout(LIMIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: timed out after {LIMIT:?}"),
    }
}

fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn header<'a>(headers: &'a HeaderBlock, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| std::str::from_utf8(v).unwrap())
        .unwrap_or("")
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// An HTTP/1.1 server on 127.0.0.1:0, served `with_upgrades()`, whose
/// every request is answered by `respond`.
async fn http_server<F>(respond: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Response<String> + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let respond = respond.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// Upgrades a new connection to `addr` and spawns the session.
async fn dial(addr: SocketAddr, path: &str) -> (Handle, Response<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post(path)
        .unwrap()
        .host(&addr.to_string())
        .unwrap();
    let (handle, connection, response) = within(
        "upgrade",
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    (handle, response)
}

/// Reads one request head (up to the blank line) from a raw socket.
async fn read_request_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A raw TCP server on 127.0.0.1:0 that reads one request head and hands
/// the socket (and the head) to `answer`.
async fn raw_server<F, Fut>(answer: F) -> SocketAddr
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_request_head(&mut tcp).await;
        answer(tcp, head).await;
    });
    addr
}

// ===== the handshake =====

/// The 101 comes back with the negotiated headers, the request carried the
/// repeated ones, and raw streams work both ways: arbitrary headers (no
/// pseudo-headers), reply headers, data, half-close and reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_then_raw_streams() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Vec<String>>();
    let addr = http_server(move |mut req| {
        let offered: Vec<String> = req
            .headers()
            .get_all("x-stream-protocol-version")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let _ = seen_tx.send(offered.clone());
        let upgrade = match upgrade::accept(&mut req) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let chosen = HeaderValue::from_str(&offered[0]).unwrap();
        let (response, session) = upgrade.header("x-stream-protocol-version", chosen).spawn();
        tokio::spawn(async move {
            while let Some(stream) = session.accept().await {
                tokio::spawn(serve_raw(stream));
            }
        });
        response
    })
    .await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post(&format!("http://{addr}/raw?x=1"))
        .unwrap()
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .unwrap()
        .header("x-stream-protocol-version", "v3.channel.k8s.io")
        .unwrap();
    let (handle, connection, response) = within(
        "upgrade",
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "SPDY/3.1");
    assert_eq!(
        response.headers()["x-stream-protocol-version"],
        "v4.channel.k8s.io"
    );
    let offered = within("the server's view", seen_rx.recv()).await.unwrap();
    assert_eq!(offered, ["v4.channel.k8s.io", "v3.channel.k8s.io"]);

    // Echo: arbitrary headers out, reply headers back, data both ways, and
    // a half-close answered by the peer's own FIN and trailers.
    let (mut send, mut recv) = handle
        .open_stream(
            block(&[("streamtype", "echo"), ("requestid", "7")]),
            OpenOptions::default(),
        )
        .unwrap();
    let reply = within("reply", recv.reply()).await.unwrap();
    assert_eq!(header(&reply, "streamtype"), "echo");
    assert_eq!(header(&reply, "requestid"), "7");
    send.write(Bytes::from_static(b"hello ")).await.unwrap();
    send.write(Bytes::from_static(b"raw stream")).await.unwrap();
    send.finish().unwrap();
    let echoed = within("echo", recv.read_to_end(1 << 20)).await.unwrap();
    assert_eq!(echoed, b"hello raw stream");
    let trailers = recv.take_headers();
    assert_eq!(header(&trailers[0], "echoed"), "16");

    // The peer resets: a typed error with the status, on both halves.
    let (mut send, mut recv) = handle
        .open_stream(block(&[("streamtype", "reset-me")]), OpenOptions::default())
        .unwrap();
    send.write(Bytes::from_static(b"x")).await.unwrap();
    let error = within("reset", recv.data()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Stream(StreamError::Reset {
                status: RstStatus::Cancel,
                ..
            })
        ),
        "{error:?}"
    );

    // Refused: the peer did not take the stream (safe to retry).
    let (_send, mut recv) = handle
        .open_stream(block(&[("streamtype", "unknown")]), OpenOptions::default())
        .unwrap();
    let error = within("refusal", recv.reply()).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");

    // Our going away ends the session cleanly.
    drop(handle);
    within("connection end", connection).await.unwrap().unwrap();
}

/// The server side of `upgrade_then_raw_streams`.
async fn serve_raw(stream: IncomingStream) {
    let headers = stream.headers.clone();
    match header(&headers, "streamtype") {
        "echo" => {
            let (mut send, mut recv) = stream.reply(headers, false).unwrap();
            let mut n = 0;
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.unwrap();
                n += chunk.len();
                send.write(chunk).await.unwrap();
            }
            send.send_headers(block(&[("echoed", &n.to_string())]), true)
                .unwrap();
        }
        "reset-me" => {
            let (mut send, mut recv) = stream.reply(HeaderBlock::new(), false).unwrap();
            let _ = recv.data().await;
            send.reset(RstStatus::Cancel).unwrap();
        }
        _ => stream.refuse(RstStatus::RefusedStream).unwrap(),
    }
}

/// The same over TLS (tokio-rustls directly, ALPN `http/1.1`): `connect`
/// takes any stream, and hyper serves the upgrade on a TLS stream alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_over_tls() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let service = service_fn(|mut req: Request<Incoming>| async move {
            let response = match upgrade::accept(&mut req) {
                Ok(upgrade) => {
                    let (response, session) = upgrade.spawn();
                    tokio::spawn(async move {
                        while let Some(stream) = session.accept().await {
                            tokio::spawn(serve_raw(stream));
                        }
                    });
                    response
                }
                Err(rejection) => rejection.into_response(),
            };
            Ok::<Response<String>, Infallible>(response)
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await;
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = within(
        "TLS handshake",
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap();
    let request = UpgradeRequest::post("https://localhost/raw").unwrap();
    let (handle, connection, response) = within(
        "upgrade",
        upgrade::connect(tls, request, upgrade::default_config()),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let (mut send, mut recv) = handle
        .open_stream(block(&[("streamtype", "echo")]), OpenOptions::default())
        .unwrap();
    let payload = Bytes::from(vec![7; 1 << 20]);
    let writer = async {
        send.write(payload.clone()).await.unwrap();
        send.finish().unwrap();
    };
    let reader = async {
        recv.reply().await.unwrap();
        recv.read_to_end(2 << 20).await.unwrap()
    };
    let ((), echoed) = within("echo", async { tokio::join!(writer, reader) }).await;
    assert!(echoed == payload);
}

/// What a server SPDY/3.1 session writes first when it opens a
/// unidirectional `greeting` stream carrying "sent with the 101".
fn greeting_frames() -> Vec<u8> {
    use bytes::Buf;
    use spdy::proto::frame::Version;
    use spdy::proto::session::{Role, Session};

    let mut server = Session::new(Role::Server, Version::V3_1, Default::default());
    let id = server
        .open_stream(
            block(&[("streamtype", "greeting")]),
            OpenOptions {
                unidirectional: true,
                ..Default::default()
            },
        )
        .unwrap();
    server
        .send_data(id, Bytes::from_static(b"sent with the 101"), true)
        .unwrap();
    let mut wire = Vec::new();
    let now = Instant::now();
    while let Some(mut transmit) = server.poll_transmit(now) {
        while transmit.has_remaining() {
            let chunk = transmit.chunk();
            wire.extend_from_slice(chunk);
            let n = chunk.len();
            transmit.advance(n);
        }
    }
    wire
}

/// Reads the greeting stream of [`greeting_frames`] from a session.
async fn expect_greeting(handle: &Handle) {
    let incoming = within("the server's stream", handle.accept())
        .await
        .unwrap();
    assert_eq!(header(&incoming.headers, "streamtype"), "greeting");
    assert!(incoming.unidirectional);
    let mut recv = incoming.into_recv();
    let data = within("its data", recv.read_to_end(1024)).await.unwrap();
    assert_eq!(data, b"sent with the 101");
}

/// The 101 and the server's first SPDY frames arrive in one write; the
/// frames after the head must reach the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_the_101_reach_the_session() {
    let addr = raw_server(|mut tcp, head| async move {
        assert!(head.starts_with("POST /leftover HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nUpgrade: SPDY/3.1\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
        // A server session opens a stream and sends on it before any
        // client frame: all of it goes out with the head.
        let mut wire =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
                .to_vec();
        wire.extend(greeting_frames());
        tcp.write_all(&wire).await.unwrap();
        // Keep the socket until the client is done.
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    })
    .await;

    let (handle, response) = dial(addr, "/leftover").await;
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    expect_greeting(&handle).await;
}

/// Interim responses (100, 103) before the 101 are skipped; the 101's own
/// headers come back; the frames written with it reach the session. The
/// request on the wire: origin-form target, `Host` first, repeated headers
/// in order, then the upgrade headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_are_skipped_and_the_101_headers_returned() {
    let addr = raw_server(|mut tcp, head| async move {
        assert_eq!(
            head,
            "POST /exec?command=sh HTTP/1.1\r\nHost: example.com:8080\r\n\
             X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
             X-Stream-Protocol-Version: v3.channel.k8s.io\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
        );
        let mut wire = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
            HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
            X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
            .to_vec();
        wire.extend(greeting_frames());
        tcp.write_all(&wire).await.unwrap();
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    })
    .await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post("http://example.com:8080/exec?command=sh")
        .unwrap()
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .unwrap()
        .header("x-stream-protocol-version", "v3.channel.k8s.io")
        .unwrap();
    let (handle, connection, response) = within(
        "upgrade",
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()["x-stream-protocol-version"],
        "v4.channel.k8s.io"
    );
    assert!(response.headers().get("link").is_none());
    expect_greeting(&handle).await;
}

/// A status other than 101 is `UpgradeError::Refused` with the status,
/// headers and body, whichever way the body is delimited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_refused_carries_status_and_body() {
    const JSON: &str = r#"{"kind":"Status","code":403,"message":"pods \"p\" is forbidden"}"#;
    let forbidden = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{JSON}",
        JSON.len()
    );
    let cases: [(&'static str, StatusCode, &str); 3] = [
        (forbidden.leak(), StatusCode::FORBIDDEN, JSON),
        (
            "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nbroken\r\n8;ext=1\r\n pipe...\r\n0\r\n\r\n",
            StatusCode::INTERNAL_SERVER_ERROR,
            "broken pipe...",
        ),
        (
            "HTTP/1.0 404 Not Found\r\n\r\nno such pod, and then the server closed",
            StatusCode::NOT_FOUND,
            "no such pod, and then the server closed",
        ),
    ];
    for (answer, status, body) in cases {
        let addr = raw_server(move |mut tcp, _| async move {
            tcp.write_all(answer.as_bytes()).await.unwrap();
            if answer.starts_with("HTTP/1.0") {
                // The body ends with the connection.
                return;
            }
            // The others are delimited: hold the socket open.
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let request = UpgradeRequest::get(&format!("http://{addr}/")).unwrap();
        let error = within(
            "refusal",
            upgrade::connect(tcp, request, upgrade::default_config()),
        )
        .await
        .unwrap_err();
        let refused = error.refused().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(refused.status, status);
        assert_eq!(refused.body, body.as_bytes());
        assert!(!refused.truncated);
        assert!(error.to_string().contains(status.as_str()), "{error}");
    }

    // A hyper server that decides against upgrading, with its own body.
    let addr = http_server(|_req| {
        let mut response = Response::new("no stream protocol in common\n".to_owned());
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            "x-accepted-stream-protocol-versions",
            HeaderValue::from_static("v5"),
        );
        response
    })
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = UpgradeRequest::post(&format!("http://{addr}/exec")).unwrap();
    let error = within(
        "refusal",
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .unwrap_err();
    let refused = error.refused().unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.headers["x-accepted-stream-protocol-versions"], "v5");
    assert_eq!(refused.body, "no stream protocol in common\n");
}

/// What a refusing server can make the dialer read is bounded: a head
/// past `MAX_RESPONSE_HEAD` (one long or endless line, too many lines, or
/// interim responses without end) is `HeadTooLarge`, and of a body, sized
/// or endless, only `MAX_REFUSAL_BODY` bytes are kept and nothing more is
/// waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_cannot_make_us_read_without_end() {
    /// Answers `answer`, then `tail` over and over until the client goes.
    async fn refuse_with(answer: Vec<u8>, tail: Option<Vec<u8>>) -> UpgradeError {
        let addr = raw_server(move |mut tcp, _| async move {
            // The client stops reading and drops the socket: writes fail.
            if tcp.write_all(&answer).await.is_err() {
                return;
            }
            if let Some(tail) = tail {
                while tcp.write_all(&tail).await.is_ok() {}
                return;
            }
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let request = UpgradeRequest::get("/").unwrap().host("test").unwrap();
        within(
            "refusal",
            upgrade::connect(tcp, request, upgrade::default_config()),
        )
        .await
        .unwrap_err()
    }

    // A complete head twice the limit (well under hyper's default buffer,
    // so only our limit refuses it), and a header line that never ends.
    let big_head = format!(
        "HTTP/1.1 403 Forbidden\r\nx-filler: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(2 * upgrade::MAX_RESPONSE_HEAD)
    );
    let endless_line = b"HTTP/1.1 403 Forbidden\r\nx-filler: ".to_vec();
    let filler = Some(vec![b'a'; 16 * 1024]);
    // Interim responses without end, each small.
    let interim = Some(b"HTTP/1.1 100 Continue\r\n\r\n".repeat(100));
    for (answer, tail) in [
        (big_head.into_bytes(), None),
        (endless_line, filler.clone()),
        (Vec::new(), interim),
    ] {
        let error = refuse_with(answer, tail).await;
        assert!(
            matches!(error, UpgradeError::HeadTooLarge { limit } if limit == upgrade::MAX_RESPONSE_HEAD),
            "{error}"
        );
    }
    let many_lines = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x-filler: 1\r\n".repeat(200));
    let error = refuse_with(many_lines.into_bytes(), None).await;
    assert!(
        matches!(error, UpgradeError::HeadTooLarge { .. }),
        "{error}"
    );

    let limit = upgrade::MAX_REFUSAL_BODY;
    let sized = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n",
        4 * limit
    );
    let mut sized = sized.into_bytes();
    sized.resize(sized.len() + 4 * limit, b'x');
    let endless_chunk = format!("{:x}\r\n", 1 << 30);
    let cases = [
        (sized, None),
        (b"HTTP/1.0 403 Forbidden\r\n\r\n".to_vec(), filler.clone()),
        (
            format!("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n{endless_chunk}")
                .into_bytes(),
            filler,
        ),
    ];
    for (answer, tail) in cases {
        let error = refuse_with(answer, tail).await;
        let refused = error.refused().unwrap_or_else(|| panic!("{error}"));
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.body.len(), limit);
        assert!(refused.truncated);
    }
}

/// Answers that are not a proper upgrade are typed errors; a request that
/// does not ask for one gets a 400 from `accept`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_and_requests_are_typed_errors() {
    type Check = fn(&UpgradeError) -> bool;
    let cases: [(&'static str, Check); 4] = [
        (
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            |e| matches!(e, UpgradeError::WrongProtocol { upgrade: Some(u) } if u == "websocket"),
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n",
            |e| matches!(e, UpgradeError::MissingConnectionUpgrade),
        ),
        ("HTTP/1.1 101 Swit", |e| {
            matches!(e, UpgradeError::ClosedBeforeResponse { received: 17 })
        }),
        ("SSH-2.0-OpenSSH_9.6\r\n\r\n", |e| {
            matches!(e, UpgradeError::MalformedResponse(_))
        }),
    ];
    for (answer, expected) in cases {
        let addr = raw_server(move |mut tcp, _| async move {
            tcp.write_all(answer.as_bytes()).await.unwrap();
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let request = UpgradeRequest::get("/").unwrap().host("test").unwrap();
        let error = within(
            "bad answer",
            upgrade::connect(tcp, request, upgrade::default_config()),
        )
        .await
        .unwrap_err();
        assert!(expected(&error), "{answer:?}: {error:?}");
    }

    // The server side: a plain request is answered 400 with the reason.
    let addr = http_server(|mut req| match upgrade::accept(&mut req) {
        Ok(_) => panic!("not an upgrade request"),
        Err(rejection) => rejection.into_response(),
    })
    .await;
    for (request, reason) in [
        (
            "GET /exec HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            "missing Connection: Upgrade",
        ),
        (
            "GET /exec HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
            "Upgrade: websocket does not offer SPDY/3.1",
        ),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        within("400", tcp.read_to_end(&mut answer)).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        assert!(answer.contains(reason), "{answer}");
    }
}

// ===== port-forward =====

/// A TCP echo server on 127.0.0.1:0 (the "pod" port).
async fn echo_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.into_split();
                if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                    let _ = write.shutdown().await;
                }
            });
        }
    });
    port
}

/// How each forwarded connection ended on the kubelet side.
type Outcomes = mpsc::UnboundedSender<io::Result<(u64, u64)>>;

/// A kubelet-like port-forward server: pairs `error` and `data` streams by
/// `requestid`, dials 127.0.0.1:`port` for each pair and copies both ways.
/// Each upgraded session's connection task goes to `sessions`, so a test
/// can kill it; each forward's outcome goes to `outcomes`.
async fn portforward_server(
    sessions: mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    outcomes: Outcomes,
) -> SocketAddr {
    http_server(move |mut req| {
        let upgrade = match upgrade::accept(&mut req) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let (response, session, connection) = upgrade
            .header(
                "x-stream-protocol-version",
                HeaderValue::from_static("portforward.k8s.io"),
            )
            .into_parts();
        let _ = sessions.send(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let outcomes = outcomes.clone();
        tokio::spawn(async move {
            let mut pending: HashMap<String, (Option<IncomingStream>, Option<IncomingStream>)> =
                HashMap::new();
            while let Some(stream) = session.accept().await {
                let id = header(&stream.headers, "requestid").to_owned();
                let entry = pending.entry(id.clone()).or_default();
                match header(&stream.headers, "streamtype") {
                    "error" => entry.0 = Some(stream),
                    "data" => entry.1 = Some(stream),
                    _ => {
                        let _ = stream.refuse(RstStatus::ProtocolError);
                        continue;
                    }
                }
                if let (Some(_), Some(_)) = entry {
                    let (Some(error), Some(data)) = pending.remove(&id).unwrap() else {
                        unreachable!()
                    };
                    let outcomes = outcomes.clone();
                    tokio::spawn(async move {
                        let _ = outcomes.send(forward_pair(error, data).await);
                    });
                }
            }
        });
        response
    })
    .await
}

async fn forward_pair(error: IncomingStream, data: IncomingStream) -> io::Result<(u64, u64)> {
    let port: u16 = header(&data.headers, "port").parse().unwrap_or(0);
    let (data_send, data_recv) = data.reply(HeaderBlock::new(), false)?;
    let (mut error_send, _error_recv) = error.reply(HeaderBlock::new(), false)?;
    let result = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(mut tcp) => {
            let mut stream = StreamIo::new(data_send, data_recv);
            tokio::io::copy_bidirectional(&mut tcp, &mut stream).await
        }
        Err(e) => {
            let message = format!("error forwarding port {port}: {e}");
            let _ = error_send.write(Bytes::from(message)).await;
            Err(e)
        }
    };
    let _ = error_send.finish();
    result
}

/// The kubectl side: forwards every connection accepted on a local
/// listener over a new error/data stream pair to `port`. Returns the local
/// address and the listener's task.
async fn forward_local_port(
    handle: Handle,
    port: u16,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let request_ids = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let id = request_ids.fetch_add(1, Ordering::Relaxed).to_string();
            let port = port.to_string();
            let (error_send, mut error_recv) = handle
                .open_stream(
                    block(&[("streamtype", "error"), ("port", &port), ("requestid", &id)]),
                    OpenOptions {
                        fin: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            let (data_send, mut data_recv) = handle
                .open_stream(
                    block(&[("streamtype", "data"), ("port", &port), ("requestid", &id)]),
                    OpenOptions::default(),
                )
                .unwrap();
            tokio::spawn(async move {
                let _error_send = error_send;
                if data_recv.reply().await.is_err() {
                    return;
                }
                let mut stream = StreamIo::new(data_send, data_recv);
                let _ = tokio::io::copy_bidirectional(&mut local, &mut stream).await;
                // The kubelet's error report, if any, ends the forward.
                let _ = error_recv.read_to_end(1 << 16).await;
            });
        }
    });
    (addr, task)
}

struct Forward {
    target: u16,
    local: SocketAddr,
    /// The kubectl side's listener task (it holds a `Handle`).
    listener: tokio::task::JoinHandle<()>,
    sessions: mpsc::UnboundedReceiver<tokio::task::JoinHandle<()>>,
    outcomes: mpsc::UnboundedReceiver<io::Result<(u64, u64)>>,
    client: Handle,
    client_connection: tokio::task::JoinHandle<Result<(), Error>>,
}

/// Echo target, kubelet, kubectl: a local port forwarded to the echo.
async fn forward_setup() -> Forward {
    let target = echo_target().await;
    let (sessions_tx, sessions) = mpsc::unbounded_channel();
    let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
    let kubelet = portforward_server(sessions_tx, outcomes_tx).await;
    let tcp = TcpStream::connect(kubelet).await.unwrap();
    // As every real client does: with Nagle's algorithm, two frames in a
    // row wait for a delayed ACK (40 ms) whenever a window update lets out
    // less than a segment.
    tcp.set_nodelay(true).unwrap();
    let request = UpgradeRequest::post(&format!(
        "http://{kubelet}/portForward/default/pod?ports={target}"
    ))
    .unwrap()
    .header("x-stream-protocol-version", "portforward.k8s.io")
    .unwrap();
    let (client, connection, response) = within(
        "upgrade",
        upgrade::connect(tcp, request, upgrade::default_config()),
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()["x-stream-protocol-version"],
        "portforward.k8s.io"
    );
    let client_connection = tokio::spawn(connection);
    let (local, listener) = forward_local_port(client.clone(), target).await;
    Forward {
        target,
        local,
        listener,
        sessions,
        outcomes,
        client,
        client_connection,
    }
}

/// Sends `len` pseudo-random bytes through `tcp` (an echo at the far end)
/// while reading the echo; returns (sent hash, echoed hash, echoed length).
async fn echo_through(tcp: TcpStream, seed: u64, len: usize) -> (u64, u64, usize) {
    let (mut read, mut write) = tcp.into_split();
    let writer = async move {
        let mut noise = Noise(seed | 1);
        let mut hash = Fnv::new();
        let mut buf = vec![0; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            noise.fill(&mut buf[..n]);
            hash.update(&buf[..n]);
            write.write_all(&buf[..n]).await.unwrap();
            left -= n;
        }
        write.shutdown().await.unwrap();
        hash.0
    };
    let reader = async move {
        let mut hash = Fnv::new();
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0;
        loop {
            let n = read.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            total += n;
        }
        (hash.0, total)
    };
    let (sent, (echoed, total)) = tokio::join!(writer, reader);
    (sent, echoed, total)
}

/// Fifty forwarded connections at once, each moving its own bytes both
/// ways through its own stream pair of the one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_forwarded_connections_at_once() {
    const CONNECTIONS: u64 = 50;
    const LEN: usize = 200_000;
    let mut forward = forward_setup().await;
    let mut tasks = Vec::new();
    for n in 0..CONNECTIONS {
        let local = forward.local;
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(local).await.unwrap();
            echo_through(tcp, n + 1, LEN + n as usize * 1000).await
        }));
    }
    for (n, task) in tasks.into_iter().enumerate() {
        let (sent, echoed, total) = within("forwarded echo", task).await.unwrap();
        assert_eq!(total, LEN + n * 1000, "connection {n}");
        assert_eq!(sent, echoed, "connection {n} corrupted");
    }
    for _ in 0..CONNECTIONS {
        let outcome = within("forward outcome", forward.outcomes.recv())
            .await
            .unwrap();
        outcome.unwrap();
    }
    // Going away closes the session once nothing is open.
    forward.listener.abort();
    let _ = forward.listener.await;
    drop(forward.client);
    within("client connection", forward.client_connection)
        .await
        .unwrap()
        .unwrap();
}

/// 32 MiB each way through one forwarded connection, checked by hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_through_a_forward_keeps_every_byte() {
    const LEN: usize = 32 << 20;
    let mut forward = forward_setup().await;
    let tcp = TcpStream::connect(forward.local).await.unwrap();
    let (sent, echoed, total) = within("32 MiB echo", echo_through(tcp, 0x5eed, LEN)).await;
    assert_eq!(total, LEN);
    assert_eq!(sent, echoed, "hash mismatch");
    let (to_target, from_target) = within("forward outcome", forward.outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((to_target, from_target), (LEN as u64, LEN as u64));
}

/// Starts a transfer through a raw data stream of the forward (no local
/// socket, to see the stream API's errors) and returns once bytes are
/// flowing both ways.
async fn flowing_stream(
    forward: &Forward,
    port: &str,
) -> [(spdy::SendStream, spdy::RecvStream); 2] {
    let error = forward
        .client
        .open_stream(
            block(&[("streamtype", "error"), ("port", port), ("requestid", "x")]),
            OpenOptions {
                fin: true,
                ..Default::default()
            },
        )
        .unwrap();
    let (mut send, mut recv) = forward
        .client
        .open_stream(
            block(&[("streamtype", "data"), ("port", port), ("requestid", "x")]),
            OpenOptions::default(),
        )
        .unwrap();
    within("reply", recv.reply()).await.unwrap();
    send.write(Bytes::from(vec![1; 100_000])).await.unwrap();
    let first = within("first echo", recv.data()).await.unwrap().unwrap();
    assert!(!first.is_empty());
    [(send, recv), error]
}

/// The kubelet vanishes mid-transfer: every waiting operation of the
/// client ends with a typed error, the `AsyncRead` adapter included, and
/// the client connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_vanishing_mid_transfer_is_a_typed_error() {
    let mut forward = forward_setup().await;
    let port = forward.target.to_string();
    let [(mut send, recv), _error_stream] = flowing_stream(&forward, &port).await;
    // A writer that keeps going, and a reader through the io adapter.
    let writer = tokio::spawn(async move {
        loop {
            if let Err(e) = send.write(Bytes::from(vec![2; 64 * 1024])).await {
                return e;
            }
        }
    });
    // A stream the kubelet holds without replying (its pair never comes).
    let (_other_send, mut other_recv) = forward
        .client
        .open_stream(
            block(&[
                ("streamtype", "error"),
                ("port", &port),
                ("requestid", "unpaired"),
            ]),
            OpenOptions::default(),
        )
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut reader = spdy::io::StreamReader::new(recv);
        let mut buf = vec![0; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => panic!("a cut-short stream ended cleanly"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    });
    // The kubelet's session task dies, and its socket with it.
    let session = within("kubelet session", forward.sessions.recv())
        .await
        .unwrap();
    session.abort();
    let _ = session.await;

    let read_error = within("reader", reader).await.unwrap();
    let spdy_error = stream_error(&read_error).unwrap_or_else(|| panic!("{read_error:?}"));
    assert!(
        matches!(
            spdy_error,
            Error::Stream(StreamError::SessionClosed) | Error::ConnectionClosed | Error::Io(_)
        ),
        "{spdy_error:?}"
    );
    let write_error = within("writer", writer).await.unwrap();
    assert!(
        matches!(
            write_error,
            Error::Stream(StreamError::SessionClosed) | Error::ConnectionClosed | Error::Io(_)
        ),
        "{write_error:?}"
    );
    // A stream that was only waiting fails too, and nothing new opens.
    let idle = within("idle stream", other_recv.reply()).await;
    assert!(idle.is_err(), "{idle:?}");
    assert!(forward
        .client
        .open_stream(block(&[("streamtype", "late")]), OpenOptions::default())
        .is_err());
    within("client connection", forward.client_connection)
        .await
        .unwrap()
        .ok();
}

/// The kubectl side vanishes mid-transfer: the kubelet's forward ends with
/// a typed error instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_transfer_ends_the_forward() {
    let mut forward = forward_setup().await;
    let port = forward.target.to_string();
    let streams = flowing_stream(&forward, &port).await;
    forward.client_connection.abort();
    let _ = forward.client_connection.await;
    let outcome = within("kubelet's forward", forward.outcomes.recv())
        .await
        .unwrap();
    let error = outcome.unwrap_err();
    let spdy_error = stream_error(&error).unwrap_or_else(|| panic!("{error:?}"));
    assert!(
        matches!(
            spdy_error,
            Error::Stream(StreamError::SessionClosed) | Error::ConnectionClosed
        ),
        "{spdy_error:?}"
    );
    drop(streams);
}

// ===== exec =====

/// A kubelet-like exec server: takes the `error`, `stdin`, `stdout` and
/// `stderr` streams by their `streamtype`, runs `sh -c COMMAND` (COMMAND
/// from the `command` query parameter, already plain in this test) wired to
/// them, and reports the exit status on the error stream.
async fn exec_server() -> SocketAddr {
    http_server(|mut req| {
        let command = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("command="))
            .unwrap_or("")
            .replace("%20", " ")
            .replace("%3B", ";")
            .replace("%3E", ">")
            .replace("%26", "&");
        let upgrade = match upgrade::accept(&mut req) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let (response, session) = upgrade.spawn();
        tokio::spawn(run_exec(session, command));
        response
    })
    .await
}

async fn run_exec(session: Handle, command: String) {
    let mut streams: HashMap<String, IncomingStream> = HashMap::new();
    while streams.len() < 4 {
        let Some(stream) = session.accept().await else {
            return;
        };
        let kind = header(&stream.headers, "streamtype").to_owned();
        streams.insert(kind, stream);
    }
    let take = |streams: &mut HashMap<String, IncomingStream>, kind: &str, fin: bool| {
        streams
            .remove(kind)
            .unwrap()
            .reply(HeaderBlock::new(), fin)
            .unwrap()
    };
    let (mut error, _) = take(&mut streams, "error", false);
    let (_, stdin) = take(&mut streams, "stdin", true);
    let (stdout, _) = take(&mut streams, "stdout", false);
    let (stderr, _) = take(&mut streams, "stderr", false);
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_stdin = child.stdin.take().unwrap();
    let mut child_stdout = child.stdout.take().unwrap();
    let mut child_stderr = child.stderr.take().unwrap();
    let stdin_task = tokio::spawn(async move {
        let mut stdin = spdy::io::StreamReader::new(stdin);
        let _ = tokio::io::copy(&mut stdin, &mut child_stdin).await;
    });
    let out = async move {
        let mut w = spdy::io::StreamWriter::new(stdout);
        tokio::io::copy(&mut child_stdout, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let err = async move {
        let mut w = spdy::io::StreamWriter::new(stderr);
        tokio::io::copy(&mut child_stderr, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let (status, (), ()) = tokio::join!(child.wait(), out, err);
    stdin_task.abort();
    let code = status.unwrap().code().unwrap_or(-1);
    let report = if code == 0 {
        r#"{"metadata":{},"status":"Success"}"#.to_owned()
    } else {
        format!(
            r#"{{"metadata":{{}},"status":"Failure","reason":"NonZeroExitCode","details":{{"causes":[{{"reason":"ExitCode","message":"{code}"}}]}}}}"#
        )
    };
    error.write(Bytes::from(report)).await.unwrap();
    error.finish().unwrap();
}

/// An exec-like run: stdin goes to the command, its stdout and stderr come
/// back on their streams, the exit status on the error stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_like_run_wires_stdin_stdout_stderr() {
    let addr = exec_server().await;
    let (handle, _) = dial(
        addr,
        "/exec?command=cat%3B%20echo%20done%20%3E%262%3B%20exit%203",
    )
    .await;
    let open = |kind: &str, fin: bool| {
        handle
            .open_stream(
                block(&[("streamtype", kind)]),
                OpenOptions {
                    fin,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    let (_, mut error) = open("error", true);
    let (mut stdin, _) = open("stdin", false);
    let (_, mut stdout) = open("stdout", true);
    let (_, mut stderr) = open("stderr", true);
    let input: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let feed = async {
        stdin.write(Bytes::from(input.clone())).await.unwrap();
        stdin.finish().unwrap();
    };
    let (_, out, err, status) = within("exec", async {
        tokio::join!(
            feed,
            async {
                stdout.reply().await.unwrap();
                stdout.read_to_end(1 << 20).await.unwrap()
            },
            async {
                stderr.reply().await.unwrap();
                stderr.read_to_end(1 << 20).await.unwrap()
            },
            async {
                error.reply().await.unwrap();
                error.read_to_end(1 << 20).await.unwrap()
            },
        )
    })
    .await;
    assert!(out == input, "stdout differs from stdin");
    assert_eq!(err, b"done\n");
    let status = String::from_utf8(status).unwrap();
    assert!(status.contains(r#""reason":"NonZeroExitCode""#), "{status}");
    assert!(status.contains(r#""message":"3""#), "{status}");
}
