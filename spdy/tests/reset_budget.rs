//! Rapid resets spread over several connections of one client: each stays
//! under its session's own limit, the budget they share ends the one that
//! spends it.

use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use hyper::service::service_fn;
use spdy::proto::codec::{DecodeLimits, FrameDecoder, FrameEncoder};
use spdy::proto::frame::{
    Frame, GoAwayStatus, Ping, RstStatus, RstStream, StreamId, SynStream, Version,
};
use spdy::proto::header_block::HeaderBlock;
use spdy::proto::session::RateLimit;
use spdy::server::ResetBudgets;
use spdy::RecvBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A service that never answers: every reset comes before the reply.
async fn never(_req: Request<RecvBody>) -> Result<Response<String>, std::convert::Infallible> {
    std::future::pending().await
}

fn request() -> HeaderBlock {
    [
        (":method", "GET"),
        (":path", "/"),
        (":version", "HTTP/1.1"),
        (":host", "localhost"),
        (":scheme", "http"),
    ]
    .into_iter()
    .collect()
}

/// What the server did after the resets.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Answered the PING: the session lives.
    Pong,
    GoAway(GoAwayStatus),
    Closed,
}

/// Opens `n` streams and cancels each at once, then PINGs.
async fn open_and_cancel(tcp: &mut TcpStream, n: u32) -> Outcome {
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let mut wire = BytesMut::new();
    for i in 0..n {
        let id = StreamId::new(2 * i + 1).unwrap();
        encoder
            .encode(&Frame::SynStream(SynStream::new(id, request())), &mut wire)
            .unwrap();
        encoder
            .encode(
                &Frame::RstStream(RstStream::new(id, RstStatus::Cancel)),
                &mut wire,
            )
            .unwrap();
    }
    encoder
        .encode(&Frame::Ping(Ping::new(7)), &mut wire)
        .unwrap();
    tcp.write_all(&wire).await.unwrap();
    let mut decoder = FrameDecoder::new(Version::V3_1, DecodeLimits::default());
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            match frame {
                Frame::GoAway(g) => return Outcome::GoAway(g.status),
                Frame::Ping(p) if p.id == 7 => return Outcome::Pong,
                _ => {}
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read_buf(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        if n == 0 {
            return Outcome::Closed;
        }
    }
}

#[tokio::test]
async fn resets_spread_over_connections_of_one_address_hit_the_shared_budget() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let budgets = ResetBudgets::new(RateLimit::new(100, Duration::from_secs(60)));
    let server_budgets = budgets.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let builder =
                spdy::server::Builder::new().reset_budget(server_budgets.for_address(peer.ip()));
            tokio::spawn(async move {
                let _ = builder.serve_connection(tcp, service_fn(never)).await;
            });
        }
    });
    // 60 resets on each connection: far under a session's 1,000, but the
    // second connection takes the address past its 100.
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_eq!(open_and_cancel(&mut first, 60).await, Outcome::Pong);
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        open_and_cancel(&mut second, 60).await,
        Outcome::GoAway(GoAwayStatus::ProtocolError)
    );
    // The first connection was within its share and is still served (a
    // PING alone: no header block, so a fresh encoder is fine).
    assert_eq!(open_and_cancel(&mut first, 0).await, Outcome::Pong);
    assert_eq!(budgets.len(), 1, "one address, one budget");
    drop(second);
    let mut third = TcpStream::connect(addr).await.unwrap();
    // The budget is spent for this window: the next reset ends the session.
    assert_eq!(
        open_and_cancel(&mut third, 1).await,
        Outcome::GoAway(GoAwayStatus::ProtocolError)
    );
}
