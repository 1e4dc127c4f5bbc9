//! Edge cases of the sans-IO session that once went wrong: each test states
//! the rule (the spec's, or the project's: bounded memory, no panic, a
//! limit that counts what the peer does) and checks it against a scripted
//! peer. Fast, deterministic, no sockets.

mod support;

use std::time::Duration;

use bytes::Bytes;
use spdy_proto::frame::{Frame, RstStatus, Setting, SettingId, Settings, Version};
use spdy_proto::session::{Config, Event, Flood, RateLimit, Recv, Role, Session, SessionError};
use support::{block, data, request, response, rst, sid, syn, Peer};

const SECOND: Duration = Duration::from_secs(1);

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

/// Rapid reset (CVE-2023-44487) with ordinary GET requests: a GET's
/// SYN_STREAM carries FLAG_FIN, and its cancel, arriving before our reply,
/// counts against `peer_reset_rate` like any other (it once took a path
/// that counted nothing, since the peer had finished its side).
#[test]
fn rapid_reset_of_get_requests_is_caught() {
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

/// SPDY/2 has no flow control: what the session buffers for a stream the
/// application does not read is bounded another way (reading pauses), so a
/// peer sending DATA without end cannot fill memory. Here: at most 1 MiB.
#[test]
fn spdy2_stream_buffering_is_bounded() {
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

/// 3.3.2 "To cancel all server push streams related to a request, the
/// client may issue a stream error with error code CANCEL on the
/// associated-stream-id. By cancelling that stream, the server MUST
/// immediately stop sending frames for any streams with in-association-to
/// for the original stream."
#[test]
fn cancelling_the_associated_stream_stops_its_pushes() {
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

/// A server cannot make a client persist any number of settings (ids are
/// 24 bits): the client keeps at most the 8 it knows, so its next
/// session's SETTINGS stays small.
#[test]
fn persisted_settings_are_bounded_to_the_known_ids() {
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

/// `Config::with_keepalive` takes any `Duration`: `Duration::MAX` ("never")
/// must not overflow the deadline arithmetic in `poll_timeout`, which the
/// driver calls on every poll.
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

/// The same rapid-reset pattern without FIN on the request is caught too.
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

/// 2.6.3 "After receiving a RST_STREAM on a stream, the recipient must not
/// send additional frames for that stream": frames already queued for it
/// (its SYN_REPLY, WINDOW_UPDATEs) are withdrawn.
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

/// `max_pending_control` bounds the frames we *owe the peer* (PING answers,
/// resets for its mistakes), not our own: an application that opens 1,100
/// streams in one burst and then receives one PING, before the driver has
/// written the burst out, is not a flood by the peer.
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
