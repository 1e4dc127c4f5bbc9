//! `spdy serve --tls` and `spdy get https://…` end to end: a self-signed
//! certificate made at start (fingerprint printed, trusted with --cacert or
//! skipped with -k), a certificate given with --cert/--key, ALPN picking
//! each version, HTTP/1.1 on the same port, and the failures explained.

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use spdy::tls::rustls::pki_types::ServerName;
use spdy::tls::rustls::RootCertStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::timeout;

/// The longest any one step may take.
const LIMIT: Duration = Duration::from_secs(60);

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// A running `spdy serve --tls`, killed when dropped.
struct Server {
    child: Child,
    /// `127.0.0.1:port`, as printed.
    addr: String,
    /// The SHA-256 fingerprint it printed.
    fingerprint: String,
    log: Arc<Mutex<String>>,
    /// Signalled at each line added to `log`.
    logged: Arc<Notify>,
}

impl Server {
    async fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spdy"))
            .arg("serve")
            .arg(dir)
            .args(["--addr", "127.0.0.1:0", "--tls"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn spdy serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = timeout(LIMIT, stdout.next_line())
            .await
            .expect("spdy serve printed no address in time")
            .unwrap();
        let Some(line) = line else {
            let mut log = String::new();
            while let Ok(Ok(Some(line))) = timeout(LIMIT, stderr.next_line()).await {
                log.push_str(&line);
                log.push('\n');
            }
            panic!("spdy serve exited without an address: {log}");
        };
        let addr = line
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        // What it says about its certificate, up to the "serving" line,
        // comes before the address: it is already in the pipe.
        let mut log = String::new();
        let mut fingerprint = None;
        loop {
            let line = timeout(LIMIT, stderr.next_line())
                .await
                .expect("no \"serving\" line in time")
                .unwrap()
                .unwrap_or_else(|| panic!("no \"serving\" line: {log}"));
            log.push_str(&line);
            log.push('\n');
            if let Some((_, printed)) = line.split_once("SHA-256 fingerprint ") {
                fingerprint = Some(printed.trim().to_owned());
            }
            if line.starts_with("spdy serve: serving ") {
                break;
            }
        }
        let fingerprint = fingerprint.unwrap_or_else(|| panic!("no fingerprint printed: {log}"));
        let log = Arc::new(Mutex::new(log));
        let logged = Arc::new(Notify::new());
        let (sink, signal) = (log.clone(), logged.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                signal.notify_waiters();
            }
        });
        Server {
            child,
            addr,
            fingerprint,
            log,
            logged,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `needle` (the server writes a request's
    /// line before answering it, but our reader may not have read it yet).
    async fn wait_for_log(&self, needle: &str) {
        let wait = async {
            loop {
                let notified = self.logged.notified();
                if self.log().contains(needle) {
                    return;
                }
                notified.await;
            }
        };
        if timeout(LIMIT, wait).await.is_err() {
            panic!("{needle:?} never logged: {}", self.log());
        }
    }

    async fn stop(mut self) {
        self.child.start_kill().unwrap();
        timeout(LIMIT, self.child.wait())
            .await
            .expect("spdy serve did not exit")
            .unwrap();
    }
}

/// Runs the binary to completion (killed if it outlives LIMIT).
async fn spdy(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_spdy"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    timeout(LIMIT, output)
        .await
        .unwrap_or_else(|_| panic!("spdy {args:?} timed out"))
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The fingerprint of the first certificate in a PEM file.
fn fingerprint_of(path: &Path) -> String {
    let certs = spdy::tls::load_certs(path).unwrap();
    spdy::tls::fingerprint_sha256(&certs[0])
}

/// GET `path` with hyper's HTTP/1.1 client over TLS (ALPN `http/1.1`),
/// trusting the certificate in `ca`; returns the status and the body.
async fn http1_get(port: u16, ca: &Path, path: &str) -> (u16, Bytes) {
    let mut roots = RootCertStore::empty();
    for cert in spdy::tls::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config = spdy::tls::client_config(roots).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = timeout(
        LIMIT,
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls)),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", format!("localhost:{port}"))
        .body(Empty::new())
        .unwrap();
    timeout(LIMIT, async {
        let res = send.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_with_insecure_and_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let content = pattern(300_000);
    std::fs::write(dir.path().join("f.bin"), &content).unwrap();
    let keep = tempfile::tempdir().unwrap();
    let cert = keep.path().join("cert.pem");
    let server = Server::start(dir.path(), &["--save-cert", cert.to_str().unwrap()]).await;
    assert!(
        server
            .log()
            .contains("self-signed certificate for localhost, 127.0.0.1"),
        "{}",
        server.log()
    );
    // The fingerprint printed is the saved certificate's.
    assert_eq!(server.fingerprint, fingerprint_of(&cert));
    assert_eq!(server.fingerprint.len(), 32 * 3 - 1);

    // -k: no verification, and ALPN agrees on each version asked for.
    let url = server.url("/f.bin");
    let output = spdy(&["get", "-k", "-v", &url]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout == content);
    assert!(
        stderr(&output).contains("ALPN agreed spdy/3.1"),
        "{}",
        stderr(&output)
    );
    for version in ["2", "3", "3.1"] {
        let output = spdy(&["get", "-k", "-v", "--spdy", version, &url]).await;
        assert!(output.status.success(), "{version}: {}", stderr(&output));
        assert!(output.stdout == content, "SPDY/{version}");
        assert!(
            stderr(&output).contains(&format!("speaking SPDY/{version}")),
            "{}",
            stderr(&output)
        );
    }

    // Nothing trusted: a clear failure.
    let output = spdy(&["get", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("certificate not trusted; use --cacert or -k"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());

    // --cacert with the saved certificate: verified, by IP and by name.
    let ca = cert.to_str().unwrap();
    let output = spdy(&["get", "--cacert", ca, &url]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout == content);
    let by_name = format!("https://localhost:{}/f.bin", server.port());
    let output = spdy(&["get", "--cacert", ca, "-I", &by_name]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let head = String::from_utf8(output.stdout).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\n"), "{head}");
    assert!(head.contains("content-length: 300000\n"), "{head}");

    // HTTP/1.1 on the same port, the same file server.
    let (status, body) = http1_get(server.port(), &cert, "/f.bin").await;
    assert_eq!(status, 200);
    assert!(body == content);
    let (status, _) = http1_get(server.port(), &cert, "/../etc/passwd").await;
    assert_eq!(status, 403);

    server.wait_for_log("GET /f.bin 200 300000").await;
    server.wait_for_log("HEAD /f.bin 200 300000").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_certificate_and_one_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v"), "two").unwrap();
    let keep = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = keep.path().join("c.pem");
    let key = keep.path().join("k.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let server = Server::start(
        dir.path(),
        &["--cert", cert_arg, "--key", key_arg, "--spdy", "2"],
    )
    .await;
    assert_eq!(server.fingerprint, fingerprint_of(&cert));
    assert!(
        server.log().contains("ALPN: spdy/2, http/1.1"),
        "{}",
        server.log()
    );
    let url = format!("https://localhost:{}/v", server.port());

    // The client offers all three; the server has only 2.
    let output = spdy(&["get", "--cacert", cert_arg, "-v", &url]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"two");
    assert!(
        stderr(&output).contains("speaking SPDY/2"),
        "{}",
        stderr(&output)
    );

    // Only 3.1 offered: nothing in common, said so.
    let output = spdy(&["get", "--cacert", cert_arg, "--spdy", "3.1", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("agreed to none of spdy/3.1 by ALPN"),
        "{}",
        stderr(&output)
    );

    // The certificate names localhost only: not 127.0.0.1.
    let output = spdy(&["get", "--cacert", cert_arg, &server.url("/v")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("certificate not trusted"),
        "{}",
        stderr(&output)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();

    // --cert needs --tls and --key.
    let output = spdy(&["serve", "--cert", missing, "--key", missing]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = spdy(&["serve", "--tls", "--cert", missing]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // Files that are not there.
    let output = spdy(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--tls",
        "--cert",
        missing,
        "--key",
        missing,
    ])
    .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing.pem"),
        "{}",
        stderr(&output)
    );
    let output = spdy(&["get", "--cacert", missing, "https://127.0.0.1:1/"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("missing.pem"),
        "{}",
        stderr(&output)
    );
}
