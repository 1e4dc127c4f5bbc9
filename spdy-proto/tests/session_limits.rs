//! The session's limits against abusive peers, one test per limit, against a
//! scripted peer: the exact GOAWAY (or RST_STREAM) that ends the abuse, the
//! error the application sees, and that what the session holds stayed
//! bounded meanwhile.
//!
//! The specs name no numbers for these; what they require is the way out.
//! SPDY/3 2.4.1: "When a session error occurs, the endpoint encountering the
//! error MUST first send a GOAWAY (Section 2.6.6) frame with the stream id
//! of most recently received stream from the remote endpoint, and the error
//! code for why the session is terminating." Each limit is set small in
//! [`Config`] so the tests run fast, with time moved by hand.

mod support;

use std::time::Duration;

use bytes::Bytes;
use spdy_proto::frame::{
    Frame, GoAway, GoAwayStatus, Headers, Noop, Ping, RstStatus, Setting, SettingId, Settings,
    StreamId, SynReply, Version,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{
    Config, Event, Flood, OpenOptions, RateLimit, Role, SessionError, StreamError, UserError,
};
use support::{data, request, response, rst, sid, syn, window_update, Peer};

const SECOND: Duration = Duration::from_secs(1);

// ===== frames =====

/// A GOAWAY as the peer decodes it: SPDY/2's has no status (it reads as OK).
fn goaway(version: Version, last_good: u32, status: GoAwayStatus) -> Frame {
    let status = if version == Version::V2 {
        GoAwayStatus::Ok
    } else {
        status
    };
    Frame::GoAway(GoAway::new(StreamId::from_wire(last_good), status))
}

fn reply(version: Version, id: u32) -> Frame {
    Frame::SynReply(SynReply::new(sid(id), response(version, "200 OK")))
}

fn ping(id: u32) -> Frame {
    Frame::Ping(Ping::new(id))
}

fn settings(entries: &[(SettingId, u32)]) -> Frame {
    Frame::Settings(Settings::new(
        entries
            .iter()
            .map(|&(id, value)| Setting::new(id, value))
            .collect(),
    ))
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Data(f) => format!(
            "DATA {} len={}{}",
            f.stream_id,
            f.data.len(),
            if f.fin { " fin" } else { "" }
        ),
        Frame::RstStream(f) => format!("RST_STREAM {} {}", f.stream_id, f.status),
        Frame::GoAway(f) => format!("GOAWAY {} {}", f.last_good_stream_id, f.status),
        Frame::Ping(f) => format!("PING {}", f.id),
        other => format!("{other:?}"),
    }
}

fn described(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(describe).collect()
}

fn assert_no_frames(peer: &mut Peer, version: Version) {
    let frames = peer.frames();
    assert!(
        frames.is_empty(),
        "{version}: expected no answer, got {:?}",
        described(&frames)
    );
}

/// The session ended with `flood`: the last event says so, and nothing is
/// left open.
fn assert_flood(peer: &mut Peer, version: Version, flood: Flood) {
    let events = peer.events();
    assert_eq!(
        events.last(),
        Some(&Event::Closed {
            error: Some(SessionError::Flood(flood))
        }),
        "{version}: {events:?}"
    );
    assert!(peer.session.is_closed(), "{version}");
    assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
}

fn client_with_stream(version: Version, config: Config) -> Peer {
    let mut peer = Peer::started(Role::Client, version, config);
    let id = peer
        .session
        .open_stream(request(version, "/"), OpenOptions::default())
        .unwrap();
    assert_eq!(id, sid(1));
    peer.send(&[reply(version, 1)]);
    peer.frames();
    peer.events();
    peer
}

// ===== rapid reset =====

/// Rapid reset (CVE-2023-44487): the peer opens streams and cancels them at
/// once, so each costs us work but never counts against
/// MAX_CONCURRENT_STREAMS. `Config::with_peer_reset_rate` bounds the
/// cancellations per period; beyond it the session ends with GOAWAY
/// PROTOCOL_ERROR (2.4.1: "MUST first send a GOAWAY"). Nothing piles up
/// meanwhile: every cancelled stream is gone at once.
#[test]
fn rapid_reset_by_the_peer_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_peer_reset_rate(RateLimit::new(5, SECOND));
        // Five per second, for three seconds, is within the limit.
        let mut peer = Peer::started(Role::Server, version, config.clone());
        let mut id = 1;
        for _ in 0..3 {
            for _ in 0..5 {
                peer.send(&[syn(version, id, false), rst(id, RstStatus::Cancel)]);
                id += 2;
                assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
            }
            assert_no_frames(&mut peer, version);
            peer.advance(SECOND);
        }
        assert!(!peer.session.is_closed(), "{version}");

        // A sixth within one second is not.
        let mut peer = Peer::started(Role::Server, version, config);
        for id in [1, 3, 5, 7, 9] {
            peer.send(&[syn(version, id, false), rst(id, RstStatus::Cancel)]);
            assert_no_frames(&mut peer, version);
            assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
        }
        peer.events();
        peer.send(&[syn(version, 11, false), rst(11, RstStatus::Cancel)]);
        // Stream 11 never reached the application: not last-good (2.6.6).
        assert_eq!(
            peer.frames(),
            [goaway(version, 9, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::Resets);
    }
}

/// The other half of rapid reset: a peer that makes *us* reset its streams
/// (here with DATA for streams that do not exist, each answered with
/// INVALID_STREAM as 2.2.2 demands) is held to the same rate. SPDY/3 2.2.2:
/// "Implementors note: If an endpoint receives multiple data frames for
/// invalid stream-ids, it MAY close the session."
#[test]
fn peer_making_us_reset_too_often_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_peer_reset_rate(RateLimit::new(5, SECOND));
        let mut peer = Peer::started(Role::Server, version, config);
        for id in [1, 3, 5, 7, 9] {
            peer.send(&[data(id, 1, false)]);
            assert_eq!(
                peer.frames(),
                [rst(id, RstStatus::InvalidStream)],
                "{version}"
            );
        }
        peer.send(&[data(11, 1, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::Resets);
    }
}

// ===== floods of cheap frames =====

/// PING flood (CVE-2019-9512): every PING of the peer's parity costs us an
/// answer (2.6.5: "Recipients of a PING frame should send an identical
/// frame to the sender as soon as possible"). `Config::with_ping_rate`
/// bounds them per period.
#[test]
fn ping_flood_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_ping_rate(RateLimit::new(3, SECOND));
        let mut peer = Peer::started(Role::Server, version, config);
        for id in [1, 3, 5] {
            peer.send(&[ping(id)]);
            assert_eq!(peer.frames(), [ping(id)], "{version}");
        }
        // A new period: three more are fine.
        peer.advance(SECOND);
        peer.send(&[ping(7), ping(9), ping(11)]);
        assert_eq!(peer.frames(), [ping(7), ping(9), ping(11)], "{version}");
        peer.send(&[ping(13)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::Pings);
    }
}

/// SETTINGS flood (CVE-2019-9515): SPDY/3 2.6.4 "SETTINGS frames can be sent
/// at any time by either endpoint", and each one makes us walk our streams.
/// `Config::with_settings_rate` bounds them per period.
#[test]
fn settings_flood_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_settings_rate(RateLimit::new(3, SECOND));
        let mut peer = Peer::started(Role::Server, version, config);
        for _ in 0..3 {
            peer.send(&[settings(&[(SettingId::RoundTripTime, 10)])]);
            assert_no_frames(&mut peer, version);
        }
        assert_eq!(peer.events().len(), 3, "{version}");
        peer.send(&[settings(&[(SettingId::RoundTripTime, 10)])]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::Settings);
    }
}

/// Empty frames flood (CVE-2019-9518): SPDY/3 2.2.2 "It is valid to have a
/// zero-length data frame", but a stream of them (without FIN) carries
/// nothing and costs work. `Config::with_empty_frame_rate` bounds them per
/// period; SPDY/2's NOOP ("Receivers of a NO-OP frame should simply ignore
/// it") counts the same. The session answers with exactly one GOAWAY, and
/// nothing after it (2.4.1: "After sending the GOAWAY frame, the endpoint
/// MUST close the TCP connection").
#[test]
fn empty_data_flood_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_empty_frame_rate(RateLimit::new(3, SECOND));
        let mut peer = Peer::started(Role::Server, version, config);
        peer.send(&[syn(version, 1, false)]);
        peer.events();
        for _ in 0..3 {
            peer.send(&[data(1, 0, false)]);
            assert_no_frames(&mut peer, version);
        }
        // An empty DATA with FIN is how a stream ends: not counted.
        peer.send(&[syn(version, 3, false), data(3, 0, true)]);
        assert_no_frames(&mut peer, version);
        peer.events();
        peer.send(&[data(1, 0, false)]);
        assert_eq!(
            described(&peer.frames()),
            [describe(&goaway(version, 3, GoAwayStatus::ProtocolError))],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::EmptyFrames);
    }

    // HEADERS with an empty block, not ending the stream, carry nothing
    // either; with FIN they end it and are not counted.
    for version in Version::ALL {
        let config = Config::default().with_empty_frame_rate(RateLimit::new(3, SECOND));
        let mut peer = Peer::started(Role::Server, version, config);
        peer.send(&[syn(version, 1, false), syn(version, 3, false)]);
        peer.events();
        let empty = |id, fin| {
            Frame::Headers(Headers {
                fin,
                ..Headers::new(sid(id), HeaderBlock::new())
            })
        };
        for _ in 0..3 {
            peer.send(&[empty(1, false)]);
            assert_no_frames(&mut peer, version);
        }
        peer.send(&[empty(3, true)]);
        assert_no_frames(&mut peer, version);
        assert!(
            peer.events()
                .iter()
                .all(|e| !matches!(e, Event::Headers { id, .. } if *id == sid(1))),
            "an empty HEADERS is not handed to the application"
        );
        peer.send(&[empty(1, false)]);
        assert_eq!(
            described(&peer.frames()),
            [describe(&goaway(version, 3, GoAwayStatus::ProtocolError))],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::EmptyFrames);
    }

    // SPDY/2's NOOP.
    let version = Version::V2;
    let config = Config::default().with_empty_frame_rate(RateLimit::new(3, SECOND));
    let mut peer = Peer::started(Role::Server, version, config);
    peer.send(&[Frame::Noop(Noop), Frame::Noop(Noop), Frame::Noop(Noop)]);
    assert_no_frames(&mut peer, version);
    peer.send(&[Frame::Noop(Noop)]);
    assert_eq!(
        peer.frames(),
        [goaway(version, 0, GoAwayStatus::ProtocolError)]
    );
    assert_flood(&mut peer, version, Flood::EmptyFrames);
}

/// Data dribble (CVE-2019-9511): DATA frames of a few bytes, each costing a
/// frame's worth of work. `Config::with_small_frame_rate` bounds DATA
/// frames shorter than its length per period (larger frames, and the last
/// frame of a stream, do not count).
#[test]
fn tiny_data_flood_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_small_frame_rate(RateLimit::new(3, SECOND), 100);
        let mut peer = Peer::started(Role::Server, version, config);
        peer.send(&[syn(version, 1, false)]);
        peer.events();
        for _ in 0..3 {
            peer.send(&[data(1, 10, false), data(1, 100, false)]);
            assert_no_frames(&mut peer, version);
        }
        peer.send(&[data(1, 10, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::SmallFrames);
    }
}

/// The same dribble through WINDOW_UPDATE (SPDY/3 and 3.1): tiny window
/// increments make us send one tiny DATA frame each.
/// `Config::with_small_frame_rate` counts WINDOW_UPDATEs below its length
/// too.
#[test]
fn tiny_window_update_flood_ends_the_session() {
    for version in [Version::V3, Version::V3_1] {
        let config = Config::default().with_small_frame_rate(RateLimit::new(3, SECOND), 100);
        let mut peer = client_with_stream(version, config);
        for _ in 0..3 {
            peer.send(&[window_update(1, 10), window_update(1, 1000)]);
            assert_no_frames(&mut peer, version);
        }
        peer.send(&[window_update(1, 10)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::SmallFrames);
    }
}

/// A peer that sends but never reads (CVE-2019-9512, -9517): every PING it
/// sends makes us owe an answer, which waits in our queue while it does not
/// read. `Config::with_max_pending_control` bounds what may be owed; past
/// it the session ends, and the queue is replaced by a single GOAWAY.
#[test]
fn peer_that_does_not_read_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_max_pending_control(16);
        let mut peer = Peer::started(Role::Server, version, config.clone());
        // 16 answers owed, none read: still within the limit.
        let pings: Vec<Frame> = (0..16).map(|n| ping(2 * n + 1)).collect();
        peer.send(&pings);
        assert_eq!(peer.events(), [], "{version}");
        assert!(!peer.session.is_closed(), "{version}");
        // The 17th is one too many.
        peer.send(&[ping(33)]);
        // All that is left to read is the GOAWAY: the 16 owed answers were
        // dropped with the session.
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::PendingControl);

        // Resets owed count the same: DATA for streams that do not exist,
        // each owed a RST_STREAM, never read.
        let mut peer = Peer::started(Role::Server, version, config.clone());
        let unknown: Vec<Frame> = (0..16).map(|n| data(2 * n + 1, 1, false)).collect();
        peer.send(&unknown);
        assert!(!peer.session.is_closed(), "{version}");
        peer.send(&[data(33, 1, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_flood(&mut peer, version, Flood::PendingControl);

        // A peer that reads what it is owed may ping as much as the rate
        // allows.
        let mut peer = Peer::started(Role::Server, version, config);
        for n in 0..100 {
            peer.send(&[ping(2 * n + 1)]);
            assert_eq!(peer.frames(), [ping(2 * n + 1)], "{version}");
        }
        assert!(!peer.session.is_closed(), "{version}");
    }
}

// ===== our own buffers =====

/// What a peer that never opens its window can make us hold
/// (`Config::with_max_send_buffer`): `send_data` past it fails with
/// `UserError::BufferFull` and queues nothing, and `Event::Writable` follows
/// once the peer's WINDOW_UPDATE lets the data drain (SPDY/3 2.6.8: "When
/// the window size becomes less than or equal to 0, the sender must pause
/// transmitting data frames").
#[test]
fn send_buffer_is_bounded_per_stream() {
    for version in [Version::V3, Version::V3_1] {
        let config = Config::default().with_max_send_buffer(1000);
        let mut peer = Peer::started(Role::Client, version, config);
        // Streams start with no send window.
        peer.send(&[settings(&[(SettingId::InitialWindowSize, 0)])]);
        let id = peer
            .session
            .open_stream(request(version, "/"), OpenOptions::default())
            .unwrap();
        peer.send(&[reply(version, 1)]);
        peer.frames();
        peer.events();

        assert_eq!(peer.session.send_capacity(id), Ok(1000));
        peer.session
            .send_data(id, Bytes::from(vec![1u8; 600]), false)
            .unwrap();
        assert_eq!(peer.session.send_capacity(id), Ok(400));
        assert_eq!(
            peer.session
                .send_data(id, Bytes::from(vec![1u8; 600]), false),
            Err(UserError::BufferFull(id))
        );
        peer.session
            .send_data(id, Bytes::from(vec![1u8; 400]), false)
            .unwrap();
        assert_eq!(
            peer.session.send_data(id, Bytes::from(vec![1u8; 1]), false),
            Err(UserError::BufferFull(id))
        );
        assert_eq!(peer.session.send_capacity(id), Ok(0));
        // Nothing may go: the window is 0.
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");

        peer.send(&[window_update(1, 600)]);
        assert_eq!(described(&peer.frames()), ["DATA 1 len=600"], "{version}");
        assert_eq!(peer.events(), [Event::Writable { id }], "{version}");
        assert_eq!(peer.session.send_capacity(id), Ok(600));
        peer.session
            .send_data(id, Bytes::from(vec![1u8; 600]), true)
            .unwrap();
        peer.send(&[window_update(1, 1000)]);
        // The two small writes left (400 + 600 bytes) go out gathered into
        // one frame.
        assert_eq!(
            described(&peer.frames()),
            ["DATA 1 len=1000 fin"],
            "{version}"
        );
    }

    // SPDY/2 has no windows: the buffer drains whenever we write.
    let version = Version::V2;
    let config = Config::default().with_max_send_buffer(1000);
    let mut peer = client_with_stream(version, config);
    peer.session
        .send_data(sid(1), Bytes::from(vec![1u8; 1000]), false)
        .unwrap();
    assert_eq!(
        peer.session
            .send_data(sid(1), Bytes::from(vec![1u8; 1]), false),
        Err(UserError::BufferFull(sid(1)))
    );
    assert_eq!(described(&peer.frames()), ["DATA 1 len=1000"]);
    assert_eq!(peer.events(), [Event::Writable { id: sid(1) }]);
    assert_eq!(peer.session.send_capacity(sid(1)), Ok(1000));
}

// ===== keepalive =====

/// `Config::with_keepalive(idle, timeout)`: after `idle` without input the
/// session sends a PING (SPDY/3 2.6.5: "a mechanism for measuring a
/// minimal round-trip time"), and if nothing arrives within `timeout` it
/// ends with `SessionError::KeepaliveTimeout`, sending a GOAWAY first
/// (2.4.1: "Endpoints should always send a GOAWAY message before closing a
/// connection", 2.6.6).
#[test]
fn unanswered_keepalive_ends_the_session() {
    for version in Version::ALL {
        let config = Config::default().with_keepalive(10 * SECOND, 5 * SECOND);
        let mut peer = Peer::started(Role::Server, version, config);
        peer.send(&[syn(version, 1, false)]);
        peer.events();
        let start = peer.now;
        assert_eq!(peer.session.poll_timeout(), Some(start + 10 * SECOND));
        peer.advance(9 * SECOND);
        assert_no_frames(&mut peer, version);
        peer.advance(SECOND);
        assert_eq!(peer.frames(), [ping(2)], "{version}");
        assert_eq!(
            peer.session.poll_timeout(),
            Some(start + 15 * SECOND),
            "{version}"
        );
        peer.advance(4 * SECOND);
        assert_no_frames(&mut peer, version);
        peer.advance(SECOND);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                Event::StreamFailed {
                    id: sid(1),
                    error: StreamError::SessionClosed
                },
                Event::Closed {
                    error: Some(SessionError::KeepaliveTimeout)
                }
            ],
            "{version}"
        );
        assert!(peer.session.is_closed());
        assert_eq!(peer.session.poll_timeout(), None);
    }
}

/// The other side of the keepalive: an answer in time keeps the session up,
/// reports the round trip, and re-arms the idle timer.
#[test]
fn answered_keepalive_keeps_the_session_up() {
    for version in Version::ALL {
        let config = Config::default().with_keepalive(10 * SECOND, 5 * SECOND);
        let mut peer = Peer::started(Role::Client, version, config);
        let mut idle_left = 10 * SECOND;
        for round in 0..3 {
            peer.advance(idle_left);
            let frames = peer.frames();
            let [Frame::Ping(Ping { id })] = frames.as_slice() else {
                panic!("{version} round {round}: {:?}", described(&frames));
            };
            let id = *id;
            assert_eq!(id % 2, 1, "a client's ping is odd");
            peer.advance(4 * SECOND);
            peer.send(&[ping(id)]);
            assert_eq!(
                peer.events(),
                [Event::Pong {
                    id,
                    rtt: 4 * SECOND
                }],
                "{version}"
            );
            assert_eq!(
                peer.session.poll_timeout(),
                Some(peer.now + 10 * SECOND),
                "{version}"
            );
            peer.advance(5 * SECOND);
            assert_no_frames(&mut peer, version);
            assert!(!peer.session.is_closed(), "{version}");
            idle_left = 5 * SECOND;
        }
    }
}
