//! `SendRequest` as a tower `Service`: `poll_ready` is ready only when a
//! request would go out at once, against a server that allows one stream
//! at a time.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::service::service_fn;
use spdy::client::{Builder, Client};
use spdy::{Config, RecvBody, Version};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::timeout;
use tower::{Service, ServiceExt};

const LIMIT: Duration = Duration::from_secs(30);

/// A server with MAX_CONCURRENT_STREAMS 1 whose `/hold` answers only once
/// the returned sender fires.
async fn one_stream_server() -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, held) = oneshot::channel::<()>();
    let held = Arc::new(Mutex::new(Some(held)));
    let service = service_fn(move |req: Request<RecvBody>| {
        let held = held.clone();
        async move {
            if req.uri().path() == "/hold" {
                let wait = held.lock().unwrap().take();
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                req.uri().path().to_owned(),
            ))))
        }
    });
    let server = spdy::server::Builder::new()
        .version(Version::V3_1)
        .config(spdy::server::default_config().with_max_concurrent_streams(1));
    tokio::spawn(async move { server.serve(listener, service).await });
    (addr, release)
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://test{path}"))
        .body(Empty::new())
        .unwrap()
}

async fn body_of(res: Response<RecvBody>) -> String {
    let mut res = res;
    let body = timeout(LIMIT, res.body_mut().collect_to_vec(1 << 20))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn poll_ready_waits_for_the_servers_one_stream() {
    let (addr, release) = one_stream_server().await;
    let client = timeout(LIMIT, Client::connect(addr, Builder::new()))
        .await
        .unwrap()
        .unwrap();
    let mut svc = client.as_send_request().clone();

    // A first exchange: the server's SETTINGS (MAX_CONCURRENT_STREAMS 1)
    // come before its first reply, so they are known after it.
    let res = timeout(LIMIT, svc.clone().oneshot(get("/quick")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_of(res).await, "/quick");

    // The one stream is free: ready, and the call takes it at once.
    timeout(LIMIT, ServiceExt::<Request<Empty<Bytes>>>::ready(&mut svc))
        .await
        .unwrap()
        .unwrap();
    let held = svc.call(get("/hold"));

    // Now nothing may go out: pending, without polling the held request.
    let first = poll_fn(|cx| Poll::Ready(svc.poll_ready(cx))).await;
    assert!(first.is_pending(), "ready with the one stream taken");
    let mut other = client.as_send_request().clone();
    let mut waiting = Box::pin(async move { other.ready().await });
    assert!(poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx)))
        .await
        .is_pending());
    // A round trip later (the server has seen the held request) it is
    // still pending: the slot is taken, not merely unconfirmed.
    timeout(LIMIT, client.as_send_request().ping())
        .await
        .unwrap()
        .unwrap();
    assert!(poll_fn(|cx| Poll::Ready(svc.poll_ready(cx)))
        .await
        .is_pending());

    // The first request finishes: the waiting task is woken (not polled
    // again by hand) and the second request goes through tower's oneshot.
    release.send(()).unwrap();
    let res = timeout(LIMIT, held).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "/hold");
    timeout(LIMIT, waiting).await.unwrap().unwrap();
    let res = timeout(LIMIT, svc.clone().oneshot(get("/second")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_of(res).await, "/second");

    // Once the session goes away, readiness is an error, not a wait.
    client.as_send_request().handle().go_away();
    // (With no stream open the session is over at once: closed.)
    let err = timeout(LIMIT, svc.ready()).await.unwrap();
    assert!(err.is_err(), "ready after GOAWAY");
    drop(svc);
    timeout(LIMIT, client.shutdown()).await.unwrap().unwrap();
}

#[tokio::test]
async fn dropping_the_request_that_holds_the_slot_wakes_a_waiter() {
    let (addr, _release) = one_stream_server().await;
    let client = timeout(LIMIT, Client::connect(addr, Builder::new()))
        .await
        .unwrap()
        .unwrap();
    let mut svc = client.as_send_request().clone();
    let res = timeout(LIMIT, svc.clone().oneshot(get("/quick")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_of(res).await, "/quick");
    let held = svc.call(get("/hold"));
    let mut waiting = Box::pin(async move { svc.ready().await });
    assert!(poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx)))
        .await
        .is_pending());
    // Giving up on the held request cancels its stream (RST_STREAM
    // CANCEL), which frees the slot on our side at once.
    drop(held);
    timeout(LIMIT, waiting).await.unwrap().unwrap();
    drop(client);
}

#[tokio::test]
async fn client_is_a_tower_service_too() {
    let (addr, _release) = one_stream_server().await;
    let mut client = timeout(LIMIT, Builder::new().version(Version::V3).connect(addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.version(), Version::V3);
    let res = timeout(
        LIMIT,
        ServiceExt::<Request<Empty<Bytes>>>::ready(&mut client),
    )
    .await
    .unwrap()
    .unwrap()
    .call(get("/a"))
    .await
    .unwrap();
    assert_eq!(body_of(res).await, "/a");
    timeout(LIMIT, client.shutdown()).await.unwrap().unwrap();
}

#[test]
fn builder_defaults_are_the_named_constants() {
    use spdy::client::*;
    let builder = Builder::new();
    let config: &Config = builder.get_config();
    assert_eq!(
        config.max_concurrent_streams(),
        DEFAULT_MAX_CONCURRENT_STREAMS
    );
    assert_eq!(config.accept_push(), DEFAULT_ENABLE_PUSH);
    assert_eq!(config.keepalive(), DEFAULT_KEEPALIVE);
    assert_eq!(config.idle_timeout(), DEFAULT_IDLE_TIMEOUT);
    assert_eq!(
        config.decode_limits().max_header_block_len(),
        DEFAULT_MAX_HEADER_BLOCK
    );
    // A whole Config replaces the limits but not the push choice.
    let builder = Builder::new()
        .enable_push(true)
        .config(Config::default().with_accept_push(false))
        .max_concurrent_streams(7)
        .max_header_block(1000)
        .keepalive(Some((Duration::from_secs(5), Duration::from_secs(1))));
    let config = builder.get_config();
    assert!(config.accept_push());
    assert_eq!(config.max_concurrent_streams(), 7);
    assert_eq!(config.decode_limits().max_header_block_len(), 1000);
    assert_eq!(
        config.keepalive(),
        Some((Duration::from_secs(5), Duration::from_secs(1)))
    );
}
