//! Scripted peers that behave like SPDY implementations found in the
//! field but not run by the interop suite, and the session's behaviour
//! facing each (issue 14): what our GOAWAY tells a peer, a detected SPDY/3
//! session that turns out to be 3.1, peers that ignore
//! SETTINGS_INITIAL_WINDOW_SIZE, and peers that never open a window.

mod support;

use bytes::Bytes;
use spdy_proto::frame::{Data, Frame, GoAway, GoAwayStatus, StreamId, SynStream, Version};
use spdy_proto::session::{Config, Event, Recv, Role};
use support::{request, response, sid, Peer};

fn syn(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        fin,
        ..SynStream::new(sid(id), request(version, "/"))
    })
}

fn data(id: u32, len: usize, fin: bool) -> Frame {
    Frame::Data(Data::new(sid(id), vec![b'x'; len], fin))
}

fn goaways(frames: &[Frame]) -> Vec<GoAway> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::GoAway(g) => Some(*g),
            _ => None,
        })
        .collect()
}

// ===== GOAWAY's last-good stream id =====

/// SPDY/3 2.6.6: streams above the last-good id "were not processed by the
/// server and the receiver may treat the stream as though it had never
/// been created". A stream the application was never handed is such a
/// stream: the GOAWAY names the last one it was handed, and the other
/// never reaches it.
#[test]
fn graceful_goaway_names_the_last_stream_handed_to_the_application() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 1, false), syn(version, 3, false)]);
        // The application takes the first stream, then decides to go away
        // before it has seen the second.
        assert!(matches!(
            peer.session.poll_event(),
            Some(Event::StreamOpened { id, .. }) if id == sid(1)
        ));
        peer.session.go_away(GoAwayStatus::Ok);
        let frames = peer.frames();
        let sent = goaways(&frames);
        assert_eq!(sent.len(), 1, "{version}: {frames:?}");
        assert_eq!(sent[0].last_good_stream_id, sid(1), "{version}");
        let events = peer.events();
        assert!(
            events.iter().all(|e| !matches!(e,
                Event::StreamOpened { id, .. } | Event::Readable { id }
                | Event::StreamFailed { id, .. } if *id == sid(3))),
            "{version}: stream 3 reached the application: {events:?}"
        );
        assert_eq!(peer.session.active_streams(), (0, 1), "{version}");
        // What the peer sent on stream 3 before it saw the GOAWAY is
        // dropped quietly (no reset: for the peer the stream never
        // existed), and stream 1 still finishes.
        peer.send(&[data(3, 100, true), data(1, 10, true)]);
        assert!(peer.frames().is_empty(), "{version}");
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert_eq!(
            peer.session.recv(sid(1), 100),
            Ok(Recv::Data(Bytes::from(vec![b'x'; 10])))
        );
        peer.session.release_capacity(sid(1), 10).unwrap();
        assert_eq!(peer.session.recv(sid(1), 100), Ok(Recv::End));
        let frames = peer.frames();
        assert!(
            matches!(frames.first(), Some(Frame::SynReply(r)) if r.stream_id == sid(1)),
            "{version}: {frames:?}"
        );
        let events = peer.events();
        assert!(
            events.contains(&Event::Closed { error: None }),
            "{version}: {events:?}"
        );
    }
}

/// A session error found in the same read as new streams: the application
/// processed none of them, so the GOAWAY says 0 ("If no streams were
/// replied to, this value MUST be 0") and the streams never reach it.
#[test]
fn session_error_before_the_application_saw_a_stream_names_none() {
    for version in [Version::V3, Version::V3_1] {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        // Stream 1, then a stream id going backwards: a session error.
        peer.send(&[syn(version, 3, false), syn(version, 1, false)]);
        let frames = peer.frames();
        let sent = goaways(&frames);
        assert_eq!(sent.len(), 1, "{version}: {frames:?}");
        assert_eq!(sent[0].last_good_stream_id, StreamId::ZERO, "{version}");
        assert_eq!(sent[0].status, GoAwayStatus::ProtocolError, "{version}");
        let events = peer.events();
        assert!(
            matches!(events.as_slice(), [Event::Closed { error: Some(_) }]),
            "{version}: {events:?}"
        );
    }
}

/// The other side of the same rule: a stream the application was handed
/// is named even if the error comes in the next read.
#[test]
fn session_error_after_the_application_saw_a_stream_names_it() {
    for version in [Version::V3, Version::V3_1] {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 3, false)]);
        assert!(matches!(
            peer.events().as_slice(),
            [Event::StreamOpened { id, .. }] if *id == sid(3)
        ));
        peer.send(&[syn(version, 1, false)]);
        let frames = peer.frames();
        let sent = goaways(&frames);
        assert_eq!(sent.len(), 1, "{version}: {frames:?}");
        assert_eq!(sent[0].last_good_stream_id, sid(3), "{version}");
        let events = peer.events();
        assert!(
            events.contains(&Event::StreamFailed {
                id: sid(3),
                error: spdy_proto::session::StreamError::SessionClosed
            }),
            "{version}: {events:?}"
        );
    }
}
