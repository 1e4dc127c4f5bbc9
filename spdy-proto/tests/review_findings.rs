//! Review findings against the sans-IO session: each test states what the
//! project's standards (or the spec) require and fails while the defect is
//! present. Fast, deterministic, no sockets.

mod support;

use std::time::Duration;

use bytes::Bytes;
use spdy_proto::frame::{
    Data, Frame, RstStatus, RstStream, Setting, SettingId, Settings, SynStream, Version,
};
use spdy_proto::session::{Config, Event, Flood, RateLimit, Recv, Role, Session, SessionError};
use support::{block, request, response, sid, Peer};

const SECOND: Duration = Duration::from_secs(1);

fn syn(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        fin,
        ..SynStream::new(sid(id), request(version, "/"))
    })
}

fn rst(id: u32, status: RstStatus) -> Frame {
    Frame::RstStream(RstStream::new(sid(id), status))
}

fn data(id: u32, len: usize, fin: bool) -> Frame {
    Frame::Data(Data::new(sid(id), vec![b'x'; len], fin))
}

fn push_headers(version: Version, path: &str) -> spdy_proto::header_block::HeaderBlock {
    if version == Version::V2 {
        let url = format!("https://example.com{path}");
        block(&[("url", &url), ("status", "200 OK"), ("version", "HTTP/1.1")])
    } else {
        block(&[
            (":scheme", "https"),
            (":host", "example.com"),
            (":path", path),
            (":status", "200"),
            (":version", "HTTP/1.1"),
        ])
    }
}

/// Finding: rapid reset (CVE-2023-44487) with ordinary GET requests.
///
/// `on_rst_stream` counts a peer's RST_STREAM against `peer_reset_rate`
/// only when the peer has not finished its side. A GET's SYN_STREAM carries
/// FLAG_FIN, so SYN_STREAM(FIN) + RST_STREAM(CANCEL) takes the
/// `stop_sending` path: never counted, and the stream leaves the
/// concurrency count at once. Every pair still surfaces as a new
/// `StreamOpened` (a new request for the application to serve).
///
/// Expected: the same pattern with `fin: false` ends the session with
/// `Flood::Resets` after 5 (see session_limits.rs); with `fin: true` it
/// must too.
#[test]
fn rapid_reset_of_get_requests_escapes_the_reset_limit() {
    for version in Version::ALL {
        let config = Config::default()
            .with_peer_reset_rate(RateLimit::new(5, SECOND))
            .with_max_concurrent_streams(2);
        let mut peer = Peer::started(Role::Server, version, config);
        let mut opened = 0;
        let mut closed = false;
        for i in 0..50u32 {
            let id = 2 * i + 1;
            peer.send(&[syn(version, id, true), rst(id, RstStatus::Cancel)]);
            for e in peer.events() {
                match e {
                    Event::StreamOpened { .. } => opened += 1,
                    Event::Closed { .. } => closed = true,
                    _ => {}
                }
            }
            if closed {
                break;
            }
        }
        assert!(
            closed,
            "{version}: 50 GET+CANCEL pairs in one instant (reset limit 5/s, \
             max concurrent 2) left the session open; {opened} requests were \
             handed to the application, active = {:?}",
            peer.session.active_streams()
        );
    }
}

/// Finding: SPDY/2 has no flow control, and the session has no other bound
/// on what it buffers for a stream the application does not read. A peer
/// sends DATA without end; all of it is kept. (The driver makes this easy
/// to hit: a server handler that answers without reading the request body
/// drops its `RecvBody`, but the `SendStream` that streams the answer keeps
/// the stream alive, so nobody ever reads or resets it.)
///
/// Expected ("flow control is the memory bound"; "no unbounded queue a peer
/// can fill"): beyond some per-stream bound the stream is reset (or reading
/// pauses); here we accept anything up to 1 MiB buffered.
#[test]
fn spdy2_stream_buffers_without_bound() {
    let version = Version::V2;
    let mut peer = Peer::started(Role::Server, version, Config::default());
    peer.send(&[syn(version, 1, false)]);
    peer.events();
    // 8 MiB in 64 KiB DATA frames; the application does not read.
    for _ in 0..128 {
        peer.send(&[data(1, 64 * 1024, false)]);
    }
    let reset = peer
        .frames()
        .iter()
        .any(|f| matches!(f, Frame::RstStream(r) if r.stream_id == sid(1)));
    let mut buffered = 0usize;
    while let Ok(Recv::Data(chunk)) = peer.session.recv(sid(1), usize::MAX) {
        buffered += chunk.len();
    }
    assert!(
        reset || buffered <= 1024 * 1024,
        "SPDY/2: the session buffered {buffered} bytes for one unread stream \
         and never reset it"
    );
}

/// Finding: 3.3.2 "To cancel all server push streams related to a request,
/// the client may issue a stream error with error code CANCEL on the
/// associated-stream-id. By cancelling that stream, the server MUST
/// immediately stop sending frames for any streams with in-association-to
/// for the original stream." The session keeps no association, so a push
/// keeps sending DATA after the client cancelled the stream it belongs to.
#[test]
fn cancelling_the_associated_stream_does_not_stop_its_pushes() {
    for version in [Version::V3, Version::V3_1] {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 1, true)]);
        peer.events();
        peer.session
            .reply(sid(1), response(version, "200 OK"), false)
            .unwrap();
        let pushed = peer
            .session
            .push(sid(1), push_headers(version, "/style.css"), 0)
            .unwrap();
        peer.frames(); // SYN_REPLY 1, SYN_STREAM 2 (push)
                       // The client cancels the request, which cancels its pushes.
        peer.send(&[rst(1, RstStatus::Cancel)]);
        peer.events();
        // The push's body arrives from the application afterwards (the
        // driver's Pusher writes it from a task of its own).
        let accepted = peer
            .session
            .send_data(pushed, Bytes::from(vec![b'p'; 4096]), true);
        let sent: usize = peer
            .frames()
            .iter()
            .filter_map(|f| match f {
                Frame::Data(d) if d.stream_id == pushed => Some(d.data.len()),
                _ => None,
            })
            .sum();
        assert_eq!(
            sent, 0,
            "{version}: push {pushed} still sent {sent} bytes of DATA after the client \
             cancelled its associated stream 1 (send_data returned {accepted:?})"
        );
    }
}

/// Finding: a server can make a client persist any number of settings. The
/// client keeps every distinct id flagged FLAG_SETTINGS_PERSIST_VALUE
/// (24-bit ids, up to 2^24 of them), with an O(n) `retain` per entry and an
/// O(n^2) duplicate scan per frame, and replays them all in its next
/// session's SETTINGS (where a frame too large to encode is dropped
/// silently, taking our MAX_CONCURRENT_STREAMS with it).
///
/// Expected: at most the settings this implementation knows (8 ids).
#[test]
fn persisted_settings_from_a_server_are_unbounded() {
    let version = Version::V3_1;
    let mut peer = Peer::started(Role::Client, version, Config::default());
    for frame_no in 0..3u32 {
        let entries = (0..2000u32)
            .map(|i| Setting {
                persist_value: true,
                ..Setting::new(SettingId::Unknown(1000 + frame_no * 2000 + i), 1)
            })
            .collect();
        peer.send(&[Frame::Settings(Settings::new(entries))]);
    }
    let kept = peer.session.persisted_settings().len();
    assert!(
        kept <= 8,
        "the client persisted {kept} settings for one server"
    );
}

/// Finding: `Config::with_keepalive` takes any `Duration`, and
/// `PingState::next_deadline` adds it to an `Instant` with `+`, which panics
/// on overflow. `Duration::MAX` ("never") panics in `poll_timeout`, which
/// the driver calls on every poll.
#[test]
fn keepalive_with_a_huge_idle_time_does_not_panic() {
    let config = Config::default().with_keepalive(Duration::MAX, Duration::from_secs(10));
    let mut session = Session::new(Role::Client, Version::V3_1, config);
    let now = std::time::Instant::now();
    while session.poll_transmit(now).is_some() {}
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.poll_timeout()));
    assert!(
        result.is_ok(),
        "poll_timeout panicked with keepalive idle = Duration::MAX"
    );
}

/// Sanity check for the rapid-reset finding: the same pattern without FIN
/// *is* caught (so the difference is only the FIN on the request).
#[test]
fn control_rapid_reset_without_fin_is_caught() {
    let version = Version::V3_1;
    let config = Config::default().with_peer_reset_rate(RateLimit::new(5, SECOND));
    let mut peer = Peer::started(Role::Server, version, config);
    let mut events = Vec::new();
    for i in 0..50u32 {
        let id = 2 * i + 1;
        peer.send(&[syn(version, id, false), rst(id, RstStatus::Cancel)]);
        events.extend(peer.events());
        if matches!(events.last(), Some(Event::Closed { .. })) {
            break;
        }
    }
    assert!(
        matches!(
            events.last(),
            Some(Event::Closed {
                error: Some(SessionError::Flood(Flood::Resets))
            })
        ),
        "{events:?}"
    );
}

/// Finding (spec, minor): 2.6.3 "After receiving a RST_STREAM on a stream,
/// the recipient must not send additional frames for that stream." Frames
/// already on the control queue for the stream (its SYN_REPLY, WINDOW_UPDATEs)
/// are not withdrawn when the peer resets it, so they go out after the
/// RST_STREAM was received.
#[test]
fn nothing_is_sent_for_a_stream_after_its_reset_arrives() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 1, false)]);
        peer.events();
        // The application answers; the SYN_REPLY waits for poll_transmit.
        peer.session
            .reply(sid(1), response(version, "200 OK"), false)
            .unwrap();
        // Before it is written, the client resets the stream.
        peer.send(&[rst(1, RstStatus::Cancel)]);
        let late: Vec<String> = peer
            .frames()
            .iter()
            .filter(|f| f.stream_id() == Some(sid(1)))
            .map(|f| format!("{f:?}").chars().take(40).collect())
            .collect();
        assert!(
            late.is_empty(),
            "{version}: sent after the peer's RST_STREAM 1: {late:?}"
        );
    }
}

/// Finding (spurious session failure): `max_pending_control` is meant to
/// bound the frames we *owe the peer* ("before concluding it does not
/// read"), but `owe` and `stream_error` compare it with the length of the
/// whole control queue, our own SYN_STREAMs, SYN_REPLYs and WINDOW_UPDATEs
/// included. An application that opens 1100 streams in one burst (allowed:
/// the peer's MAX_CONCURRENT_STREAMS is unlimited until its SETTINGS
/// arrive) and then receives one PING, before the driver has written the
/// burst out, ends the session with `Flood::PendingControl` although the
/// peer did nothing wrong. (The driver reads before it writes, so a PING in
/// the same poll as the burst hits this.)
#[test]
fn our_own_burst_of_streams_is_not_a_control_flood_by_the_peer() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        for _ in 0..1100 {
            peer.session
                .open_stream(
                    request(version, "/"),
                    spdy_proto::session::OpenOptions {
                        fin: true,
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        peer.send(&[Frame::Ping(spdy_proto::frame::Ping::new(2))]);
        let events = peer.events();
        let closed = events.iter().find(|e| matches!(e, Event::Closed { .. }));
        assert!(
            closed.is_none(),
            "{version}: one PING after opening 1100 streams ended the session: {closed:?}"
        );
    }
}
