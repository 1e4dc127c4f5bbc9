//! SPDY over TLS on loopback: ALPN picks the version (each of 3.1, 3 and 2),
//! an HTTP/1.1 client gets the same service on the same port, a client and
//! a server with no protocol in common get a typed error, and certificates
//! are checked (or, with the insecure verifier, not).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spdy::server::Pusher;
use spdy::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use spdy::tls::rustls::{self, CertificateError, RootCertStore};
use spdy::tls::{Acceptor, Connector, Protocol};
use spdy::{Error, RecvBody, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

/// A self-signed certificate for `localhost` and 127.0.0.1.
struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn self_signed() -> Cert {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    Cert {
        der: certified.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into(),
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

impl Cert {
    fn acceptor(&self) -> Acceptor {
        Acceptor::new(vec![self.der.clone()], self.key.clone_key()).unwrap()
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }

    fn connector(&self) -> Connector {
        Connector::with_roots(self.roots()).unwrap()
    }
}

/// Says how it was reached: the URI, whether the request came over SPDY
/// (SPDY requests carry a Pusher) and the body it was sent.
async fn service(mut req: Request<RecvBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let over = if req.extensions().get::<Pusher>().is_some() {
        "spdy"
    } else {
        "http/1.1"
    };
    let uri = req.uri().to_string();
    let method = req.method().clone();
    let body = req.body_mut().collect_to_vec(1 << 20).await.unwrap();
    Ok(Response::builder()
        .header("x-over", over)
        .body(Full::new(Bytes::from(format!(
            "{method} {uri} {}",
            String::from_utf8_lossy(&body)
        ))))
        .unwrap())
}

/// Serves `acceptor` on a loopback port with [`service`].
async fn start(acceptor: Acceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(spdy::tls::serve(listener, acceptor, service_fn(service)));
    addr
}

/// GET then POST with our SPDY client; returns the two answers.
async fn spdy_exchange(send: &spdy::client::Client, addr: SocketAddr) -> [String; 2] {
    let url = format!("https://localhost:{}/hello", addr.port());
    let get = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
    let mut res = timeout(LIMIT, send.send_request(get))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.headers()["x-over"], "spdy");
    let got = res.body_mut().collect_to_vec(1 << 20).await.unwrap();
    let post = Request::post(&url)
        .body(Full::new(Bytes::from_static(b"posted")))
        .unwrap();
    let mut res = timeout(LIMIT, send.send_request(post))
        .await
        .unwrap()
        .unwrap();
    let posted = res.body_mut().collect_to_vec(1 << 20).await.unwrap();
    [
        String::from_utf8(got).unwrap(),
        String::from_utf8(posted).unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_selects_each_version() {
    let cert = self_signed();
    let addr = start(cert.acceptor()).await;
    for version in [Version::V3_1, Version::V3, Version::V2] {
        let connector = cert.connector().versions(&[version]);
        let send = timeout(LIMIT, connector.connect(addr, "localhost"))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("SPDY/{version}: {e}"));
        assert_eq!(send.version(), version);
        let url = format!("https://localhost:{}/hello", addr.port());
        assert_eq!(
            spdy_exchange(&send, addr).await,
            [format!("GET {url} "), format!("POST {url} posted")],
            "SPDY/{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_preference_wins() {
    let cert = self_signed();
    let addr = start(cert.acceptor()).await;
    // Everything offered: the server prefers 3.1.
    let send = timeout(LIMIT, cert.connector().connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(send.version(), Version::V3_1);
    // 2 before 3 in the client's list: still 3, the server's choice.
    let connector = cert.connector().versions(&[Version::V2, Version::V3]);
    let send = timeout(LIMIT, connector.connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(send.version(), Version::V3);
    spdy_exchange(&send, addr).await;

    // A server offering only SPDY/2 (and HTTP/1.1) gets a 2/3/3.1 client
    // to speak 2.
    let addr = start(
        cert.acceptor()
            .protocols(&[Protocol::Spdy(Version::V2), Protocol::Http1]),
    )
    .await;
    let send = timeout(LIMIT, cert.connector().connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(send.version(), Version::V2);
    spdy_exchange(&send, addr).await;
}

/// A TLS client of our own, offering `alpn` (nothing if empty).
async fn raw_tls_client(
    cert: &Cert,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = spdy::tls::client_config(cert.roots()).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    timeout(
        LIMIT,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_gets_the_same_service() {
    let cert = self_signed();
    let addr = start(cert.acceptor()).await;
    let url = format!("https://localhost:{}/hello", addr.port());

    // ALPN http/1.1, and no ALPN at all: both are HTTP/1.1.
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let tls = raw_tls_client(&cert, addr, alpn).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            alpn.first().copied(),
            "{alpn:?}"
        );
        let (mut send, conn) = timeout(
            LIMIT,
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls)),
        )
        .await
        .unwrap()
        .unwrap();
        tokio::spawn(conn);
        for (method, body, expected) in [
            ("GET", "", format!("GET {url} ")),
            ("POST", "posted", format!("POST {url} posted")),
        ] {
            let req = Request::builder()
                .method(method)
                .uri("/hello")
                .header("host", format!("localhost:{}", addr.port()))
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            // Keep-alive: the previous exchange must be over first.
            timeout(LIMIT, send.ready()).await.unwrap().unwrap();
            let res = timeout(LIMIT, send.send_request(req))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["x-over"], "http/1.1");
            let got = timeout(LIMIT, res.into_body().collect())
                .await
                .unwrap()
                .unwrap()
                .to_bytes();
            assert_eq!(got, expected.as_bytes(), "{alpn:?} {method}");
        }
    }

    // And SPDY on the same port at the same time.
    let send = timeout(LIMIT, cert.connector().connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        spdy_exchange(&send, addr).await,
        [format!("GET {url} "), format!("POST {url} posted")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_protocol_in_common_is_a_typed_error() {
    let cert = self_signed();

    // The server offers 3.1 and HTTP/1.1; the client only 2: the server
    // refuses the handshake (no_application_protocol), both sides say why.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = cert
        .acceptor()
        .protocols(&[Protocol::Spdy(Version::V3_1), Protocol::Http1]);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor
            .accept(tcp)
            .await
            .map(|accepted| accepted.protocol())
    });
    let connector = cert.connector().versions(&[Version::V2]);
    let err = timeout(LIMIT, connector.connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSpdyProtocol { negotiated: None }),
        "{err:?}"
    );
    let server_err = timeout(LIMIT, server).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(server_err, Error::NoSpdyProtocol { negotiated: None }),
        "{server_err:?}"
    );

    // A server offering only HTTP/1.1.
    let addr = start(cert.acceptor().protocols(&[Protocol::Http1])).await;
    let err = timeout(LIMIT, cert.connector().connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSpdyProtocol { negotiated: None }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ALPN"), "{err}");

    // A server that ignores ALPN: the handshake completes, no protocol.
    let mut config =
        spdy::tls::server_config(vec![cert.der.clone()], cert.key.clone_key()).unwrap();
    config.alpn_protocols.clear();
    let addr = start(Acceptor::from_config(Arc::new(config))).await;
    let err = timeout(LIMIT, cert.connector().connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSpdyProtocol { negotiated: None }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified_unless_insecure() {
    let cert = self_signed();
    let addr = start(cert.acceptor()).await;

    // Trusting nothing: the certificate is not trusted.
    let untrusting = Connector::with_roots(RootCertStore::empty()).unwrap();
    let err = timeout(LIMIT, untrusting.connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );

    // Trusted, but for another name.
    let err = timeout(LIMIT, cert.connector().connect(addr, "elsewhere.example"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::Tls(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );

    // Trusted, by IP address too.
    let send = timeout(LIMIT, cert.connector().connect(addr, "127.0.0.1"))
        .await
        .unwrap()
        .unwrap();
    spdy_exchange(&send, addr).await;

    // Insecure: any certificate, any name, still SPDY by ALPN.
    for version in [Version::V3_1, Version::V3, Version::V2] {
        let insecure = Connector::insecure().unwrap().versions(&[version]);
        let send = timeout(LIMIT, insecure.connect(addr, "elsewhere.example"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(send.version(), version);
        spdy_exchange(&send, addr).await;
    }
}

/// A fresh folder under the system temporary folder, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "spdy-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_files() {
    let cert = self_signed();
    let dir = TempDir::new();
    let cert_path = dir.0.join("cert.pem");
    let key_path = dir.0.join("key.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();

    let acceptor = Acceptor::from_pem_files(&cert_path, &key_path).unwrap();
    let addr = start(acceptor).await;
    let connector = Connector::with_ca_file(&cert_path).unwrap();
    let send = timeout(LIMIT, connector.connect(addr, "localhost"))
        .await
        .unwrap()
        .unwrap();
    spdy_exchange(&send, addr).await;

    // The wrong file for each, and a missing one: errors naming the file.
    let err = Acceptor::from_pem_files(&key_path, &key_path).unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
    let err = Acceptor::from_pem_files(&cert_path, &cert_path).unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
    let missing = dir.0.join("missing.pem");
    let err = Connector::with_ca_file(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key of another certificate.
    let other = self_signed();
    std::fs::write(&key_path, &other.key_pem).unwrap();
    let err = Acceptor::from_pem_files(&cert_path, &key_path).unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");

    assert_eq!(spdy::tls::fingerprint_sha256(&cert.der).len(), 32 * 3 - 1);
    assert_ne!(
        spdy::tls::fingerprint_sha256(&cert.der),
        spdy::tls::fingerprint_sha256(&other.der)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_times_out() {
    let cert = self_signed();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = cert
        .acceptor()
        .handshake_timeout(Duration::from_millis(200));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor
            .accept(tcp)
            .await
            .map(|accepted| accepted.protocol())
    });
    // Connected, and never says a word.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let err = timeout(LIMIT, server).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{err:?}"
    );
    let _ = tcp.shutdown().await;
}
