//! One session carrying 10,000 concurrent streams over loopback TCP: every
//! stream completes byte for byte, and memory stays bounded by the windows,
//! not by what the peer sends. Prints the process's peak RSS.

use std::time::Duration;

use bytes::Bytes;
use spdy::proto::header_block::HeaderBlock;
use spdy::{Config, OpenOptions, Role, Version};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const STREAMS: usize = 10_000;
/// What the server sends on each stream: more than the session window lets
/// through at once, so most of it must wait in the server (bounded by its
/// send buffer) until the client reads.
const RESPONSE: usize = 32 * 1024;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_streams() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let config = Config::default()
        .with_max_concurrent_streams(STREAMS as u32 + 10)
        .with_max_pending_control(4 * STREAMS);
    let (client, client_conn) =
        spdy::handshake(dialed.unwrap(), Role::Client, Version::V3_1, config.clone());
    let (server, server_conn) =
        spdy::handshake(accepted.unwrap().0, Role::Server, Version::V3_1, config);
    tokio::spawn(client_conn);
    tokio::spawn(server_conn);
    let before = peak_rss_kib();

    // The server answers every stream with RESPONSE bytes, all slices of
    // one buffer, so that what is measured is the sessions, not the test.
    let payload = Bytes::from(vec![0xab; RESPONSE]);
    let server_task = tokio::spawn(async move {
        let mut served = 0;
        while let Some(incoming) = server.accept().await {
            let reply: HeaderBlock = [(":status", "200")].into_iter().collect();
            let (mut send, _recv) = incoming.reply(reply, false).unwrap();
            let payload = payload.clone();
            tokio::spawn(async move {
                send.write(payload).await.unwrap();
                send.finish().unwrap();
            });
            served += 1;
            if served == STREAMS {
                break;
            }
        }
        server
    });

    // All streams are opened before any is read.
    let mut recvs = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let headers: HeaderBlock = [(":path", format!("/{i}"))].into_iter().collect();
        let options = OpenOptions {
            fin: true,
            ..OpenOptions::default()
        };
        let (_send, recv) = client.open_stream(headers, options).unwrap();
        recvs.push(recv);
    }
    let mut tasks = Vec::with_capacity(STREAMS);
    for mut recv in recvs {
        tasks.push(tokio::spawn(async move {
            recv.reply().await.unwrap();
            // Checked and dropped as it arrives: the test holds no bodies.
            let mut got = 0;
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.unwrap();
                assert!(chunk.iter().all(|&b| b == 0xab));
                got += chunk.len();
            }
            assert_eq!(got, RESPONSE);
        }));
    }
    timeout(Duration::from_secs(120), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("10,000 streams did not finish in time");
    let _server = server_task.await.unwrap();
    let peak = peak_rss_kib();
    eprintln!(
        "10,000 concurrent streams x {RESPONSE} bytes: peak RSS {peak:?} KiB (at start {before:?} KiB)"
    );
    // The data in flight is bounded by the 3.1 session window (1 MiB) and
    // the server's send buffers; 10,000 x 32 KiB = 312 MiB was sent in all.
    if let (Some(peak), Some(before)) = (peak, before) {
        assert!(
            peak - before < 64 * 1024,
            "peak RSS grew by {} KiB",
            peak - before
        );
    }
}
