//! Edge cases of the tokio driver and the stream / HTTP API that once went
//! wrong: each test states the behaviour a hyper/h2 user (or the project's
//! standards) expects. In-memory duplex pipes, short timeouts: a hang shows
//! up as a timeout, never as a stuck test.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spdy::proto::frame::{Frame, Ping, SynStream};
use spdy::proto::header_block::HeaderBlock;
use spdy::proto::session::RateLimit;
use spdy::proto::FrameEncoder;
use spdy::{Config, Error, OpenOptions, Role, StreamId, Version};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::time::timeout;

/// How long an operation that should complete at once may take before it
/// counts as hung.
const HANG: Duration = Duration::from_secs(2);

fn request() -> HeaderBlock {
    [
        (":method", "GET"),
        (":path", "/"),
        (":version", "HTTP/1.1"),
        (":host", "test"),
        (":scheme", "http"),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.to_owned()))
    .collect()
}

fn status(extra: &[(&str, &str)]) -> HeaderBlock {
    [(":status", "200 OK"), (":version", "HTTP/1.1")]
        .iter()
        .chain(extra.iter())
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn push_block(path: &str) -> HeaderBlock {
    [
        (":scheme", "http"),
        (":host", "test"),
        (":path", path),
        (":status", "200"),
        (":version", "HTTP/1.1"),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.to_owned()))
    .collect()
}

/// A client and a server session over an in-memory pipe, drivers spawned.
fn pair(version: Version, client: Config, server: Config) -> (spdy::Handle, spdy::Handle) {
    let (a, b) = tokio::io::duplex(4 << 20);
    let (ch, cconn) = spdy::handshake(a, Role::Client, version, client);
    let (sh, sconn) = spdy::handshake(b, Role::Server, version, server);
    tokio::spawn(cconn);
    tokio::spawn(sconn);
    (ch, sh)
}

fn fin() -> OpenOptions {
    OpenOptions {
        fin: true,
        ..Default::default()
    }
}

/// Lets every other task of this (single-threaded) runtime run until it
/// waits.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Writes raw frames to `io` (a scripted peer).
async fn write_frames(io: &mut DuplexStream, enc: &mut FrameEncoder, frames: &[Frame]) {
    let mut wire = BytesMut::new();
    for f in frames {
        enc.encode(f, &mut wire).unwrap();
    }
    io.write_all(&wire).await.unwrap();
}

// ===== lost wake-ups and hangs =====

/// `Handle` is Clone: two tasks awaiting `accept` at once are both woken
/// (each waiter keeps its own waker), for streams and for the close.
#[tokio::test]
async fn two_tasks_accepting_on_cloned_handles_both_get_streams() {
    let (client, server) = pair(Version::V3_1, Config::default(), Config::default());
    let (s1, s2) = (server.clone(), server.clone());
    // On this single-threaded runtime, yielding runs each spawned task up
    // to its first wait: both are waiting in `accept` before any stream.
    let first = tokio::spawn(async move { s1.accept().await.map(|i| i.id()) });
    settle().await;
    let second = tokio::spawn(async move { s2.accept().await.map(|i| i.id()) });
    settle().await;

    // Each task gets one of the two streams; which gets which is not
    // specified, only that neither is forgotten.
    let _one = client.open_stream(request(), fin()).unwrap();
    let _two = client.open_stream(request(), fin()).unwrap();
    let got = timeout(HANG, async { (first.await, second.await) }).await;
    let Ok((Ok(Some(a)), Ok(Some(b)))) = got else {
        panic!("an accepting task was never woken (its waker was overwritten): {got:?}");
    };
    assert_ne!(a, b);
}

/// A dropped connection future (task aborted, runtime shutting down, a
/// `select!` that dropped it) fails every waiting handle operation, as h2
/// does, instead of leaving it waiting forever.
#[tokio::test]
async fn dropping_the_connection_fails_waiting_streams() {
    let (a, _b) = tokio::io::duplex(1 << 16);
    let (client, conn) = spdy::handshake(a, Role::Client, Version::V3_1, Config::default());
    let (_send, mut recv) = client.open_stream(request(), fin()).unwrap();
    drop(conn);
    let reply = timeout(HANG, recv.reply()).await;
    assert!(
        matches!(reply, Ok(Err(_))),
        "reply() after the connection was dropped: {reply:?} (Err(Elapsed) = hung)"
    );
    let ping = timeout(HANG, client.ping()).await;
    assert!(
        matches!(ping, Ok(Err(_))),
        "ping() after the connection was dropped: {ping:?}"
    );
}

/// At most 64 PINGs may await an answer: a 65th is refused at once with
/// `UserError::TooManyPings` rather than an outstanding one forgotten
/// (whose `Handle::ping` would then wait until the connection ends).
#[tokio::test]
async fn sixty_five_concurrent_pings_all_complete() {
    let (client, _server) = pair(Version::V3_1, Config::default(), Config::default());
    let mut pings: Vec<_> = (0..64).map(|_| Box::pin(client.ping())).collect();
    poll_fn(|cx| {
        for p in pings.iter_mut() {
            assert!(p.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    let extra = timeout(HANG, client.ping()).await;
    assert!(
        matches!(
            extra,
            Ok(Err(Error::User(
                spdy::proto::session::UserError::TooManyPings
            )))
        ),
        "a 65th concurrent ping: {extra:?}"
    );
    let all = timeout(HANG, async {
        for p in pings {
            p.await?;
        }
        Ok::<(), Error>(())
    })
    .await;
    assert!(matches!(all, Ok(Ok(()))), "the 64 others: {all:?}");
}

/// Control: 64 concurrent pings do complete.
#[tokio::test]
async fn control_sixty_four_concurrent_pings_complete() {
    concurrent_pings_complete(64).await;
}

async fn concurrent_pings_complete(n: usize) {
    let (client, _server) = pair(Version::V3_1, Config::default(), Config::default());
    let mut pings: Vec<_> = (0..n).map(|_| Box::pin(client.ping())).collect();
    // Start all 65 before any answer can arrive.
    poll_fn(|cx| {
        for p in pings.iter_mut() {
            assert!(p.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    let all = timeout(HANG, async {
        for (i, p) in pings.into_iter().enumerate() {
            if let Err(e) = p.await {
                return Err((i, e));
            }
        }
        Ok(())
    })
    .await;
    assert!(
        matches!(all, Ok(Ok(()))),
        "{n} concurrent pings against an answering peer: {all:?} (Err(Elapsed) = \
         the first ping never completes)"
    );
}

/// An accepted stream the application drops without answering (a filter,
/// an early `return`, a panic) is reset, as h2 resets a request whose
/// `SendResponse` is dropped: no stream left open, counted against
/// MAX_CONCURRENT_STREAMS and blocking a GOAWAY's drain.
#[tokio::test]
async fn dropping_an_accepted_stream_resets_it() {
    let (client, server) = pair(Version::V3_1, Config::default(), Config::default());
    let (_send, mut recv) = client.open_stream(request(), fin()).unwrap();
    let incoming = timeout(HANG, server.accept()).await.unwrap().unwrap();
    drop(incoming);
    let reply = timeout(HANG, recv.reply()).await;
    assert!(
        matches!(reply, Ok(Err(_))),
        "the client still waits for an answer to a stream the server dropped: {reply:?}"
    );
}

/// When the session ends because the peer does not read (a flood of
/// frames owed to it, an unanswered keepalive), the connection task ends
/// too, within a bounded wait, instead of waiting forever to flush output
/// nobody reads.
#[tokio::test]
async fn connection_ends_when_the_session_ends_even_if_the_peer_does_not_read() {
    let (mut raw, ours) = tokio::io::duplex(64);
    let config = Config::default().with_ping_rate(RateLimit::new(20, Duration::from_secs(10)));
    let (server, conn) = spdy::handshake(ours, Role::Server, Version::V3_1, config);
    let conn = tokio::spawn(conn);
    let mut enc = FrameEncoder::new(Version::V3_1);
    // 40 PINGs from a peer that never reads its socket: over the limit.
    let pings: Vec<Frame> = (0..40).map(|i| Frame::Ping(Ping::new(2 * i + 1))).collect();
    write_frames(&mut raw, &mut enc, &pings).await;
    let ended = timeout(HANG, conn).await;
    // The session itself is over (the handle sees the flood error).
    let ping = timeout(HANG, server.ping()).await;
    assert!(
        matches!(ping, Ok(Err(Error::Session(_)))),
        "precondition: the session should have ended with the flood: {ping:?}"
    );
    assert!(
        ended.is_ok(),
        "the session ended with a ping flood, but the connection task is still \
         alive, holding the socket, because the peer does not read"
    );
}

// ===== unbounded queues =====

/// Streams waiting for `accept` are bounded, including streams the peer
/// opened already closed on both sides (SYN_STREAM with FIN and
/// UNIDIRECTIONAL, or FIN and a RST), which do not count against
/// MAX_CONCURRENT_STREAMS (h2's `max_pending_accept_reset_streams`).
#[tokio::test]
async fn streams_waiting_for_accept_are_bounded() {
    let (mut raw, ours) = tokio::io::duplex(4 << 20);
    let config = Config::default().with_max_concurrent_streams(4);
    let (server, conn) = spdy::handshake(ours, Role::Server, Version::V3, config);
    tokio::spawn(conn);
    let mut enc = FrameEncoder::new(Version::V3);
    let frames: Vec<Frame> = (0..200u32)
        .map(|i| {
            Frame::SynStream(SynStream {
                fin: true,
                unidirectional: true,
                ..SynStream::new(StreamId::new(2 * i + 1).unwrap(), request())
            })
        })
        .collect();
    write_frames(&mut raw, &mut enc, &frames).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut queued = 0;
    while let Ok(Some(incoming)) = timeout(Duration::from_millis(50), server.accept()).await {
        queued += 1;
        let _ = incoming.refuse(spdy::RstStatus::RefusedStream);
    }
    assert!(
        queued <= 8,
        "{queued} streams were waiting for accept with MAX_CONCURRENT_STREAMS = 4"
    );
}

// ===== flow control: windows pinned by data nobody will read =====

/// Pushes a client never accepts do not hold the SPDY/3.1 session window
/// for good: the responses it does read keep flowing. 3.3: "Browsers MUST
/// implement throttles to protect against unreasonable push attacks."
#[tokio::test]
async fn unaccepted_pushes_do_not_starve_the_response() {
    unaccepted_pushes(20).await;
}

/// Control: with 10 pushes (640 KiB, under the 1 MiB session window) the
/// response arrives.
#[tokio::test]
async fn control_ten_unaccepted_pushes_leave_room_for_the_response() {
    unaccepted_pushes(10).await;
}

async fn unaccepted_pushes(count: usize) {
    let (a, b) = tokio::io::duplex(4 << 20);
    let (request_sender, cconn) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .handshake(a);
    let (server, sconn) = spdy::handshake(b, Role::Server, Version::V3_1, Config::default());
    tokio::spawn(cconn);
    tokio::spawn(sconn);
    tokio::spawn(async move {
        let incoming = server.accept().await.unwrap();
        let (mut send, _recv) = incoming.reply(status(&[]), false).unwrap();
        let mut pushes = Vec::new();
        for i in 0..count {
            let mut push = send.push(push_block(&format!("/p{i}")), 0).unwrap();
            push.write(Bytes::from(vec![b'p'; 64 * 1024]))
                .await
                .unwrap();
            push.finish().unwrap();
            pushes.push(push);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        send.write(Bytes::from(vec![b'r'; 64 * 1024]))
            .await
            .unwrap();
        send.finish().unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(pushes);
    });
    let req = http::Request::get("http://test/")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let body = timeout(HANG, async {
        let mut res = request_sender.send_request(req).await?;
        res.body_mut().collect_to_vec(1 << 20).await
    })
    .await;
    assert!(
        matches!(&body, Ok(Ok(b)) if b.len() == 64 * 1024),
        "response body with {count} unaccepted 64 KiB pushes: {:?}",
        body.map(|r| r.map(|b| b.len()))
    );
}

/// Dropping a `RecvStream` while keeping its `SendStream` (an upload whose
/// answer is not wanted, a server answering without reading the request)
/// discards and releases what arrives, as h2 does, so unread data cannot
/// exhaust the session window and stall the other streams.
#[tokio::test]
async fn dropped_recv_halves_do_not_starve_other_streams() {
    dropped_recv_halves(17).await;
}

/// Control: behind 15 such streams (960 KiB held) the fresh stream is served.
#[tokio::test]
async fn control_fifteen_dropped_recv_halves_leave_room() {
    dropped_recv_halves(15).await;
}

async fn dropped_recv_halves(count: u32) {
    let last_id = StreamId::new(2 * count + 1).unwrap();
    let (client, server) = pair(Version::V3_1, Config::default(), Config::default());
    tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Some(incoming) = server.accept().await {
            let (mut send, recv) = incoming.reply(status(&[]), false).unwrap();
            let last = recv.id() == last_id;
            if last {
                send.write(Bytes::from_static(b"hello")).await.unwrap();
                send.finish().unwrap();
            } else {
                send.write(Bytes::from(vec![b'x'; 64 * 1024]))
                    .await
                    .unwrap();
            }
            keep.push((send, recv));
        }
    });
    let mut uploads = Vec::new();
    for _ in 0..count {
        let (send, recv) = client
            .open_stream(request(), OpenOptions::default())
            .unwrap();
        drop(recv); // not interested in the answer; still uploading
        uploads.push(send);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_send, mut recv) = client.open_stream(request(), fin()).unwrap();
    let got = timeout(HANG, async {
        recv.reply().await?;
        recv.read_to_end(1024).await
    })
    .await;
    assert!(
        matches!(&got, Ok(Ok(b)) if b == b"hello"),
        "a fresh stream behind {count} streams whose RecvStream was dropped: {got:?}"
    );
}

// ===== a body cut short =====

/// A response that ends (FIN) before the Content-Length it announced is an
/// error, not a clean short body: "a body cut short is an error", as in
/// hyper and h2.
#[tokio::test]
async fn response_shorter_than_its_content_length_is_an_error() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (request_sender, cconn) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .handshake(a);
    let (server, sconn) = spdy::handshake(b, Role::Server, Version::V3_1, Config::default());
    tokio::spawn(cconn);
    tokio::spawn(sconn);
    tokio::spawn(async move {
        let incoming = server.accept().await.unwrap();
        let (mut send, _recv) = incoming
            .reply(status(&[("content-length", "10")]), false)
            .unwrap();
        send.send_data(Bytes::from_static(b"12345"), true).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let req = http::Request::get("http://test/")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let body: Result<Result<Vec<u8>, Error>, _> = timeout(HANG, async {
        let mut res = request_sender.send_request(req).await?;
        res.body_mut().collect_to_vec(1 << 20).await
    })
    .await;
    let body = body.expect("timed out");
    assert!(
        body.is_err(),
        "a 5-byte body announced as content-length: 10 read as complete: {body:?}"
    );
}

/// Keepalive starts on a connection whose peer sends nothing at all (dead,
/// or a slowloris): it is pinged and dropped like any other.
#[tokio::test]
async fn keepalive_fires_on_a_silent_peer() {
    let (mut raw, ours) = tokio::io::duplex(1 << 16);
    let config =
        Config::default().with_keepalive(Duration::from_millis(100), Duration::from_millis(100));
    let (_server, conn) = spdy::handshake(ours, Role::Server, Version::V3_1, config);
    let conn = tokio::spawn(conn);
    // Read (and discard) what the server writes; never answer.
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        while matches!(raw.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let ended = timeout(HANG, conn).await;
    assert!(
        ended.is_ok(),
        "keepalive 100 ms + 100 ms against a silent peer: the connection was \
         still up after {HANG:?}"
    );
}

/// Once the peer has sent one frame, the same keepalive ends the
/// connection too.
#[tokio::test]
async fn control_keepalive_fires_after_one_frame_from_the_peer() {
    let (mut raw, ours) = tokio::io::duplex(1 << 16);
    let config =
        Config::default().with_keepalive(Duration::from_millis(100), Duration::from_millis(100));
    let (_server, conn) = spdy::handshake(ours, Role::Server, Version::V3_1, config);
    let conn = tokio::spawn(conn);
    let mut enc = FrameEncoder::new(Version::V3_1);
    write_frames(&mut raw, &mut enc, &[Frame::Ping(Ping::new(1))]).await;
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        while matches!(raw.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let ended = timeout(HANG, conn).await;
    assert!(ended.is_ok(), "the connection was still up after {HANG:?}");
}

/// CVE-2023-44487 end to end: with GETs opened and cancelled at once
/// (SYN_STREAM with FIN, then RST_STREAM CANCEL), the HTTP server never
/// runs more handlers at once than MAX_CONCURRENT_STREAMS, and the cancels
/// count against the reset rate.
#[tokio::test]
async fn server_runs_at_most_max_concurrent_handlers_under_rapid_reset() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (mut raw, ours) = tokio::io::duplex(4 << 20);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let service = move |_req: http::Request<spdy::RecvBody>| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(http::Response::new(
                http_body_util::Empty::<Bytes>::new(),
            ))
        }
    };
    let config = Config::default()
        .with_max_concurrent_streams(4)
        .with_peer_reset_rate(RateLimit::new(10, Duration::from_secs(10)));
    tokio::spawn(async move {
        let _ = spdy::server::Builder::new()
            .version(Version::V3)
            .config(config)
            .serve_connection(ours, hyper::service::service_fn(service))
            .await;
    });
    let mut enc = FrameEncoder::new(Version::V3);
    let mut frames = Vec::new();
    for i in 0..200u32 {
        let id = StreamId::new(2 * i + 1).unwrap();
        frames.push(Frame::SynStream(SynStream {
            fin: true,
            ..SynStream::new(id, request())
        }));
        frames.push(Frame::RstStream(spdy::proto::frame::RstStream::new(
            id,
            spdy::RstStatus::Cancel,
        )));
    }
    write_frames(&mut raw, &mut enc, &frames).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 4,
        "{peak} requests were being served at once with MAX_CONCURRENT_STREAMS = 4 \
         (every one of them cancelled by the client)"
    );
}
