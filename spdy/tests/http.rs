//! HTTP over SPDY between our client and our server on loopback TCP, in
//! every version: requests and responses with streaming bodies, many at
//! once, trailers, push, HEAD, and bad requests.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use spdy::client::SendRequest;
use spdy::server::Pusher;
use spdy::{RecvBody, Version};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

async fn service(mut req: Request<RecvBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/echo" => {
            let body = req.body_mut().collect_to_vec(64 << 20).await;
            let checksum = req
                .body()
                .trailers()
                .and_then(|t| t.get("x-checksum").cloned())
                .unwrap_or(http::HeaderValue::from_static("none"));
            Ok(match body {
                Ok(body) => Response::builder()
                    .header("x-len", body.len())
                    .header("x-trailer-seen", checksum)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
                Err(e) => Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Full::new(Bytes::from(e.to_string())))
                    .unwrap(),
            })
        }
        "/push" => {
            let pusher = req.extensions().get::<Pusher>().unwrap().clone();
            pusher
                .push(
                    "http://test/style.css".parse().unwrap(),
                    Response::builder()
                        .header("content-type", "text/css")
                        .body(Full::new(Bytes::from_static(b"body{}")))
                        .unwrap(),
                )
                .unwrap();
            Ok(Response::new(Full::new(Bytes::from_static(b"page"))))
        }
        _ => Ok(Response::builder()
            .header("content-type", "text/plain")
            .header("content-length", path.len() + 6)
            .body(Full::new(Bytes::from(format!("hello {path}"))))
            .unwrap()),
    }
}

async fn connect(version: Version) -> SendRequest {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = spdy::server::serve_connection(tcp, service_fn(service)).await;
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = spdy::client::Builder::new()
        .version(version)
        .enable_push(true)
        .handshake(tcp);
    tokio::spawn(conn);
    send
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_post_and_many_at_once_in_every_version() {
    for version in Version::ALL {
        timeout(LIMIT, async {
            let client = connect(version).await;
            let res = client
                .send_request(
                    Request::get("http://test/a?b=c")
                        .body(Empty::<Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "text/plain");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello /a");

            // A streamed upload of 4 MiB, echoed back.
            let payload = pattern(4 << 20);
            let body = Chunks {
                pieces: payload
                    .chunks(100_000)
                    .map(Bytes::copy_from_slice)
                    .collect(),
                trailers: None,
            };
            let req = Request::post("http://test/echo")
                .header("content-length", payload.len())
                .body(body)
                .unwrap();
            let res = client.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200, "{version}");
            let echoed = res.into_body().collect().await.unwrap().to_bytes();
            assert!(echoed[..] == payload[..], "{version}: echo differs");

            // 100 requests at once.
            let mut tasks = Vec::new();
            for i in 0..100 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let req = Request::get(format!("http://test/{i}"))
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let res = client.send_request(req).await.unwrap();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, format!("hello /{i}"));
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert!(client.ping().await.unwrap() < LIMIT);
        })
        .await
        .unwrap_or_else(|_| panic!("{version} timed out"));
    }
}

/// A body sent in pieces, each a separate frame, with optional trailers.
struct Chunks {
    pieces: std::collections::VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let frame = match self.pieces.pop_front() {
            Some(piece) => Some(http_body::Frame::data(piece)),
            None => self.trailers.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_trailers_head_and_bad_lengths() {
    for version in Version::ALL {
        timeout(LIMIT, async {
            let client = connect(version).await;
            // Server push: the pushed stream arrives with its URL.
            let res = client
                .send_request(
                    Request::get("http://test/push")
                        .body(Empty::<Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            let pushed = client.accept_push().await.unwrap().unwrap();
            assert_eq!(pushed.request.uri.path(), "/style.css", "{version}");
            assert_eq!(pushed.response.headers()["content-type"], "text/css");
            let css = pushed
                .response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&css[..], b"body{}");
            let page = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&page[..], b"page");

            // Trailers on a request body reach the server (its echo of
            // the body still arrives whole).
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-checksum", "abc".parse().unwrap());
            let body = Chunks {
                pieces: [Bytes::from_static(b"12345")].into(),
                trailers: Some(trailers),
            };
            let res = client
                .send_request(Request::post("http://test/echo").body(body).unwrap())
                .await
                .unwrap();
            assert_eq!(res.headers()["x-trailer-seen"], "abc", "{version}");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"12345");

            // HEAD: headers only.
            let res = client
                .send_request(
                    Request::head("http://test/x")
                        .body(Empty::<Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.headers()["content-length"], "8");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert!(body.is_empty(), "{version}");

            // A body shorter than its Content-Length is refused with 400.
            let req = Request::post("http://test/echo")
                .header("content-length", "10")
                .body(Full::new(Bytes::from_static(b"short")))
                .unwrap();
            let res = client.send_request(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{version}");
        })
        .await
        .unwrap_or_else(|_| panic!("{version} timed out"));
    }
}

/// A request the client gives up on before the answer: its stream is
/// reset, and the server drops the service's future (the work stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_request_drops_its_service_future() {
    use std::sync::Arc;
    use tokio::sync::Notify;

    /// Notifies when dropped.
    struct Guard(Arc<Notify>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.notify_one();
        }
    }

    for version in Version::ALL {
        let (started, dropped) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (s, d) = (started.clone(), dropped.clone());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = move |_req: Request<RecvBody>| {
                let (started, guard) = (s.clone(), Guard(d.clone()));
                async move {
                    let _guard = guard;
                    started.notify_one();
                    // An answer that never comes.
                    std::future::pending::<()>().await;
                    Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
                }
            };
            let _ = spdy::server::serve_connection(tcp, service_fn(service)).await;
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = spdy::client::Builder::new().version(version).handshake(tcp);
        tokio::spawn(conn);
        let request = Request::get("http://test/slow")
            .body(Empty::<Bytes>::new())
            .unwrap();
        // The session stays (this clone): only the stream is reset.
        let session = send.clone();
        let pending = tokio::spawn(async move { send.send_request(request).await });
        timeout(LIMIT, started.notified()).await.unwrap();
        pending.abort();
        timeout(LIMIT, dropped.notified())
            .await
            .unwrap_or_else(|_| panic!("SPDY/{version}: the service still runs"));
        drop(session);
    }
}

/// A request body that fails mid-way: `send_request` returns the body's
/// error at once (it used to wait forever for a reply to a stream it had
/// reset itself), and the session still serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_failing_mid_way_ends_send_request() {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// One chunk of data, then an error.
    struct Breaks(bool);
    impl http_body::Body for Breaks {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Ready(Some(Err(std::io::Error::other("cut"))));
            }
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(pattern(1000))))))
        }
    }

    for version in Version::ALL {
        let send = connect(version).await;
        let request = Request::post("http://test/echo")
            .body(Breaks(false))
            .unwrap();
        match timeout(LIMIT, send.send_request(request)).await {
            Ok(Err(spdy::Error::Body(e))) => assert_eq!(e.to_string(), "cut"),
            Ok(other) => panic!("SPDY/{version}: {other:?}"),
            Err(_) => panic!("SPDY/{version}: send_request never returned"),
        }
        let request = Request::get("http://test/after").body(Empty::<Bytes>::new());
        let response = timeout(LIMIT, send.send_request(request.unwrap())).await;
        assert_eq!(response.unwrap().unwrap().status(), StatusCode::OK);
    }
}
