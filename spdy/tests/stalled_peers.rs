//! What an idle connection costs a server, and how long a stalled one is
//! kept: the stated bound is 16 KiB of heap per idle plain-TCP connection
//! (session, driver, task), and each wait on a peer ends at its timeout.

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use hyper::service::service_fn;
use spdy::proto::codec::FrameEncoder;
use spdy::proto::frame::{Frame, Ping, Settings, StreamId, SynStream};
use spdy::proto::header_block::HeaderBlock;
use spdy::{RecvBody, Version};
use tokio::net::TcpListener;

/// Heap per idle connection, the bound the README states.
const IDLE_BOUND: usize = 16 * 1024;
const CONNECTIONS: usize = 300;

async fn hello(_req: Request<RecvBody>) -> Result<Response<String>, std::convert::Infallible> {
    Ok(Response::new("hello".to_owned()))
}

/// A client's opening, SETTINGS and a PING, encoded once.
fn opening() -> Vec<u8> {
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let mut wire = BytesMut::new();
    encoder
        .encode(&Frame::Settings(Settings::new(vec![])), &mut wire)
        .unwrap();
    encoder
        .encode(&Frame::Ping(Ping::new(1)), &mut wire)
        .unwrap();
    wire.to_vec()
}

/// Heap the server holds per connection once `CONNECTIONS` clients have
/// each sent `opening` (ending with a PING), had its answer (and, with
/// `request`, the "hello" a request gets), and wait.
fn held_per_idle_connection(opening: Vec<u8>, request: bool) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Vec<StdTcpStream>>();
    // The clients, on their own thread with blocking sockets (no heap of
    // ours): each opens, pings, and waits for the answer, then stays idle.
    let clients = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut s = StdTcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&opening).unwrap();
            sockets.push(s);
        }
        for s in &mut sockets {
            // The server's SETTINGS (and session window) and the PING
            // answer: read until the 12-byte PING frame has come.
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            // The PING's answer is owed, so it may come before a reply:
            // a request's answer ends with "hello" (the DATA with FIN).
            while !got.windows(4).any(|w| w == [0x80, 0x03, 0x00, 0x06])
                || (request && !got.windows(5).any(|w| w == b"hello"))
            {
                let n = s.read(&mut buf).expect("the server answers");
                assert!(n > 0, "the server closed an idle connection early");
                got.extend_from_slice(&buf[..n]);
            }
        }
        let _ = done_tx.send(sockets);
    });
    let mut sockets = None;
    let info = allocation_counter::measure(|| {
        rt.block_on(async {
            let builder = spdy::server::Builder::new();
            let deadline = tokio::time::sleep(Duration::from_secs(60));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (tcp, _) = accepted.unwrap();
                        let builder = builder.clone();
                        tokio::spawn(async move {
                            let _ = builder.serve_connection(tcp, service_fn(hello)).await;
                        });
                    }
                    got = &mut done_rx => {
                        sockets = Some(got.expect("the clients finished"));
                        break;
                    }
                    () = &mut deadline => panic!("the clients did not finish in 60 s"),
                }
            }
            // Let every connection settle into waiting.
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        });
    });
    clients.join().unwrap();
    drop(sockets);
    info.bytes_current as usize / CONNECTIONS
}

#[test]
fn an_idle_connection_costs_at_most_16_kib() {
    let per_connection = held_per_idle_connection(opening(), false);
    eprintln!("an idle connection holds {per_connection} bytes");
    assert!(
        per_connection <= IDLE_BOUND,
        "{per_connection} bytes per idle connection, over the {IDLE_BOUND} bound"
    );
}

/// After one request, the session keeps its inflate stream (the 32 KiB
/// window the protocol gives it, about 46 KiB in all); a server's replies
/// go out as stored blocks and keep no deflate stream.
#[test]
fn a_connection_idle_after_a_request_costs_at_most_64_kib() {
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let mut wire = BytesMut::new();
    let request: HeaderBlock = [
        (":method", "GET"),
        (":path", "/"),
        (":version", "HTTP/1.1"),
        (":host", "localhost"),
        (":scheme", "http"),
    ]
    .into_iter()
    .collect();
    let syn = SynStream {
        fin: true,
        ..SynStream::new(StreamId::new(1).unwrap(), request)
    };
    encoder.encode(&Frame::SynStream(syn), &mut wire).unwrap();
    encoder
        .encode(&Frame::Ping(Ping::new(1)), &mut wire)
        .unwrap();
    let per_connection = held_per_idle_connection(wire.to_vec(), true);
    eprintln!("a connection idle after one request holds {per_connection} bytes");
    assert!(
        per_connection <= 64 * 1024,
        "{per_connection} bytes per connection idle after a request, over 64 KiB"
    );
}

/// Serves one connection with short timeouts and returns the client's
/// socket once the server has it.
async fn stalled_server(
    config: spdy::Config,
) -> (
    tokio::net::TcpStream,
    tokio::task::JoinHandle<Result<(), spdy::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let server = tokio::spawn(async move {
        spdy::server::Builder::new()
            .config(config)
            .serve_connection(tcp, service_fn(hello))
            .await
    });
    (client, server)
}

/// Reads until the server closes; what it sent before.
async fn read_to_close(client: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut got))
        .await
        .expect("the server closes a stalled connection")
        .expect("a clean close");
    got
}

#[tokio::test]
async fn a_silent_socket_is_closed_at_the_first_frame_timeout() {
    let config =
        spdy::server::default_config().with_first_frame_timeout(Some(Duration::from_millis(300)));
    let (mut client, server) = stalled_server(config).await;
    let started = tokio::time::Instant::now();
    // The version is not known yet: nothing can be said, the socket goes.
    assert!(read_to_close(&mut client).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            &result,
            Err(spdy::Error::Session(
                spdy::proto::session::SessionError::Stalled(
                    spdy::proto::session::Stall::FirstFrame
                )
            ))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn half_a_frame_is_answered_with_goaway_at_the_frame_timeout() {
    use tokio::io::AsyncWriteExt;
    let config =
        spdy::server::default_config().with_frame_timeout(Some(Duration::from_millis(300)));
    let (mut client, server) = stalled_server(config).await;
    let mut wire = opening();
    // A whole SETTINGS and PING, then 5 bytes of a SYN_STREAM header.
    wire.extend_from_slice(&[0x80, 0x03, 0x00, 0x01, 0x00]);
    client.write_all(&wire).await.unwrap();
    let got = read_to_close(&mut client).await;
    // The last frame before the close is GOAWAY PROTOCOL_ERROR (status 1).
    let goaway = [0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08];
    let at = got
        .windows(8)
        .position(|w| w == goaway)
        .expect("a GOAWAY before the close");
    assert_eq!(&got[at + 12..at + 16], &[0, 0, 0, 1], "PROTOCOL_ERROR");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            &result,
            Err(spdy::Error::Session(
                spdy::proto::session::SessionError::Stalled(
                    spdy::proto::session::Stall::PartialFrame
                )
            ))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_idle_session_goes_away_with_status_ok() {
    use tokio::io::AsyncWriteExt;
    let config = spdy::server::default_config().with_idle_timeout(Some(Duration::from_millis(300)));
    let (mut client, server) = stalled_server(config).await;
    client.write_all(&opening()).await.unwrap();
    let got = read_to_close(&mut client).await;
    let goaway = [0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08];
    let at = got
        .windows(8)
        .position(|w| w == goaway)
        .expect("a GOAWAY before the close");
    assert_eq!(&got[at + 12..at + 16], &[0, 0, 0, 0], "OK");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

/// An endless body that says when the server lets go of it.
struct Endless(Option<tokio::sync::oneshot::Sender<()>>);

impl http_body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            &[7; 16 * 1024],
        )))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_response_nobody_reads_is_reset_at_the_send_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
    let dropped_tx = std::sync::Mutex::new(Some(dropped_tx));
    let service = std::sync::Arc::new(dropped_tx);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = move |_req: Request<RecvBody>| {
            let tx = service.lock().unwrap().take();
            async move { Ok::<_, std::convert::Infallible>(Response::new(Endless(tx))) }
        };
        let _ = spdy::server::Builder::new()
            .send_timeout(Some(Duration::from_millis(300)))
            .serve_connection(tcp, service_fn(service))
            .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .handshake(tcp);
    tokio::spawn(conn);
    let request = Request::get("http://localhost/endless")
        .body(String::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), send.send_request(request))
        .await
        .unwrap()
        .unwrap();
    // Read nothing until the server has given up on the body.
    tokio::time::timeout(Duration::from_secs(10), dropped_rx)
        .await
        .expect("the server resets a response nobody reads")
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0;
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), body.data())
            .await
            .unwrap()
        {
            Some(Ok(data)) => received += data.len(),
            Some(Err(e)) => break e,
            None => panic!("the body ended cleanly after {received} bytes"),
        }
    };
    // What the window let through, then the reset.
    assert!(received <= 64 * 1024, "{received} bytes");
    assert!(
        matches!(
            &error,
            spdy::Error::Stream(spdy::proto::session::StreamError::Reset { status, .. })
                if *status == spdy::RstStatus::Cancel
        ),
        "{error:?}"
    );
}

/// A request body that sends one piece and then nothing, ever.
struct OnePieceThenSilence(bool);

impl http_body::Body for OnePieceThenSilence {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"first piece",
        )))))
    }
}

#[tokio::test]
async fn a_request_body_that_stops_ends_at_the_recv_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    let result_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(result_tx)));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = move |mut req: Request<RecvBody>| {
            let tx = result_tx.lock().unwrap().take();
            async move {
                let result = req.body_mut().collect_to_vec(1 << 20).await;
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            }
        };
        let _ = spdy::server::Builder::new()
            .recv_timeout(Some(Duration::from_millis(300)))
            .serve_connection(tcp, service_fn(service))
            .await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .handshake(tcp);
    tokio::spawn(conn);
    let request = Request::post("http://localhost/upload")
        .body(OnePieceThenSilence(false))
        .unwrap();
    let response = tokio::spawn(async move { send.send_request(request).await });
    let result = tokio::time::timeout(Duration::from_secs(10), result_rx)
        .await
        .expect("the server's read of the body ends")
        .unwrap();
    assert!(
        matches!(result, Err(spdy::Error::RecvTimeout(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    // The client learns that its stream was reset.
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("the client's request ends")
        .unwrap();
    assert!(
        matches!(
            &response,
            Err(spdy::Error::Stream(spdy::proto::session::StreamError::Reset { status, .. }))
                if *status == spdy::RstStatus::Cancel
        ),
        "{response:?}"
    );
}
