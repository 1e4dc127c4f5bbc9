//! An axum `Router` under a tower-http layer, served as it is (through
//! hyper-util's tower adapter) over SPDY/2, 3 and 3.1 on plain TCP, and
//! over TLS with ALPN (SPDY/3.1 and the HTTP/1.1 fallback on the same
//! port): routes, path parameters and request bodies reach axum, the
//! layer's header is on every answer (axum's 404 too), and server push is
//! reachable from a handler through the request's extensions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use spdy::client::SendRequest;
use spdy::server::Pusher;
use spdy::tls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use spdy::tls::rustls::RootCertStore;
use spdy::tls::Acceptor;
use spdy::{RecvBody, Version};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tower_http::set_header::SetResponseHeaderLayer;

const LIMIT: Duration = Duration::from_secs(30);
const STYLE: &str = "h1 { color: tomato }";

/// The application: plain axum, nothing SPDY-specific but the optional
/// push on `/page`.
fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello from axum" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/page", get(page))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("tower-http"),
        ))
}

/// Pushes the stylesheet when the request came over SPDY (a [`Pusher`] in
/// its extensions); says in the body whether it did.
async fn page(pusher: Option<Extension<Pusher>>, uri: Uri) -> String {
    let Some(Extension(pusher)) = pusher else {
        return "page, no push".to_owned();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return format!("page, no push: {uri} is not absolute");
    };
    let style = Response::builder()
        .header(CONTENT_TYPE, "text/css")
        .body(Full::new(Bytes::from_static(STYLE.as_bytes())))
        .unwrap();
    let target = format!("{scheme}://{authority}/style.css");
    match pusher.push(target.parse().unwrap(), style) {
        Ok(()) => "page, pushed".to_owned(),
        Err(e) => format!("page, push failed: {e}"),
    }
}

/// One answer: status, the layer's header, the body.
async fn fetch(
    send: &SendRequest,
    method: &str,
    url: &str,
    body: &'static str,
) -> (StatusCode, Option<HeaderValue>, String) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let mut res = timeout(LIMIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let got = timeout(LIMIT, res.body_mut().collect_to_vec(1 << 20))
        .await
        .unwrap()
        .unwrap();
    (
        res.status(),
        res.headers().get("x-served-by").cloned(),
        String::from_utf8(got).unwrap(),
    )
}

/// Every route, and a push, over one SPDY session; `base` is the URL
/// prefix the requests use.
async fn exercise(send: &SendRequest, base: &str, version: Version) {
    let layer = Some(HeaderValue::from_static("tower-http"));
    let cases = [
        ("GET", "/hello", "", StatusCode::OK, "hello from axum"),
        ("GET", "/users/42", "", StatusCode::OK, "user 42"),
        (
            "POST",
            "/echo",
            "sent over spdy",
            StatusCode::OK,
            "sent over spdy",
        ),
        ("GET", "/nowhere", "", StatusCode::NOT_FOUND, ""),
    ];
    for (method, path, body, status, expected) in cases {
        let got = fetch(send, method, &format!("{base}{path}"), body).await;
        assert_eq!(
            got,
            (status, layer.clone(), expected.to_owned()),
            "SPDY/{version} {method} {path}"
        );
    }

    // The page, and the stylesheet its handler pushed.
    let req = Request::get(format!("{base}/page"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (res, pushed) = timeout(LIMIT, async {
        tokio::join!(send.send_request(req), send.accept_push())
    })
    .await
    .unwrap();
    let res = res.unwrap();
    assert_eq!(res.headers().get("x-served-by"), layer.as_ref());
    let body = timeout(LIMIT, res.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(body, "page, pushed", "SPDY/{version}");
    let pushed = pushed.unwrap().unwrap();
    assert_eq!(pushed.request.uri.path(), "/style.css", "SPDY/{version}");
    assert_eq!(pushed.response.headers()[CONTENT_TYPE], "text/css");
    let css = timeout(LIMIT, pushed.response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(css, STYLE, "SPDY/{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_router_with_a_tower_http_layer_over_each_version() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        spdy::server::Builder::new()
            .serve(listener, TowerToHyperService::new(app()))
            .await
    });
    for version in [Version::V2, Version::V3, Version::V3_1] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = spdy::client::Builder::new()
            .version(version)
            .enable_push(true)
            .handshake(tcp);
        tokio::spawn(conn);
        exercise(&send, &format!("http://{addr}"), version).await;
    }
    assert!(!server.is_finished(), "the accept loop stopped");
    server.abort();
}

/// A self-signed certificate for `localhost`: the acceptor, and the roots
/// a client trusts it with.
fn tls_pair() -> (Acceptor, RootCertStore) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into();
    let mut roots = RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    (Acceptor::new(vec![der], key).unwrap(), roots)
}

async fn start_tls(acceptor: Acceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(spdy::tls::serve(
        listener,
        acceptor,
        TowerToHyperService::new(app()),
    ));
    addr
}

/// A TLS connection to `addr` offering `alpn`.
async fn tls_client(
    addr: SocketAddr,
    roots: RootCertStore,
    alpn: &[&[u8]],
) -> spdy::tls::ClientTlsStream<TcpStream> {
    let mut config = spdy::tls::client_config(roots).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_router_over_tls_spdy_by_alpn() {
    let (acceptor, roots) = tls_pair();
    let addr = start_tls(acceptor).await;
    // Offers what tls::Connector offers; the server picks its first choice.
    // (The session is started by hand on this test's own TLS stream, so
    // that ALPN's pick is checked first.)
    let tls = tls_client(addr, roots, &[b"spdy/3.1", b"spdy/3", b"spdy/2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"spdy/3.1"[..]));
    let (send, conn) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .enable_push(true)
        .handshake(tls);
    tokio::spawn(conn);
    exercise(
        &send,
        &format!("https://localhost:{}", addr.port()),
        Version::V3_1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_router_over_tls_http1() {
    let (acceptor, roots) = tls_pair();
    let addr = start_tls(acceptor).await;
    let tls = tls_client(addr, roots, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = timeout(
        LIMIT,
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls)),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::spawn(conn);
    let host = format!("localhost:{}", addr.port());
    for (method, path, body, status, expected) in [
        ("GET", "/users/7", "", StatusCode::OK, "user 7"),
        (
            "POST",
            "/echo",
            "sent over http/1.1",
            StatusCode::OK,
            "sent over http/1.1",
        ),
        // No Pusher on HTTP/1.1: the handler sees none.
        ("GET", "/page", "", StatusCode::OK, "page, no push"),
        ("GET", "/nowhere", "", StatusCode::NOT_FOUND, ""),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &host)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        timeout(LIMIT, send.ready()).await.unwrap().unwrap();
        let res = timeout(LIMIT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status(), status, "{method} {path}");
        assert_eq!(
            res.headers()["x-served-by"],
            "tower-http",
            "{method} {path}"
        );
        let got = timeout(LIMIT, res.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(got, expected.as_bytes(), "{method} {path}");
    }
}

/// A closure still serves, through `service_fn`, and sees the same
/// request type an axum handler does.
#[tokio::test]
async fn a_closure_through_service_fn() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper::service::service_fn(|req: Request<RecvBody>| async move {
        let pushable = req.extensions().get::<Pusher>().is_some();
        Ok::<_, std::convert::Infallible>(Response::new(format!("{} {pushable}", req.uri().path())))
    });
    tokio::spawn(async move { spdy::server::Builder::new().serve(listener, service).await });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = spdy::client::Builder::new()
        .version(Version::V3)
        .handshake(tcp);
    tokio::spawn(conn);
    let got = fetch(&send, "GET", &format!("http://{addr}/x"), "").await;
    assert_eq!(got, (StatusCode::OK, None, "/x true".to_owned()));
}
