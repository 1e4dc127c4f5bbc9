//! The stream layer over real loopback TCP sockets: our client and server in
//! every version and in both role arrangements, backpressure, and failure.

use std::time::Duration;

use bytes::Bytes;
use spdy::proto::header_block::HeaderBlock;
use spdy::{Config, Error, Handle, OpenOptions, Role, Version};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn headers(path: &str) -> HeaderBlock {
    [
        (":method", "POST"),
        (":path", path),
        (":version", "HTTP/1.1"),
        (":host", "test"),
        (":scheme", "http"),
        // SPDY/2 spellings, harmless in 3 (names are free-form).
        ("url", path),
    ]
    .into_iter()
    .map(|(n, v)| (n, v.to_owned()))
    .collect()
}

/// A deterministic body for stream `n`.
fn body(n: usize, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ n.wrapping_mul(7)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A TCP pair on 127.0.0.1: (dialer, acceptor).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (dialed.unwrap(), accepted.unwrap().0)
}

/// Serves streams by echoing each request body back.
async fn echo_server(handle: Handle) {
    while let Some(incoming) = handle.accept().await {
        tokio::spawn(async move {
            let (mut send, mut recv) = incoming
                .reply(
                    [(":status", "200"), ("status", "200")]
                        .into_iter()
                        .collect(),
                    false,
                )
                .unwrap();
            while let Some(chunk) = recv.data().await {
                let Ok(chunk) = chunk else { return };
                if send.write(chunk).await.is_err() {
                    return;
                }
            }
            let _ = send.finish();
        });
    }
}

async fn echo_round_trips(version: Version, server_dials: bool) {
    let (dialer, acceptor) = tcp_pair().await;
    // The role does not depend on who dialed.
    let (client_io, server_io) = if server_dials {
        (acceptor, dialer)
    } else {
        (dialer, acceptor)
    };
    let (client, client_conn) =
        spdy::handshake(client_io, Role::Client, version, Config::default());
    let (server, server_conn) =
        spdy::handshake(server_io, Role::Server, version, Config::default());
    tokio::spawn(client_conn);
    tokio::spawn(server_conn);
    tokio::spawn(echo_server(server));
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (mut send, mut recv) = client
            .open_stream(headers(&format!("/{n}")), OpenOptions::default())
            .unwrap();
        let payload = body(n, 50_000 + n * 5_000);
        tasks.push(tokio::spawn(async move {
            let writer = async {
                send.write(payload.clone()).await?;
                send.finish()
            };
            let reader = async {
                let reply = recv.reply().await?;
                assert!(reply.get(":status").is_some());
                recv.read_to_end(1 << 20).await
            };
            let (w, r) = tokio::join!(writer, reader);
            w?;
            let echoed = r?;
            assert_eq!(echoed.len(), payload.len(), "stream {n}");
            assert!(echoed == payload[..], "stream {n} corrupted");
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let rtt = client.ping().await.unwrap();
    assert!(rtt < LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_in_every_version() {
    for version in Version::ALL {
        timeout(LIMIT, echo_round_trips(version, false))
            .await
            .unwrap_or_else(|_| panic!("{version} timed out"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_side_that_dialed_can_be_the_server() {
    for version in Version::ALL {
        timeout(LIMIT, echo_round_trips(version, true))
            .await
            .unwrap_or_else(|_| panic!("{version} timed out"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_detects_the_clients_version() {
    for version in Version::ALL {
        let (client_io, server_io) = tcp_pair().await;
        let (client, client_conn) =
            spdy::handshake(client_io, Role::Client, version, Config::default());
        let (server, server_conn) = spdy::handshake_detect(server_io, Config::default());
        tokio::spawn(client_conn);
        tokio::spawn(server_conn);
        let (mut send, mut recv) = client
            .open_stream(headers("/"), OpenOptions::default())
            .unwrap();
        // More than the 64 KiB window: the writer waits for the server to
        // read, so it runs beside it.
        let writer = tokio::spawn(async move {
            send.write(body(1, 100_000)).await.unwrap();
            send.finish().unwrap();
        });
        let incoming = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
        let detected = server.version().unwrap();
        // 3 and 3.1 look alike on the wire until the session window shows.
        assert_eq!(detected.wire_number(), version.wire_number());
        let (mut s_send, mut s_recv) = incoming
            .reply([("status", "200")].into_iter().collect(), false)
            .unwrap();
        let got = timeout(LIMIT, s_recv.read_to_end(1 << 20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, body(1, 100_000));
        timeout(LIMIT, writer).await.unwrap().unwrap();
        s_send.write(Bytes::from_static(b"ok")).await.unwrap();
        s_send.finish().unwrap();
        recv.reply().await.unwrap();
        assert_eq!(
            timeout(LIMIT, recv.read_to_end(10)).await.unwrap().unwrap(),
            b"ok"
        );
    }
}

/// A reader that never reads on one stream holds only that stream: the
/// sender stops at the window, and another stream still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_stall_other_streams() {
    let (client_io, server_io) = tcp_pair().await;
    let config = Config::default().with_session_window(8 << 20);
    let (client, client_conn) =
        spdy::handshake(client_io, Role::Client, Version::V3_1, config.clone());
    let (server, server_conn) = spdy::handshake(server_io, Role::Server, Version::V3_1, config);
    tokio::spawn(client_conn);
    tokio::spawn(server_conn);
    let (mut stalled_send, _stalled_recv) = client
        .open_stream(headers("/stalled"), OpenOptions::default())
        .unwrap();
    let (mut send, mut recv) = client
        .open_stream(headers("/flowing"), OpenOptions::default())
        .unwrap();
    let first = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    let second = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    // The server never reads the first stream.
    let (_s1_send, _s1_recv) = first
        .reply([("status", "200")].into_iter().collect(), false)
        .unwrap();
    let (mut s2_send, mut s2_recv) = second
        .reply([("status", "200")].into_iter().collect(), false)
        .unwrap();
    // The stalled stream can get no further than window + send buffer.
    let stalled = tokio::spawn(async move {
        let _ = stalled_send.write(body(9, 4 << 20)).await;
    });
    let payload = body(2, 2 << 20);
    let writer = tokio::spawn({
        let payload = payload.clone();
        async move {
            send.write(payload).await.unwrap();
            send.finish().unwrap();
        }
    });
    let got = timeout(LIMIT, s2_recv.read_to_end(4 << 20))
        .await
        .unwrap()
        .unwrap();
    assert!(got == payload[..]);
    s2_send.finish().unwrap();
    writer.await.unwrap();
    recv.reply().await.unwrap();
    assert!(
        !stalled.is_finished(),
        "the stalled writer cannot have finished"
    );
    stalled.abort();
}

/// The peer vanishing mid-transfer ends every waiting operation with an
/// error, never a clean end of data, and nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_vanishing_mid_transfer_is_an_error() {
    for version in Version::ALL {
        let (client_io, server_io) = tcp_pair().await;
        let (client, client_conn) =
            spdy::handshake(client_io, Role::Client, version, Config::default());
        let (server, server_conn) =
            spdy::handshake(server_io, Role::Server, version, Config::default());
        let client_task = tokio::spawn(client_conn);
        tokio::spawn(server_conn);
        let (mut send, _recv) = client
            .open_stream(headers("/"), OpenOptions::default())
            .unwrap();
        send.write(body(3, 10_000)).await.unwrap();
        let incoming = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
        let (_s_send, mut s_recv) = incoming
            .reply([("status", "200")].into_iter().collect(), false)
            .unwrap();
        let first = timeout(LIMIT, s_recv.data())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!first.is_empty());
        // The client's connection task dies with its socket.
        client_task.abort();
        let _ = client_task.await;
        let mut result = Ok(());
        while let Some(chunk) = timeout(LIMIT, s_recv.data()).await.unwrap() {
            if let Err(e) = chunk {
                result = Err(e);
                break;
            }
        }
        assert!(result.is_err(), "{version}: a cut-short body ended cleanly");
        drop(client);
    }
}

/// After the end of a stream, reading keeps saying "end" (even once the
/// stream is forgotten and the connection closes), and a body over the
/// caller's limit is a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_stays_the_end_and_limits_are_typed() {
    let (client_io, server_io) = tcp_pair().await;
    let (client, client_conn) =
        spdy::handshake(client_io, Role::Client, Version::V3_1, Config::default());
    let (server, server_conn) =
        spdy::handshake(server_io, Role::Server, Version::V3_1, Config::default());
    tokio::spawn(client_conn);
    tokio::spawn(server_conn);
    for (n, limit) in [(0usize, 1 << 20), (1, 10)] {
        let (mut send, mut recv) = client
            .open_stream(headers("/"), OpenOptions::default())
            .unwrap();
        send.finish().unwrap();
        let incoming = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
        let (mut s_send, _s_recv) = incoming
            .reply([("status", "200")].into_iter().collect(), false)
            .unwrap();
        s_send.write(body(n, 1000)).await.unwrap();
        s_send.finish().unwrap();
        recv.reply().await.unwrap();
        let got = timeout(LIMIT, recv.read_to_end(limit)).await.unwrap();
        if n == 0 {
            assert_eq!(got.unwrap(), body(0, 1000));
            assert!(recv.data().await.is_none());
            assert!(recv.data().await.is_none());
        } else {
            assert!(
                matches!(got, Err(Error::BodyTooLarge { limit: 10 })),
                "{got:?}"
            );
        }
    }
    drop(client);
    drop(server);
}
