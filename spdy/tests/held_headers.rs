//! HEADERS frames wait for the application in a bounded space: a peer that
//! sends large blocks (zlib makes them cheap to send) on a stream whose
//! application does not take them gets the stream reset, not our memory.

use std::time::Duration;

use bytes::BytesMut;
use spdy::proto::codec::{DecodeLimits, FrameDecoder, FrameEncoder};
use spdy::proto::frame::{Frame, Headers, Ping, RstStatus, StreamId, SynStream, Version};
use spdy::proto::header_block::HeaderBlock;
use spdy::{Config, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn block(pairs: &[(&str, String)]) -> HeaderBlock {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

#[tokio::test]
async fn large_headers_nobody_takes_reset_the_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (handle, conn) = spdy::handshake(tcp, Role::Server, Version::V3_1, Config::default());
        tokio::spawn(conn);
        // Accept the stream and keep it, reading nothing.
        let mut kept = Vec::new();
        while let Some(stream) = handle.accept().await {
            kept.push(stream);
        }
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let mut wire = BytesMut::new();
    let id = StreamId::new(1).unwrap();
    let request = block(&[
        (":method", "POST".into()),
        (":path", "/".into()),
        (":version", "HTTP/1.1".into()),
        (":host", "localhost".into()),
        (":scheme", "http".into()),
    ]);
    encoder
        .encode(&Frame::SynStream(SynStream::new(id, request)), &mut wire)
        .unwrap();
    // Three blocks of 30 KB each: two fit the 64 KiB kept per stream.
    for i in 0..3 {
        let big = block(&[(&format!("x-big-{i}"), "a".repeat(30_000))]);
        encoder
            .encode(&Frame::Headers(Headers::new(id, big)), &mut wire)
            .unwrap();
    }
    encoder
        .encode(&Frame::Ping(Ping::new(9)), &mut wire)
        .unwrap();
    assert!(
        wire.len() < 2_000,
        "zlib makes 90 KB of headers cheap: {} bytes",
        wire.len()
    );
    tcp.write_all(&wire).await.unwrap();
    let mut decoder = FrameDecoder::new(Version::V3_1, DecodeLimits::default());
    let mut buf = BytesMut::new();
    let mut reset = None;
    let mut pong = false;
    // The PING's answer may come before the reset (it is owed first).
    'read: loop {
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            match frame {
                Frame::RstStream(r) => reset = Some((r.stream_id, r.status)),
                Frame::GoAway(g) => panic!("GOAWAY {:?}", g.status),
                Frame::Ping(p) if p.id == 9 => pong = true,
                _ => {}
            }
            if pong && reset.is_some() {
                break 'read;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read_buf(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "the server closed the connection (reset: {reset:?})");
    }
    // The stream is reset; the session lives on (the PING was answered).
    assert_eq!(reset, Some((id, RstStatus::InternalError)));
}
