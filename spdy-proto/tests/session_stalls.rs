//! The waits on a peer that stops half-way: no first frame, a frame left
//! half-received, a session left idle. Each must end the session at its
//! deadline, with the precise answer, and never earlier.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use spdy_proto::frame::{Frame, GoAwayStatus, Ping, SynStream, Version};
use spdy_proto::session::{Config, Event, Role, Session, SessionError, Stall};
use support::{request, response, sid, Peer};

const S: Duration = Duration::from_secs(1);

fn timeouts() -> Config {
    Config::default()
        .with_first_frame_timeout(Some(10 * S))
        .with_frame_timeout(Some(5 * S))
        .with_idle_timeout(Some(60 * S))
}

fn closed_with(events: &[Event]) -> Option<Option<SessionError>> {
    events.iter().find_map(|e| match e {
        Event::Closed { error } => Some(error.clone()),
        _ => None,
    })
}

fn goaway(frames: &[Frame]) -> Option<GoAwayStatus> {
    frames.iter().find_map(|f| match f {
        Frame::GoAway(g) => Some(g.status),
        _ => None,
    })
}

#[test]
fn a_server_ends_a_session_whose_client_sends_nothing() {
    let mut peer = Peer::new(Role::Server, Version::V3_1, timeouts());
    peer.frames(); // starts the clock
    assert_eq!(peer.session.poll_timeout(), Some(peer.now + 10 * S));
    peer.advance(9 * S);
    assert!(goaway(&peer.frames()).is_none());
    assert_eq!(closed_with(&peer.events()), None);
    peer.advance(S);
    assert_eq!(goaway(&peer.frames()), Some(GoAwayStatus::ProtocolError));
    assert_eq!(
        closed_with(&peer.events()),
        Some(Some(SessionError::Stalled(Stall::FirstFrame)))
    );
    assert!(peer.session.is_closed());
}

#[test]
fn a_detecting_server_closes_a_silent_socket_without_a_goaway() {
    let mut session = Session::detecting(timeouts());
    let t0 = std::time::Instant::now();
    assert!(session.poll_transmit(t0).is_none());
    assert_eq!(session.poll_timeout(), Some(t0 + 10 * S));
    session.handle_timeout(t0 + 10 * S);
    // The version is unknown: nothing can be encoded, the socket just goes.
    assert!(session.poll_transmit(t0 + 10 * S).is_none());
    assert!(session.is_closed());
}

#[test]
fn a_client_does_not_wait_for_a_first_frame() {
    let mut peer = Peer::new(
        Role::Client,
        Version::V3_1,
        timeouts().with_idle_timeout(None),
    );
    peer.frames();
    assert_eq!(peer.session.poll_timeout(), None);
}

#[test]
fn half_a_frame_header_ends_the_session_at_the_frame_timeout() {
    let mut peer = Peer::new(Role::Server, Version::V3, timeouts());
    peer.frames();
    // A PING arrives whole (the first frame), then half of another.
    let mut wire = BytesMut::new();
    peer.encoder
        .encode(&Frame::Ping(Ping::new(1)), &mut wire)
        .unwrap();
    let mut buf = wire.split_to(wire.len());
    peer.session.handle_input(peer.now, &mut buf);
    peer.frames();
    let t = peer.now;
    let mut half = BytesMut::from(&[0x80, 0x03, 0x00][..]);
    peer.session.handle_input(t, &mut half);
    assert_eq!(half.len(), 3, "a partial header stays in the buffer");
    assert_eq!(peer.session.poll_timeout(), Some(t + 5 * S));
    peer.advance(5 * S);
    assert_eq!(goaway(&peer.frames()), Some(GoAwayStatus::ProtocolError));
    assert_eq!(
        closed_with(&peer.events()),
        Some(Some(SessionError::Stalled(Stall::PartialFrame)))
    );
}

#[test]
fn a_data_frame_that_keeps_arriving_is_not_cut_but_one_that_stops_is() {
    let mut peer = Peer::new(Role::Server, Version::V3, timeouts());
    peer.frames();
    peer.send(&[Frame::SynStream(SynStream::new(
        sid(1),
        request(Version::V3, "/upload"),
    ))]);
    peer.events();
    peer.session
        .reply(sid(1), response(Version::V3, "200"), false)
        .unwrap();
    peer.frames();
    // A DATA frame of 60,000 bytes, of which 1,000 come every 4 s.
    let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0xea, 0x60][..]);
    peer.session.handle_input(peer.now, &mut buf);
    for _ in 0..10 {
        peer.now += 4 * S;
        peer.session.handle_timeout(peer.now);
        // The caller keeps what the session leaves, as the driver does.
        buf.extend_from_slice(&[7u8; 1000]);
        peer.session.handle_input(peer.now, &mut buf);
        let events = peer.events();
        assert!(closed_with(&events).is_none(), "{events:?}");
    }
    // Then nothing for the frame timeout.
    peer.advance(5 * S);
    assert_eq!(
        closed_with(&peer.events()),
        Some(Some(SessionError::Stalled(Stall::PartialFrame)))
    );
}

#[test]
fn an_idle_session_goes_away_gracefully_and_an_active_one_does_not() {
    let mut peer = Peer::new(Role::Server, Version::V3_1, timeouts());
    peer.frames();
    peer.send(&[Frame::SynStream(SynStream {
        fin: true,
        ..SynStream::new(sid(1), request(Version::V3_1, "/"))
    })]);
    peer.events();
    // A stream is open for two minutes: no idle timeout meanwhile.
    for _ in 0..12 {
        peer.advance(10 * S);
    }
    assert!(goaway(&peer.frames()).is_none());
    peer.session
        .reply(sid(1), response(Version::V3_1, "200"), true)
        .unwrap();
    assert_eq!(
        peer.session.recv(sid(1), 100),
        Ok(spdy_proto::session::Recv::End)
    );
    peer.frames();
    let idle_from = peer.now;
    assert_eq!(peer.session.poll_timeout(), Some(idle_from + 60 * S));
    peer.advance(59 * S);
    assert!(goaway(&peer.frames()).is_none());
    peer.advance(S);
    assert_eq!(goaway(&peer.frames()), Some(GoAwayStatus::Ok));
    assert_eq!(closed_with(&peer.events()), Some(None));
    assert!(peer.session.is_closed());
}

#[test]
fn no_idle_timeout_by_default() {
    let mut peer = Peer::new(Role::Server, Version::V3_1, Config::default());
    peer.frames();
    peer.send(&[Frame::Ping(Ping::new(1))]);
    peer.frames();
    assert_eq!(peer.session.poll_timeout(), None);
}
