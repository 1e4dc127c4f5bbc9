//! The reverse tunnel end to end: `spdy proxy` and `spdy origin` as real
//! processes on 127.0.0.1, public requests made with hyper's HTTP/1.1
//! client, origins serving a folder or forwarding to an HTTP/1.1 server
//! of the test's own.

mod support;

use support::*;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::time::timeout;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [0usize, 1, 70_000, 5_000_000]
        .into_iter()
        .enumerate()
        .map(|(seed, size)| {
            let name = format!("f{size}.bin");
            let data = pattern(size, seed);
            std::fs::write(dir.join(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_through_the_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path());
    let (mut proxy, public, tunnel) = proxy("127.0.0.1:0").await;
    // No origin yet: 502, saying so.
    let (status, _, body) = fetch(&public, get("media.example", "/f1.bin")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        String::from_utf8_lossy(&body).contains("no origin"),
        "{body:?}"
    );

    let dir_arg = dir.path().to_str().unwrap();
    let _origin = origin(&tunnel, "media", TOKEN, &["--dir", dir_arg]).await;
    proxy.wait_for("origin media connected").await;
    for (name, data) in &files {
        let (status, headers, body) =
            fetch(&public, get("media.example", &format!("/{name}"))).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers["content-length"], data.len().to_string());
        assert!(body == *data, "{name}: the bytes differ");
    }
    // A range, HEAD, a missing file.
    let range = Request::get("/f5000000.bin")
        .header("host", "media.example")
        .header("range", "bytes=1000-1999")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = fetch(&public, range).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == files[3].1[1000..2000]);
    let head = Request::head("/f70000.bin")
        .header("host", "media.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = fetch(&public, head).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["content-length"], "70000");
    let (status, _, _) = fetch(&public, get("media.example", "/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // 30 clients at once (one address may have 32 in flight), all down
    // the one tunnel.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..30 {
        let public = public.clone();
        let expected = files[2].1.clone();
        tasks.spawn(async move {
            let (status, _, body) = fetch(&public, get("media.example", "/f70000.bin")).await;
            assert_eq!(status, StatusCode::OK, "request {n}");
            assert!(body == expected, "request {n}: the bytes differ");
        });
    }
    while let Some(done) = timeout(LIMIT, tasks.join_next()).await.unwrap() {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_origin_stops() {
    let (mut proxy, public, tunnel) = proxy("127.0.0.1:0").await;
    let mut origin = origin(&tunnel, "media", "not-the-token", &["--dir", "."]).await;
    proxy.wait_for("refused: wrong or missing token").await;
    origin.wait_for("401").await;
    assert_eq!(origin.exit_code().await, Some(1));
    let (status, _, _) = fetch(&public, get("media.example", "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_dials_again_when_the_proxy_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    let (mut first, _, tunnel) = proxy("127.0.0.1:0").await;
    let mut origin = origin(
        &tunnel,
        "home",
        TOKEN,
        &["--dir", dir.path().to_str().unwrap()],
    )
    .await;
    first.wait_for("origin home connected").await;
    origin.wait_for("tunnel up").await;
    drop(first);
    origin.wait_for("the tunnel ended").await;
    // A new proxy on the same tunnel port: the origin finds it.
    let (mut second, public, _) = proxy(&tunnel).await;
    second.wait_for("origin home connected").await;
    let (status, _, body) = fetch(&public, get(&public, "/hello.txt")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello\n"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_a_local_server() {
    let seen = Arc::new(Seen::default());
    let local = local_server(seen.clone()).await;
    let (mut proxy, public, tunnel) = proxy("127.0.0.1:0").await;
    let forward = format!("http://{local}");
    let _origin = origin(&tunnel, "app", TOKEN, &["--forward", &forward]).await;
    proxy.wait_for("origin app connected").await;

    // A POST with a body, through both hops; the proxy adds the client's
    // address.
    // What the client claims about earlier hops is not passed on.
    let post = Request::post("/echo?x=1")
        .header("host", "app.example:8080")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=7.7.7.7")
        .body(Full::new(Bytes::from(pattern(300_000, 9))))
        .unwrap();
    let (status, headers, body) = fetch(&public, post).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "POST /echo?x=1 host=app.example:8080 xff=127.0.0.1 forwarded=- body=300000"
    );
    assert!(!headers.contains_key("x-secret"), "{headers:?}");

    // The origin keeps its connections to the local server for the next
    // requests.
    let before = seen.connections.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..10 {
        let (status, _, _) = fetch(&public, get("app.example", "/echo")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let opened = seen.connections.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        opened < 10,
        "{opened} connections for 10 requests one after another"
    );

    // A public client that goes away in the middle of an endless body:
    // the tunnel stream is reset, the origin drops its request to the
    // local server, which sees its reader gone.
    let (mut response, sender, connection) = start_get(&public, "app.example", "/endless").await;
    let mut received = 0;
    while received < 1 << 20 {
        let frame = timeout(LIMIT, response.body_mut().frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received += frame.data_ref().map_or(0, |d| d.len());
    }
    drop(response);
    drop(sender);
    connection.abort();
    timeout(LIMIT, seen.abandoned.notified())
        .await
        .expect("the local server kept sending to nobody");

    // The tunnel goes on.
    let (status, _, body) = fetch(&public, get("app.example", "/echo")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).starts_with("GET /echo"));

    // One address may have 32 requests in flight: with 31 unread
    // responses its next request still goes through; at 32, the next one
    // gets 429, not a place in the queue.
    let mut held = Vec::new();
    for n in 0..32 {
        if n == 31 {
            let (status, _, body) = fetch(&public, get("app.example", "/echo")).await;
            let text = String::from_utf8_lossy(&body);
            assert_eq!(status, StatusCode::OK, "{text}");
        }
        let (response, sender, _) = start_get(&public, "app.example", "/endless").await;
        assert_eq!(response.status(), StatusCode::OK);
        held.push((sender, response));
    }
    let (status, _, body) = fetch(&public, get("app.example", "/echo")).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    drop(held);
}

/// A "proxy" that accepts the upgrade and hangs up at once: the origin
/// dials again after 250 ms, 500 ms, 1 s..., not in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_that_ends_at_once_is_dialed_again_with_backoff() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tunnel = listener.local_addr().unwrap().to_string();
    let _origin = origin(&tunnel, "home", TOKEN, &["--dir", "."]).await;
    let mut accepted = Vec::new();
    while accepted.len() < 4 {
        let (mut tcp, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        accepted.push(std::time::Instant::now());
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = timeout(LIMIT, tcp.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before its request head");
            head.extend_from_slice(&buf[..n]);
        }
        let upgrade =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n";
        tcp.write_all(upgrade).await.unwrap();
    }
    // The waits before the 2nd, 3rd and 4th dial: at least 250 + 500 +
    // 1000 ms (sleeps are lower bounds).
    let waited = accepted[3] - accepted[0];
    assert!(waited >= Duration::from_millis(1750), "{waited:?}");
}

/// A self-signed certificate for localhost and 127.0.0.1, written as
/// `NAME.pem` and `NAME.key` in `dir`.
fn self_signed(
    dir: &Path,
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    rcgen::CertifiedKey<rcgen::KeyPair>,
) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified)
}

/// The tunnel leg over TLS: the origin trusts the proxy's certificate
/// (--cacert), and refuses to go on with one it does not trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path(), "proxy");
    let (other, _, _) = self_signed(dir.path(), "other");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("hello.txt"), "hello over tls\n").unwrap();
    let (cert, key, other) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        other.to_str().unwrap(),
    );
    let extra = ["--tunnel-cert", cert, "--tunnel-key", key];
    let (mut proxy, public, tunnel) = proxy_with("127.0.0.1:0", &extra).await;
    assert!(
        proxy.stdout[1].starts_with("tunnels on https://"),
        "{:?}",
        proxy.stdout
    );
    let files = files.to_str().unwrap();

    // A certificate it was not told to trust: the origin stops.
    let mut untrusting = origin(&tunnel, "safe", TOKEN, &["--cacert", other, "--dir", files]).await;
    untrusting.wait_for("certificate").await;
    assert_eq!(untrusting.exit_code().await, Some(1));
    // --tls alone names no trust: bad usage.
    let no_trust = origin(&tunnel, "safe", TOKEN, &["--tls", "--dir", files]).await;
    assert_eq!(no_trust.exit_code().await, Some(2));

    let _origin = origin(&tunnel, "safe", TOKEN, &["--cacert", cert, "--dir", files]).await;
    proxy.wait_for("origin safe connected").await;
    let (status, _, body) = fetch(&public, get("safe.example", "/hello.txt")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"hello over tls\n"[..])
    );
}

/// The public side over TLS: SPDY clients (ALPN spdy/3.1, spdy/2) and
/// HTTP/1.1 clients on one port, all down the same tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_side_over_tls_speaks_spdy_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, certified) = self_signed(dir.path(), "proxy");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let data = pattern(300_000, 3);
    std::fs::write(files.join("data.bin"), &data).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (mut proxy, public, tunnel) =
        proxy_with("127.0.0.1:0", &["--cert", cert, "--key", key]).await;
    assert!(proxy.stdout[0].starts_with("listening on https://"));
    let _origin = origin(&tunnel, "files", TOKEN, &["--dir", files.to_str().unwrap()]).await;
    proxy.wait_for("origin files connected").await;

    // SPDY end to end: client -> proxy -> origin.
    let url = format!("https://{public}/data.bin");
    for version in ["3.1", "2"] {
        let output = Command::new(env!("CARGO_BIN_EXE_spdy"))
            .args(["get", "--cacert", cert, "--spdy", version, &url])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = timeout(LIMIT, output).await.unwrap().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "SPDY/{version}: {err}");
        assert!(output.stdout == data, "SPDY/{version}: the bytes differ");
    }

    // HTTP/1.1 over TLS on the same port.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let mut config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(&public).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/data.bin")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = timeout(LIMIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(body == data, "HTTP/1.1 over TLS: the bytes differ");
}

/// `--connections 2`: two tunnels share the requests; SIGTERM ends them
/// with GOAWAY and the origin exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tunnels_and_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    let (mut proxy, public, tunnel) = proxy("127.0.0.1:0").await;
    let dir_arg = dir.path().to_str().unwrap();
    let mut origin = origin(
        &tunnel,
        "two",
        TOKEN,
        &["--connections", "2", "--dir", dir_arg],
    )
    .await;
    proxy.wait_for("origin two connected").await;
    proxy.wait_for("origin two connected").await;
    for _ in 0..4 {
        let (status, _, body) = fetch(&public, get("two.example", "/a.txt")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"a\n"[..]));
    }
    origin.terminate();
    origin.wait_for("stopping").await;
    assert_eq!(origin.exit_code().await, Some(0));
    proxy.wait_for("origin two from").await;
    proxy.wait_for("origin two from").await;
    let (status, _, _) = fetch(&public, get("two.example", "/a.txt")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

/// SIGTERM to the proxy: no new clients, the download in flight ends
/// whole, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(5_000_000, 4);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let (mut proxy, public, tunnel) = proxy("127.0.0.1:0").await;
    let _origin = origin(
        &tunnel,
        "big",
        TOKEN,
        &["--dir", dir.path().to_str().unwrap()],
    )
    .await;
    proxy.wait_for("origin big connected").await;
    let (mut response, _sender, _) = start_get(&public, "big.example", "/big.bin").await;
    let first = timeout(LIMIT, response.body_mut().frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    proxy.terminate();
    proxy.wait_for("stopping").await;
    let mut received = first.into_data().unwrap().to_vec();
    let rest = timeout(LIMIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    received.extend_from_slice(&rest);
    assert!(received == data, "the download differs");
    assert_eq!(proxy.exit_code().await, Some(0));
}
