//! The hostile-peer suite (issue 11): the real `spdy serve` binary attacked
//! the way a stranger on the internet would, one test per attack class;
//! then the connection caps of `spdy serve` (idle flood, out of file
//! descriptors) and of both ports of `spdy proxy`.
//!
//! Each test asserts three things:
//! - the precise answer: GOAWAY with its status, RST_STREAM with its status,
//!   or the connection closed;
//! - bounded memory: the server's VmRSS (from /proc) before and after the
//!   attack, against a bound stated next to the test;
//! - that a well-behaved client on another connection is still served (a
//!   real GET with the library client, or `spdy get` over TLS, within a
//!   time limit).
//!
//! Frames are scripted with spdy-proto's encoder; what the server sends
//! back is read with its decoder. No sleep is used to wait for anything:
//! every wait is on an event (a frame, a close, a log line) with a limit.
//! (RSS is sampled over a short window where an attack's cost could peak
//! while it is handled: a measurement, not a wait.)

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use spdy::proto::frame::{
    Data, GoAway, GoAwayStatus, Headers, Ping, RstStatus, RstStream, Setting, SettingId, Settings,
    SynStream, WindowUpdate,
};
use spdy::proto::header_block::HeaderBlock;
use spdy::proto::{DecodeLimits, Frame, FrameDecoder, FrameEncoder, StreamId, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

#[path = "support/serve.rs"]
mod support;
use support::{Server, LIMIT};

/// How long the server may take to answer an attack (GOAWAY, RST_STREAM or
/// close): generous, since the machine is shared; the defences answer in
/// milliseconds.
const ANSWER: Duration = Duration::from_secs(20);
/// The small file a well-behaved client fetches.
const SMALL: &[u8] = b"a well-behaved client's file\n";
/// The large file slow readers ask for (sparse: it costs no disk).
const BIG_LEN: u64 = 1 << 30;
/// What the server's memory may grow by over an attack that should cost it
/// nothing lasting (allocator slack, a few buffers): 16 MiB.
const SLACK_KIB: u64 = 16 * 1024;

// ===== the well-behaved client =====

/// A folder with the small and the big file.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), SMALL).unwrap();
    let big = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    big.set_len(BIG_LEN).unwrap();
    dir
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    Server::start(dir, extra).await
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: IpAddr, addr: &str) -> io::Result<TcpStream> {
    let addr: SocketAddr = addr.parse().unwrap();
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// A real GET of the small file over SPDY/3.1 on a new connection from
/// `from`, within LIMIT; the session, kept open as long as the caller
/// keeps it.
async fn try_served_from(
    server: &Server,
    from: IpAddr,
) -> Result<spdy::client::SendRequest, String> {
    let result = timeout(LIMIT, async {
        let tcp = connect_from(from, &server.addr).await?;
        let (send, connection) = spdy::client::Builder::new()
            .version(Version::V3_1)
            .handshake(tcp);
        tokio::spawn(connection);
        let request = Request::get(server.url("/small.txt"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = send.send_request(request).await.map_err(io::Error::other)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        Ok::<_, io::Error>((send, status, body))
    })
    .await;
    match result {
        Ok(Ok((send, status, body))) => {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], SMALL);
            Ok(send)
        }
        Ok(Err(e)) => Err(format!("a well-behaved client from {from} failed: {e}")),
        Err(_) => panic!("a well-behaved client from {from} was not served in {LIMIT:?}"),
    }
}

async fn served_from(server: &Server, from: IpAddr) -> spdy::client::SendRequest {
    try_served_from(server, from)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn served(server: &Server) {
    drop(served_from(server, loopback(1)).await);
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

// ===== memory =====

/// The server's RSS at its highest over `window`, sampled every 50 ms: an
/// attack's cost can show while its frames are being handled, not only at
/// the end. (A measurement over a time, not a synchronisation.)
async fn peak_rss_kib(server: &Server, window: Duration) -> u64 {
    let end = Instant::now() + window;
    let mut peak = server.rss_kib();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(server.rss_kib());
    }
    peak
}

fn assert_rss_within(what: &str, before: u64, after: u64, bound_kib: u64) {
    eprintln!(
        "{what}: server RSS {before} KiB before, {after} KiB after (bound: +{bound_kib} KiB)"
    );
    assert!(
        after <= before + bound_kib,
        "{what}: the server's RSS grew from {before} KiB to {after} KiB, more than the \
         bound of {bound_kib} KiB"
    );
}

// ===== a scripted peer =====

/// A raw SPDY client: frames encoded by spdy-proto, written as they are.
struct Peer {
    tx: Tx,
    rx: Rx,
}

struct Tx {
    io: OwnedWriteHalf,
    encoder: FrameEncoder,
}

struct Rx {
    io: OwnedReadHalf,
    decoder: FrameDecoder,
    buf: BytesMut,
}

/// What the server sent until it closed the connection.
#[derive(Debug)]
struct Answer {
    frames: Vec<Frame>,
    /// Whether the server closed the connection (else it was still open
    /// ANSWER after the attack was written).
    closed: bool,
}

impl Answer {
    fn goaways(&self) -> Vec<GoAwayStatus> {
        self.frames
            .iter()
            .filter_map(|f| match f {
                Frame::GoAway(g) => Some(g.status),
                _ => None,
            })
            .collect()
    }

    /// The session ended with exactly one GOAWAY of `status`, the last
    /// control frame sent.
    fn assert_goaway(&self, what: &str, status: GoAwayStatus) {
        self.assert_closed(what);
        assert_eq!(
            self.goaways(),
            [status],
            "{what}: expected one GOAWAY {status:?}; got {}",
            self.describe()
        );
        let last_control = self
            .frames
            .iter()
            .rev()
            .find(|f| !matches!(f, Frame::Data(_)));
        assert!(
            matches!(last_control, Some(Frame::GoAway(_))),
            "{what}: frames after the GOAWAY: {}",
            self.describe()
        );
    }

    fn assert_closed(&self, what: &str) {
        assert!(
            self.closed,
            "{what}: the connection is still open {ANSWER:?} after the attack; the server \
             sent {}",
            self.describe()
        );
    }

    fn describe(&self) -> String {
        let mut out = Vec::new();
        let mut data = 0usize;
        for frame in &self.frames {
            match frame {
                Frame::Data(d) => data += d.data.len(),
                Frame::SynReply(r) => out.push(format!("SYN_REPLY {}", r.stream_id.value())),
                Frame::RstStream(r) => {
                    out.push(format!("RST_STREAM {} {:?}", r.stream_id.value(), r.status))
                }
                Frame::GoAway(g) => out.push(format!("GOAWAY {:?}", g.status)),
                Frame::Ping(p) => out.push(format!("PING {}", p.id)),
                other => out.push(format!("{other:?}").chars().take(60).collect()),
            }
        }
        if out.len() > 40 {
            let n = out.len();
            out.drain(20..n - 20);
            out.insert(20, format!("... ({n} frames)"));
        }
        format!("[{}] and {data} DATA bytes", out.join(", "))
    }
}

impl Peer {
    async fn connect(server: &Server, version: Version) -> Peer {
        Peer::connect_from(server, loopback(1), version).await
    }

    async fn connect_from(server: &Server, from: IpAddr, version: Version) -> Peer {
        let tcp = timeout(LIMIT, connect_from(from, &server.addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Peer::over(tcp, version)
    }

    fn over(tcp: TcpStream, version: Version) -> Peer {
        tcp.set_nodelay(true).unwrap();
        let (read, write) = tcp.into_split();
        let mut encoder = FrameEncoder::new(version);
        // A hostile peer sends what it likes.
        encoder.set_validate_headers(false);
        Peer {
            tx: Tx { io: write, encoder },
            rx: Rx {
                io: read,
                decoder: FrameDecoder::new(version, DecodeLimits::default()),
                buf: BytesMut::new(),
            },
        }
    }

    /// Sends `bytes` while reading what the server sends, until it closes
    /// the connection or ANSWER has passed since the last byte was written.
    /// A write failing because the server closed first is part of the game.
    async fn attack(self, bytes: BytesMut) -> Answer {
        let Peer { mut tx, rx } = self;
        let (written, on_written) = oneshot::channel();
        let started = async move {
            let _ = on_written.await;
        };
        let reader = tokio::spawn(rx.answer(started, ANSWER));
        let _ = timeout(LIMIT, tx.io.write_all(&bytes)).await;
        let _ = written.send(());
        let answer = reader.await.unwrap();
        // (The write half stays open until now: an EOF is another story.)
        drop(tx);
        answer
    }

    /// Sends `bytes` without reading anything, then reads until the server
    /// closes (or ANSWER passes).
    async fn attack_without_reading(mut self, bytes: BytesMut) -> Answer {
        let _ = timeout(LIMIT, self.tx.io.write_all(&bytes)).await;
        let answer = self.rx.answer(async {}, ANSWER).await;
        drop(self.tx);
        answer
    }
}

impl Tx {
    fn encode(&mut self, frames: &[Frame], dst: &mut BytesMut) {
        for frame in frames {
            self.encoder.encode(frame, dst).unwrap();
        }
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut bytes = BytesMut::new();
        self.encode(frames, &mut bytes);
        timeout(LIMIT, self.io.write_all(&bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }
}

enum Got {
    Frame(Frame),
    Closed,
}

impl Rx {
    /// The next frame, or the close; panics if nothing comes within ANSWER.
    async fn next(&mut self) -> Got {
        timeout(ANSWER, self.next_unbounded())
            .await
            .unwrap_or_else(|_| panic!("no frame and no close in {ANSWER:?}"))
    }

    async fn next_unbounded(&mut self) -> Got {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Got::Frame(frame),
                Ok(None) => {}
                Err(e) => panic!("the server sent a frame we cannot decode: {e}"),
            }
            self.buf.reserve(64 * 1024);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Got::Closed,
                Ok(_) => {}
            }
        }
    }

    /// What the server sends until it closes the connection, or until
    /// `wait` after `started` resolves.
    async fn answer(
        mut self,
        started: impl std::future::Future<Output = ()>,
        wait: Duration,
    ) -> Answer {
        let deadline = async {
            started.await;
            tokio::time::sleep(wait).await;
        };
        let mut deadline = std::pin::pin!(deadline);
        let mut frames = Vec::new();
        loop {
            tokio::select! {
                got = self.next_unbounded() => match got {
                    Got::Frame(frame) => frames.push(frame),
                    Got::Closed => return Answer { frames, closed: true },
                },
                () = &mut deadline => return Answer { frames, closed: false },
            }
        }
    }

    /// Reads until `pick` returns something, skipping other frames.
    async fn until<T>(&mut self, mut pick: impl FnMut(&Frame) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Got::Frame(frame) => {
                    if let Some(found) = pick(&frame) {
                        return found;
                    }
                }
                Got::Closed => panic!("the server closed the connection"),
            }
        }
    }
}

// ===== frames =====

fn id(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

fn request(version: Version, path: &str) -> HeaderBlock {
    let names = if version == Version::V2 {
        ["method", "url", "version", "host", "scheme"]
    } else {
        [":method", ":path", ":version", ":host", ":scheme"]
    };
    let values = ["GET", path, "HTTP/1.1", "localhost", "http"];
    names
        .into_iter()
        .zip(values.map(|v| Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

fn syn(version: Version, n: u32, path: &str, fin: bool) -> Frame {
    let mut frame = SynStream::new(id(n), request(version, path));
    frame.fin = fin;
    Frame::SynStream(frame)
}

fn rst(n: u32, status: RstStatus) -> Frame {
    Frame::RstStream(RstStream::new(id(n), status))
}

fn encode(tx: &mut Tx, frames: impl IntoIterator<Item = Frame>) -> BytesMut {
    let mut bytes = BytesMut::new();
    for frame in frames {
        tx.encode(&[frame], &mut bytes);
    }
    bytes
}

// ===== rapid reset =====

/// CVE-2023-44487 on one connection: streams opened and cancelled at once,
/// past the budget of 1000 per 10 s → GOAWAY PROTOCOL_ERROR. (1,100: a
/// cancel that comes after the server's SYN_REPLY is a client leaving, not
/// counted, and a few may.) Memory: the streams are gone, so no more than
/// SLACK_KIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_on_one_connection() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    served(&server).await;
    let before = server.rss_kib();
    let mut peer = Peer::connect(&server, Version::V3_1).await;
    let frames = (0..1100u32).flat_map(|i| {
        let n = 2 * i + 1;
        [
            syn(Version::V3_1, n, "/big.bin", true),
            rst(n, RstStatus::Cancel),
        ]
    });
    let bytes = encode(&mut peer.tx, frames);
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("rapid reset", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("rapid reset", before, server.rss_kib(), SLACK_KIB);
}

/// The same attack spread over 20 connections from one address, each
/// staying under the per-connection budget (999 resets each, 19,980 in
/// all). The issue asks that this not go through: the budget must hold for
/// a client address too. `spdy serve` gives an address one connection's
/// worth (1,000 per 10 s, over all its connections, kept after they
/// close); allowing for one more drained meanwhile, at least 18 of the 20
/// connections must end with GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_spread_over_connections() {
    const CONNECTIONS: usize = 20;
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    served(&server).await;
    let before = server.rss_kib();
    let mut attacks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let mut peer = Peer::connect(&server, Version::V3_1).await;
        let frames = (0..999u32).flat_map(|i| {
            let n = 2 * i + 1;
            [
                syn(Version::V3_1, n, "/big.bin", true),
                rst(n, RstStatus::Cancel),
            ]
        });
        let mut bytes = encode(&mut peer.tx, frames);
        attacks.spawn(async move {
            let Peer { mut tx, mut rx } = peer;
            // Then a PING: its answer says the server has handled every
            // reset before it; a GOAWAY (or not) is read up to there.
            tx.encode(&[Frame::Ping(Ping::new(1))], &mut bytes);
            let write = async move {
                let _ = timeout(LIMIT, tx.io.write_all(&bytes)).await;
                tx
            };
            let read = async {
                let mut goaway = None;
                loop {
                    match rx.next().await {
                        Got::Frame(Frame::GoAway(g)) => goaway = Some(g.status),
                        Got::Frame(Frame::Ping(p)) if p.id == 1 => break,
                        Got::Frame(_) => {}
                        Got::Closed => break,
                    }
                }
                goaway
            };
            let (_tx, goaway) = tokio::join!(write, read);
            goaway
        });
    }
    let mut ended = 0;
    while let Some(goaway) = timeout(LIMIT, attacks.join_next()).await.unwrap() {
        match goaway.unwrap() {
            Some(GoAwayStatus::ProtocolError) => ended += 1,
            None => {}
            Some(other) => panic!("GOAWAY {other:?}, not PROTOCOL_ERROR"),
        }
    }
    eprintln!("spread rapid reset: {ended} of {CONNECTIONS} connections ended");
    assert!(
        ended >= CONNECTIONS - 2,
        "only {ended} of {CONNECTIONS} connections, each resetting 999 streams, were ended \
         with GOAWAY PROTOCOL_ERROR: the reset budget is per connection only"
    );
    served(&server).await;
    assert_rss_within("spread rapid reset", before, server.rss_kib(), SLACK_KIB);
}

// ===== floods of control frames =====

/// 501 PINGs (the budget is 500 per 10 s), written without reading a
/// single answer → GOAWAY PROTOCOL_ERROR. Memory: the answers owed are
/// bounded, so no more than SLACK_KIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_without_reading() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let mut peer = Peer::connect(&server, Version::V3_1).await;
    let bytes = encode(
        &mut peer.tx,
        (0..501u32).map(|i| Frame::Ping(Ping::new(2 * i + 1))),
    );
    let answer = peer.attack_without_reading(bytes).await;
    answer.assert_goaway("PING flood", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("PING flood", before, server.rss_kib(), SLACK_KIB);
}

/// 101 SETTINGS frames (the budget is 100 per 10 s), each with many
/// entries → GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let mut peer = Peer::connect(&server, Version::V3_1).await;
    let settings = || {
        let entries = (0..500u32)
            .map(|i| Setting::new(SettingId::Unknown(100 + i), i))
            .chain([Setting::new(SettingId::InitialWindowSize, 65_536)])
            .collect();
        Frame::Settings(Settings::new(entries))
    };
    let bytes = encode(&mut peer.tx, (0..101).map(|_| settings()));
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("SETTINGS flood", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("SETTINGS flood", before, server.rss_kib(), SLACK_KIB);
}

// ===== zlib bomb =====

/// Header blocks a few hundred bytes long that inflate past the limit
/// (64 KiB decompressed): one inflating to 100 KiB is refused with
/// RST_STREAM FRAME_TOO_LARGE and the session goes on (the next request on
/// it is answered); one inflating to 8 MiB ends the session with GOAWAY
/// PROTOCOL_ERROR. Memory: the server never holds more than a bounded
/// piece of the inflated block: SLACK_KIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_bomb() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    let mut big = request(v, "/small.txt");
    big.push("x-pad", vec![b'a'; 100 * 1024]);
    let mut frame = SynStream::new(id(1), big);
    frame.fin = true;
    peer.tx
        .send(&[Frame::SynStream(frame), syn(v, 3, "/small.txt", true)])
        .await;
    let reset = peer
        .rx
        .until(|f| match f {
            Frame::RstStream(r) => Some((r.stream_id.value(), r.status)),
            _ => None,
        })
        .await;
    assert_eq!(reset, (1, RstStatus::FrameTooLarge));
    let replied = peer
        .rx
        .until(|f| match f {
            Frame::SynReply(r) => Some(r.stream_id.value()),
            Frame::RstStream(r) => panic!("RST_STREAM {:?} after the refused block", r.status),
            _ => None,
        })
        .await;
    assert_eq!(
        replied, 3,
        "the session no longer answers after a refused block"
    );

    let mut bomb = request(v, "/small.txt");
    bomb.push("x-pad", vec![b'a'; 8 * 1024 * 1024]);
    let mut frame = SynStream::new(id(5), bomb);
    frame.fin = true;
    let bytes = encode(&mut peer.tx, [Frame::SynStream(frame)]);
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("zlib bomb", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("zlib bomb", before, server.rss_kib(), SLACK_KIB);
}

// ===== flow control =====

/// WINDOW_UPDATE taking a stream's window past 2^31 - 1 → RST_STREAM
/// FLOW_CONTROL_ERROR on that stream, and the session goes on; the same on
/// the session window (SPDY/3.1) → GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_overflow() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    // A session WINDOW_UPDATE first, as 3.1 clients open: the server
    // detects version 3 and takes it for 3.1 only from one (before it,
    // huge stream credit makes it plain SPDY/3, with no session window).
    let open = Frame::WindowUpdate(WindowUpdate::new(StreamId::ZERO, 65_536));
    peer.tx.send(&[open, syn(v, 1, "/big.bin", true)]).await;
    peer.rx
        .until(|f| matches!(f, Frame::SynReply(r) if r.stream_id == id(1)).then_some(()))
        .await;
    // Two: the first alone could land when the window is exactly 0, and
    // reach 2^31 - 1 without passing it.
    let update = Frame::WindowUpdate(WindowUpdate::new(id(1), 0x7fff_ffff));
    peer.tx.send(&[update.clone(), update]).await;
    let reset = peer
        .rx
        .until(|f| match f {
            Frame::RstStream(r) => Some((r.stream_id.value(), r.status)),
            Frame::GoAway(g) => panic!("GOAWAY {:?} for a stream's window", g.status),
            _ => None,
        })
        .await;
    assert_eq!(reset, (1, RstStatus::FlowControlError));
    // The session is still up.
    peer.tx.send(&[Frame::Ping(Ping::new(7))]).await;
    peer.rx
        .until(|f| matches!(f, Frame::Ping(p) if p.id == 7).then_some(()))
        .await;
    let update = Frame::WindowUpdate(WindowUpdate::new(StreamId::ZERO, 0x7fff_ffff));
    let bytes = encode(&mut peer.tx, [update.clone(), update]);
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("session window overflow", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("window overflow", before, server.rss_kib(), SLACK_KIB);
}

/// Slow readers: 10 connections × 100 downloads of a 1 GiB file each,
/// never reading a byte and never opening a window (SPDY/3: 64 KiB per
/// stream). What the server may hold for a stream is what the window lets
/// it send plus a small constant: the bound is 1,000 × (64 KiB + 64 KiB)
/// plus SLACK_KIB. (Before issue 11 it was about 540 KiB per stream.)
/// A well-behaved client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers() {
    const CONNECTIONS: usize = 10;
    const STREAMS: u32 = 100;
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    served(&server).await;
    let before = server.rss_kib();
    let v = Version::V3;
    let mut peers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut peer = Peer::connect(&server, v).await;
        let frames: Vec<Frame> = (0..STREAMS)
            .map(|i| syn(v, 2 * i + 1, "/big.bin", true))
            .collect();
        peer.tx.send(&frames).await;
        peers.push(peer);
    }
    let all = CONNECTIONS * STREAMS as usize;
    server
        .wait_for_log(LIMIT, |log| {
            log.matches(&format!("GET /big.bin 200 {BIG_LEN}")).count() >= all
        })
        .await;
    served(&server).await;
    let peak = peak_rss_kib(&server, Duration::from_secs(2)).await;
    let bound = all as u64 * (64 + 64) + SLACK_KIB;
    assert_rss_within("slow readers", before, peak, bound);
    drop(peers);
}

/// More streams than SETTINGS_MAX_CONCURRENT_STREAMS (100): the 10 past
/// it are refused with RST_STREAM REFUSED_STREAM, the 100 go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_exhaustion() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3;
    let mut peer = Peer::connect(&server, v).await;
    let frames: Vec<Frame> = (0..110u32)
        .map(|i| syn(v, 2 * i + 1, "/big.bin", true))
        .collect();
    peer.tx.send(&frames).await;
    let mut refused = Vec::new();
    let mut replied = 0;
    while refused.len() < 10 || replied < 100 {
        match peer.rx.next().await {
            Got::Frame(Frame::RstStream(r)) => refused.push((r.stream_id.value(), r.status)),
            Got::Frame(Frame::SynReply(_)) => replied += 1,
            Got::Frame(Frame::GoAway(g)) => panic!("GOAWAY {:?}", g.status),
            Got::Frame(_) => {}
            Got::Closed => panic!("closed"),
        }
    }
    let expected: Vec<(u32, RstStatus)> = (100..110u32)
        .map(|i| (2 * i + 1, RstStatus::RefusedStream))
        .collect();
    refused.sort_unstable_by_key(|r| r.0);
    assert_eq!(refused, expected);
    served(&server).await;
    let peak = peak_rss_kib(&server, Duration::from_secs(1)).await;
    assert_rss_within("stream exhaustion", before, peak, 100 * 128 + SLACK_KIB);
}

// ===== floods of frames that carry nothing =====

/// Empty DATA frames without FIN on an open stream, past the budget of
/// 500 per 10 s → GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_flood() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    let frames = std::iter::once(syn(v, 1, "/big.bin", false))
        .chain((0..600).map(|_| Frame::Data(Data::new(id(1), Bytes::new(), false))));
    let bytes = encode(&mut peer.tx, frames);
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("empty DATA flood", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("empty DATA flood", before, server.rss_kib(), SLACK_KIB);
}

/// 6,000 HEADERS frames with an empty block on an open stream: whichever
/// budget they fall under (frames that carry nothing, 500 per 10 s; or,
/// once the server has reset the stream for the headers it cannot queue,
/// frames for a reset stream, 5,000 per 10 s), the session ends with
/// GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_headers_flood() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    let frames = std::iter::once(syn(v, 1, "/big.bin", false))
        .chain((0..6000).map(|_| Frame::Headers(Headers::new(id(1), HeaderBlock::new()))));
    let bytes = encode(&mut peer.tx, frames);
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("empty HEADERS flood", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within("empty HEADERS flood", before, server.rss_kib(), SLACK_KIB);
}

/// HEADERS frames for streams the peer itself reset, each a few bytes on
/// the wire inflating to 8 KiB: they must be counted, not inflated and
/// dropped for free. 2,000 of them (16 MiB to inflate) end the session
/// with GOAWAY PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_flood_on_reset_streams() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    let mut frames = Vec::new();
    for n in [1u32, 3, 5, 7] {
        frames.push(syn(v, n, "/big.bin", false));
        frames.push(rst(n, RstStatus::Cancel));
    }
    for i in 0..2000u32 {
        let block: HeaderBlock = [("x-pad", vec![b'h'; 8 * 1024])].into_iter().collect();
        let n = [1u32, 3, 5, 7][i as usize % 4];
        frames.push(Frame::Headers(Headers::new(id(n), block)));
    }
    let bytes = encode(&mut peer.tx, frames);
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("HEADERS on reset streams", GoAwayStatus::ProtocolError);
    served(&server).await;
    assert_rss_within(
        "HEADERS on reset streams",
        before,
        server.rss_kib(),
        SLACK_KIB,
    );
}

// ===== malformed frames =====

/// Frames no correct peer sends, each on a connection of its own:
/// - a first frame of version 4: closed, nothing sent (no version agreed);
/// - a PING of length 8 (it must be 4): GOAWAY PROTOCOL_ERROR;
/// - SPDY/2 frames in a SPDY/3 session: RST_STREAM UNSUPPORTED_VERSION
///   for a SYN_STREAM, a PING ignored (the spec's 2.2.1), the session
///   goes on;
/// - DATA for a stream never opened: RST_STREAM INVALID_STREAM, the
///   session goes on;
/// - a SYN_STREAM id lower than one before: GOAWAY PROTOCOL_ERROR;
/// - a DATA frame first, on a server of one version (`--spdy 3`), its
///   payload never sent: answered at once (RST_STREAM INVALID_STREAM, the
///   spec's 2.2.2 MUST, or GOAWAY PROTOCOL_ERROR), not waited on;
/// - a DATA frame first on a server that detects the version: closed,
///   nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames() {
    let dir = folder();
    let server = start(dir.path(), &[]).await;
    let fixed = start(dir.path(), &["--spdy", "3"]).await;
    let before = server.rss_kib();
    let v = Version::V3;

    let peer = Peer::connect(&server, v).await;
    let answer = peer
        .attack(BytesMut::from(&[0x80, 4, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]))
        .await;
    answer.assert_closed("a version-4 frame first");
    assert!(answer.frames.is_empty(), "{}", answer.describe());

    let mut peer = Peer::connect(&server, v).await;
    peer.tx.send(&[Frame::Ping(Ping::new(1))]).await;
    let bad_length = [0x80, 3, 0, 6, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0];
    let answer = peer.attack(BytesMut::from(&bad_length[..])).await;
    answer.assert_goaway("bad PING length", GoAwayStatus::ProtocolError);

    // SPDY/3 2.2.1: a SYN_STREAM of another version gets RST_STREAM
    // UNSUPPORTED_VERSION; other control frames of another version are
    // ignored. The session goes on.
    let mut peer = Peer::connect(&server, v).await;
    peer.tx.send(&[Frame::Ping(Ping::new(1))]).await;
    let mut v2 = FrameEncoder::new(Version::V2);
    let mut other_version = BytesMut::new();
    v2.encode(&syn(Version::V2, 1, "/small.txt", true), &mut other_version)
        .unwrap();
    v2.encode(&Frame::Ping(Ping::new(3)), &mut other_version)
        .unwrap();
    peer.tx.io.write_all(&other_version).await.unwrap();
    peer.tx.send(&[Frame::Ping(Ping::new(5))]).await;
    let mut seen = Vec::new();
    peer.rx
        .until(|f| {
            match f {
                Frame::RstStream(r) => seen.push((r.stream_id.value(), r.status)),
                Frame::Ping(p) if p.id == 3 => panic!("a SPDY/2 PING was answered"),
                Frame::SynReply(_) | Frame::GoAway(_) => panic!("{f:?}"),
                _ => {}
            }
            matches!(f, Frame::Ping(p) if p.id == 5).then_some(())
        })
        .await;
    assert_eq!(seen, [(1, RstStatus::UnsupportedVersion)]);

    // 2.2.2: DATA for a stream that is not open MUST get RST_STREAM
    // INVALID_STREAM; the session goes on.
    let mut peer = Peer::connect(&server, v).await;
    peer.tx
        .send(&[
            Frame::Ping(Ping::new(1)),
            Frame::Data(Data::new(id(99), Bytes::from_static(b"x"), false)),
            Frame::Ping(Ping::new(5)),
        ])
        .await;
    let reset = peer
        .rx
        .until(|f| match f {
            Frame::RstStream(r) => Some((r.stream_id.value(), r.status)),
            Frame::Ping(p) if p.id == 5 => panic!("no RST_STREAM for an unknown stream"),
            _ => None,
        })
        .await;
    assert_eq!(reset, (99, RstStatus::InvalidStream));
    peer.rx
        .until(|f| matches!(f, Frame::Ping(p) if p.id == 5).then_some(()))
        .await;

    // 2.3.2: a SYN_STREAM whose id is below one already received is a
    // session error PROTOCOL_ERROR.
    let mut peer = Peer::connect(&server, v).await;
    let bytes = encode(
        &mut peer.tx,
        [syn(v, 5, "/small.txt", true), syn(v, 3, "/small.txt", true)],
    );
    let answer = peer.attack(bytes).await;
    answer.assert_goaway("stream ids going down", GoAwayStatus::ProtocolError);

    // DATA first, 1000 bytes announced, none sent.
    let data_head = [0, 0, 0, 1, 0, 0, 0x03, 0xe8];
    let mut peer = Peer::connect(&fixed, v).await;
    peer.tx.io.write_all(&data_head).await.unwrap();
    let answer = match peer.rx.next().await {
        Got::Frame(frame) => frame,
        Got::Closed => panic!("closed without an answer"),
    };
    match answer {
        Frame::RstStream(r) => assert_eq!(
            (r.stream_id.value(), r.status),
            (1, RstStatus::InvalidStream)
        ),
        Frame::GoAway(g) => assert_eq!(g.status, GoAwayStatus::ProtocolError),
        // A fixed-version server may open with its SETTINGS.
        other => {
            let next = peer
                .rx
                .until(|f| (!matches!(f, Frame::Settings(_))).then(|| f.clone()))
                .await;
            assert!(
                matches!(
                    next,
                    Frame::RstStream(RstStream {
                        status: RstStatus::InvalidStream,
                        ..
                    }) | Frame::GoAway(GoAway {
                        status: GoAwayStatus::ProtocolError,
                        ..
                    })
                ),
                "DATA first: {other:?} then {next:?}"
            );
        }
    }

    let peer = Peer::connect(&server, v).await;
    let answer = peer.attack(BytesMut::from(&data_head[..])).await;
    answer.assert_closed("DATA first, version detected");
    assert!(answer.frames.is_empty(), "{}", answer.describe());

    served(&server).await;
    served(&fixed).await;
    assert_rss_within("malformed frames", before, server.rss_kib(), SLACK_KIB);
}

// ===== stalled peers =====

/// The agreed timeout flags: the one under test at 1 s, the others at a
/// minute, longer than the wait, so that only the one under test can
/// close the connection in time. The wait allows 10× the timeout plus
/// ANSWER, since the machine is shared.
fn timeouts(under_test: &str) -> Vec<&'static str> {
    let mut args = Vec::new();
    for flag in [
        "--handshake-timeout",
        "--first-frame-timeout",
        "--frame-timeout",
        "--idle-timeout",
    ] {
        args.push(flag);
        args.push(if flag == under_test { "1s" } else { "1m" });
    }
    args
}
const STALL_WAIT: Duration = Duration::from_secs(10 + 20);

/// Reads until the server closes, within STALL_WAIT.
async fn closed_within(rx: Rx, what: &str) -> Answer {
    let answer = rx.answer(async {}, STALL_WAIT).await;
    answer.assert_closed(what);
    answer
}

/// A connection that sends nothing is closed (nothing to say: no version
/// is agreed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_peer_sending_nothing() {
    let dir = folder();
    let server = start(dir.path(), &timeouts("--first-frame-timeout")).await;
    let before = server.rss_kib();
    let peer = Peer::connect(&server, Version::V3_1).await;
    // Served while the silent peer waits.
    served(&server).await;
    let answer = closed_within(peer.rx, "a silent peer").await;
    assert!(answer.frames.is_empty(), "{}", answer.describe());
    assert_rss_within("a silent peer", before, server.rss_kib(), SLACK_KIB);
}

/// Half a frame header after a first whole frame, with a stream open:
/// closed (a GOAWAY first is allowed; otherwise only the answers to what
/// was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_peer_half_a_frame_header() {
    let dir = folder();
    let server = start(dir.path(), &timeouts("--frame-timeout")).await;
    let before = server.rss_kib();
    let mut peer = Peer::connect(&server, Version::V3_1).await;
    // A stream stays open (its response waits on the window), so that the
    // session is not idle.
    peer.tx
        .send(&[
            Frame::Ping(Ping::new(1)),
            syn(Version::V3_1, 1, "/big.bin", true),
        ])
        .await;
    peer.tx.io.write_all(&[0x80, 3, 0]).await.unwrap();
    served(&server).await;
    let answer = closed_within(peer.rx, "half a frame header").await;
    for frame in &answer.frames {
        assert!(
            matches!(
                frame,
                Frame::GoAway(_)
                    | Frame::Settings(_)
                    | Frame::WindowUpdate(_)
                    | Frame::Ping(Ping { id: 1 })
                    | Frame::SynReply(_)
                    | Frame::Data(_)
            ),
            "{}",
            answer.describe()
        );
    }
    assert_rss_within("half a frame header", before, server.rss_kib(), SLACK_KIB);
}

/// Half a TLS ClientHello: closed after the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_peer_half_a_tls_handshake() {
    let dir = folder();
    let mut args = timeouts("--handshake-timeout");
    args.push("--tls");
    let server = start(dir.path(), &args).await;
    let before = server.rss_kib();
    let mut tcp = connect_from(loopback(1), &server.addr).await.unwrap();
    // A handshake record header announcing 512 bytes, and 4 of them.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .await
        .unwrap();
    // A well-behaved client over TLS, while the stalled one waits.
    let url = format!("https://{}/small.txt", server.addr);
    let output = support::spdy(&["get", "--insecure", &url]).await;
    assert!(output.status.success(), "{}", support::stderr(&output));
    assert_eq!(output.stdout, SMALL);
    let mut buf = [0u8; 256];
    let closed = timeout(STALL_WAIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "half a TLS handshake: still open");
    assert_rss_within("half a TLS handshake", before, server.rss_kib(), SLACK_KIB);
}

/// A session idle after one request: GOAWAY OK, then closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_peer_idle_after_one_request() {
    let dir = folder();
    let server = start(dir.path(), &timeouts("--idle-timeout")).await;
    let before = server.rss_kib();
    let v = Version::V3_1;
    let mut peer = Peer::connect(&server, v).await;
    peer.tx.send(&[syn(v, 1, "/small.txt", true)]).await;
    peer.rx
        .until(|f| matches!(f, Frame::Data(d) if d.fin).then_some(()))
        .await;
    served(&server).await;
    let answer = closed_within(peer.rx, "an idle session").await;
    answer.assert_goaway("idle session", GoAwayStatus::Ok);
    assert_rss_within("an idle session", before, server.rss_kib(), SLACK_KIB);
}

// ===== connection caps =====

/// Idle connections against the caps (`--max-connections 500`, default
/// 256 per address): of 700 from 127.0.0.1, 256 are served and 444 closed
/// at once; a well-behaved client from 127.0.0.2 still gets in (and keeps
/// its connection); of 300 more from 127.0.0.2, 243 fill the total cap and
/// 57 are closed at once; a client from 127.0.0.3 is then closed at once,
/// until a flood connection goes. Memory: at most 16 KiB per idle
/// connection (the bound) plus SLACK_KIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_flood_against_the_caps() {
    let dir = folder();
    let server = start(dir.path(), &["--max-connections", "500"]).await;
    let before = server.rss_kib();

    let (mut first, closed) = flood(&server, loopback(1), 700).await;
    assert_eq!((first.len(), closed), (256, 444));
    let client = served_from(&server, loopback(2)).await;
    let (second, closed) = flood(&server, loopback(2), 300).await;
    assert_eq!((second.len(), closed), (243, 57));

    // Measured now, with 500 open; checked at the end, after the caps.
    let after = server.rss_kib();

    // At the total cap: a new client is closed at once, nothing said.
    let peer = Peer::connect_from(&server, loopback(3), Version::V3_1).await;
    let answer = peer.attack(BytesMut::new()).await;
    answer.assert_closed("a client past the cap");
    assert!(answer.frames.is_empty(), "{}", answer.describe());
    assert!(
        try_served_from(&server, loopback(3)).await.is_err(),
        "served past the cap"
    );
    // One flood connection goes: room for one, as soon as the server has
    // seen it go (each try before that is closed at once).
    drop(first.pop());
    let deadline = Instant::now() + LIMIT;
    loop {
        match try_served_from(&server, loopback(3)).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => drop(e),
            Err(e) => panic!("no room after a connection closed: {e}"),
        }
    }
    drop((first, second, client));
    assert_rss_within("500 idle connections", before, after, 500 * 16 + SLACK_KIB);
}

/// Opens `n` connections from `from`, each sending a PING: those answered
/// are kept (returned), those closed at once counted.
async fn flood(server: &Server, from: IpAddr, n: usize) -> (Vec<Peer>, usize) {
    let mut kept = Vec::new();
    let mut closed = 0;
    for _ in 0..n {
        let mut peer = Peer::connect_from(server, from, Version::V3_1).await;
        let mut ping = BytesMut::new();
        peer.tx.encode(&[Frame::Ping(Ping::new(1))], &mut ping);
        let _ = peer.tx.io.write_all(&ping).await;
        match peer.rx.next().await {
            Got::Frame(Frame::Ping(p)) if p.id == 1 => kept.push(peer),
            Got::Frame(other) => panic!("{other:?} for a PING"),
            Got::Closed => closed += 1,
        }
    }
    (kept, closed)
}

// ===== cuts =====

/// A scripted exchange cut at every byte: the script is written up to the
/// cut, then the write side is shut. The server must close each connection
/// (never wait forever on half a frame after EOF), never panic, stay up,
/// and serve the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_at_every_byte() {
    let dir = folder();
    let mut server = start(dir.path(), &[]).await;
    let before = server.rss_kib();
    for v in [Version::V2, Version::V3_1] {
        let mut script = BytesMut::new();
        let mut encoder = FrameEncoder::new(v);
        let mut frames = vec![
            Frame::Ping(Ping::new(1)),
            syn(v, 1, "/small.txt", true),
            syn(v, 3, "/big.bin", false),
            Frame::Data(Data::new(id(3), Bytes::from_static(b"body"), false)),
            rst(3, RstStatus::Cancel),
        ];
        if v != Version::V2 {
            frames.push(Frame::WindowUpdate(WindowUpdate::new(StreamId::ZERO, 1000)));
            frames.push(Frame::Settings(Settings::new(vec![Setting::new(
                SettingId::InitialWindowSize,
                1000,
            )])));
        }
        frames.push(Frame::GoAway(GoAway::new(StreamId::ZERO, GoAwayStatus::Ok)));
        for frame in &frames {
            encoder.encode(frame, &mut script).unwrap();
        }
        for cut in 0..=script.len() {
            let mut tcp = connect_from(loopback(1), &server.addr).await.unwrap();
            timeout(LIMIT, tcp.write_all(&script[..cut]))
                .await
                .unwrap()
                .unwrap();
            tcp.shutdown().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let closed = timeout(ANSWER, async {
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "SPDY/{v} cut at byte {cut} of {}: the server kept the connection",
                script.len()
            );
        }
        assert!(server.is_running(), "the server exited");
        served(&server).await;
    }
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert_rss_within("cuts", before, server.rss_kib(), SLACK_KIB);
}

/// Out of file descriptors: `spdy serve` under RLIMIT_NOFILE 100 clamps
/// --max-connections 1000 to 36 (a quarter of the limit, at least 64,
/// kept back) and says so; a peer whose 100 downloads take every
/// descriptor left makes accept fail with EMFILE: the server pauses
/// accepting (said once), does not spin or stop, and the client waiting
/// in the backlog is served once the hog goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_backs_off() {
    let dir = folder();
    let server = Server::start_with_fd_limit(dir.path(), &["--max-connections", "1000"], 100).await;
    server
        .wait_for_log(LIMIT, |log| {
            log.contains("--max-connections 1000 is more than 100 file descriptors allow; using 36")
        })
        .await;
    let before = server.rss_kib();
    let v = Version::V3;
    let mut hog = Peer::connect(&server, v).await;
    let frames: Vec<Frame> = (0..100u32)
        .map(|i| syn(v, 2 * i + 1, "/big.bin", true))
        .collect();
    hog.tx.send(&frames).await;
    server
        .wait_for_log(LIMIT, |log| log.matches(" GET /big.bin ").count() >= 100)
        .await;
    assert!(
        server.log().contains(" GET /big.bin 404 "),
        "the downloads did not use up the descriptors:\n{}",
        server.log()
    );
    let release = async {
        server
            .wait_for_log(LIMIT, |log| log.contains("pausing accepts"))
            .await;
        drop(hog);
    };
    tokio::join!(served(&server), release);
    // The server logs before it serves, but its log reaches us through a
    // pipe of its own: wait for the line rather than race it.
    server
        .wait_for_log(LIMIT, |log| log.contains("accepting again"))
        .await;
    let log = server.log();
    assert_eq!(log.matches("accept failed").count(), 1, "{log}");
    assert_eq!(log.matches("accepting again").count(), 1, "{log}");
    served(&server).await;
    assert_rss_within("out of descriptors", before, server.rss_kib(), SLACK_KIB);
}

// ===== the proxy's ports =====

/// A running `spdy proxy`: its public and tunnel addresses.
struct Proxy {
    _child: tokio::process::Child,
    public: String,
    tunnels: String,
}

async fn proxy(extra: &[&str]) -> Proxy {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_spdy"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--tunnels",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let line = timeout(LIMIT, lines.next_line())
            .await
            .expect("spdy proxy printed nothing in time")
            .unwrap()
            .expect("spdy proxy exited");
        addresses.push(line);
    }
    let (public, tunnels) = (&addresses[0], &addresses[1]);
    Proxy {
        _child: child,
        public: public
            .strip_prefix("listening on http://")
            .unwrap()
            .to_owned(),
        tunnels: tunnels
            .strip_prefix("tunnels on http://")
            .unwrap()
            .to_owned(),
    }
}

/// Sends an HTTP/1.1 request on a new connection from `from`: the
/// connection (kept open) if the proxy answered, `None` if it closed it
/// without a word.
async fn http1_answered(addr: &str, from: IpAddr) -> Option<TcpStream> {
    let mut tcp = connect_from(from, addr).await.unwrap();
    let _ = tcp
        .write_all(b"GET / HTTP/1.1\r\nhost: media.example\r\n\r\n")
        .await;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let answered = timeout(ANSWER, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await
    .expect("neither answered nor closed");
    if answered {
        assert!(head.starts_with(b"HTTP/1.1 "), "{head:?}");
        Some(tcp)
    } else {
        None
    }
}

/// Both ports of `spdy proxy` are capped (`--max-connections 3
/// --max-connections-per-ip 2`): a third connection from one address is
/// closed at once, a second address gets in up to the total, then a third
/// address is closed at once until a connection goes. The public port's
/// flood leaves the tunnel port its own connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ports_are_capped() {
    let proxy = proxy(&["--max-connections", "3", "--max-connections-per-ip", "2"]).await;
    let mut held = Vec::new();
    for addr in [&proxy.public, &proxy.tunnels] {
        let mut first = Vec::new();
        for _ in 0..2 {
            first.push(http1_answered(addr, loopback(1)).await.expect("answered"));
        }
        assert!(http1_answered(addr, loopback(1)).await.is_none());
        held.push(http1_answered(addr, loopback(2)).await.expect("answered"));
        assert!(http1_answered(addr, loopback(3)).await.is_none());
        drop(first.pop());
        let deadline = Instant::now() + LIMIT;
        loop {
            match http1_answered(addr, loopback(3)).await {
                Some(tcp) => break held.push(tcp),
                None => assert!(Instant::now() < deadline, "no room after a close"),
            }
        }
        held.extend(first);
    }
}
