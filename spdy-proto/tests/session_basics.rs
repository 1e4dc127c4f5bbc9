//! The session's everyday paths, two sessions back to back: open, reply,
//! data both ways, trailers, half-close, in every version and either role.

mod support;

use bytes::Bytes;
use spdy_proto::frame::{StreamId, Version};
use spdy_proto::session::{Config, Event, OpenOptions, Recv, Session, StreamError};
use support::{block, request, response, Pair};

/// Reads everything buffered on `id`, releasing it, until End or Pending.
fn drain(session: &mut Session, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match session.recv(id, usize::MAX).unwrap() {
            Recv::Data(chunk) => {
                out.extend_from_slice(&chunk);
                session.release_capacity(id, chunk.len()).unwrap();
            }
            Recv::End => return (out, true),
            Recv::Pending => return (out, false),
        }
    }
}

#[test]
fn request_and_response_in_every_version() {
    for version in Version::ALL {
        // The whole 200 KB body is queued at once, ahead of the peer's
        // window: allow that much beyond it.
        let server = Config::default().with_send_slack(256 * 1024);
        let mut pair = Pair::with_configs(version, Config::default(), server);
        let id = pair
            .client
            .open_stream(request(version, "/hello"), OpenOptions::default())
            .unwrap();
        pair.client
            .send_data(id, Bytes::from_static(b"request body"), true)
            .unwrap();
        pair.run();
        let events = pair.take_server_events();
        assert!(
            events.iter().any(|e| matches!(e, Event::StreamOpened { id: got, headers, .. }
                if *got == id && headers.get(if version == Version::V2 { "url" } else { ":path" }).unwrap() == "/hello")),
            "{version}: {events:?}"
        );
        let (body, end) = drain(&mut pair.server, id);
        assert_eq!(
            (body.as_slice(), end),
            (&b"request body"[..], true),
            "{version}"
        );

        pair.server
            .reply(id, response(version, "200 OK"), false)
            .unwrap();
        pair.server
            .send_data(id, Bytes::from(vec![7u8; 300_000]), false)
            .unwrap_err();
        pair.server
            .send_data(id, Bytes::from(vec![7u8; 200_000]), false)
            .unwrap();
        pair.server
            .send_headers(id, block(&[("x-trailer", "done")]), true)
            .unwrap();
        let mut got = Vec::new();
        let mut end = false;
        for _ in 0..1000 {
            pair.step();
            let (chunk, e) = drain(&mut pair.client, id);
            got.extend(chunk);
            end |= e;
            if end {
                break;
            }
        }
        assert!(end, "{version}: response never ended");
        assert_eq!(got.len(), 200_000, "{version}");
        let events = pair.take_client_events();
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Reply { id: got, .. } if *got == id)));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Headers { id: got, headers, .. }
                if *got == id && headers.get("x-trailer").is_some())),
            "{version}: {events:?}"
        );
        pair.run();
        assert_eq!(pair.client.active_streams(), (0, 0), "{version}");
        assert_eq!(pair.server.active_streams(), (0, 0), "{version}");
        assert!(pair
            .take_server_events()
            .iter()
            .any(|e| matches!(e, Event::StreamClosed { id: got } if *got == id)));
    }
}

#[test]
fn a_server_can_open_streams_and_a_client_serve_them() {
    // Roles are about stream ids, not about who dialed: the server side
    // opens a stream and the client side replies.
    for version in Version::ALL {
        let mut pair = Pair::new(version);
        let id = pair
            .server
            .open_stream(request(version, "/from-the-server"), OpenOptions::default())
            .unwrap();
        assert!(id.is_server_initiated());
        pair.run();
        assert!(pair
            .take_client_events()
            .iter()
            .any(|e| matches!(e, Event::StreamOpened { id: got, .. } if *got == id)));
        pair.client
            .reply(id, response(version, "200 OK"), true)
            .unwrap();
        pair.server.send_data(id, Bytes::new(), true).unwrap();
        pair.run();
        assert!(pair
            .take_server_events()
            .iter()
            .any(|e| matches!(e, Event::Reply { id: got, fin: true, .. } if *got == id)));
        assert_eq!(pair.server.active_streams(), (0, 0));
    }
}

#[test]
fn reset_by_the_client_reaches_the_server() {
    let version = Version::V3_1;
    let mut pair = Pair::new(version);
    let id = pair
        .client
        .open_stream(request(version, "/"), OpenOptions::default())
        .unwrap();
    pair.run();
    pair.client
        .reset(id, spdy_proto::frame::RstStatus::Cancel)
        .unwrap();
    pair.run();
    assert!(pair.take_server_events().iter().any(|e| matches!(
        e,
        Event::StreamFailed { id: got, error: StreamError::Reset { status: spdy_proto::frame::RstStatus::Cancel, .. } }
            if *got == id
    )));
    assert_eq!(pair.server.active_streams(), (0, 0));
    assert_eq!(pair.client.active_streams(), (0, 0));
}

/// A session of fixed version whose peer opens in another version ends at
/// once (GOAWAY in its own version) instead of both sides ignoring each
/// other's frames forever.
#[test]
fn a_peer_speaking_another_version_ends_the_session() {
    use spdy_proto::session::{Config, ProtocolViolation, Role, SessionError};
    let mut client = Session::new(Role::Client, Version::V3_1, Config::default());
    let mut server = Session::new(Role::Server, Version::V2, Config::default());
    let now = std::time::Instant::now();
    client
        .open_stream(request(Version::V3_1, "/"), OpenOptions::default())
        .unwrap();
    let mut wire = bytes::BytesMut::new();
    while let Some(mut t) = client.poll_transmit(now) {
        use bytes::Buf;
        let n = t.remaining();
        wire.extend_from_slice(&t.copy_to_bytes(n));
    }
    server.handle_input(now, &mut wire);
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        events.contains(&Event::Closed {
            error: Some(SessionError::Protocol(
                ProtocolViolation::UnsupportedVersion(3)
            ))
        }),
        "{events:?}"
    );
    assert!(server.poll_transmit(now).is_some(), "a GOAWAY goes out");
    assert!(server.is_closed());
}

/// A server may answer before reading the whole request (a 413, say). When
/// its application gives up the stream after queuing the answer, the answer
/// still goes out in full, then RST_STREAM CANCEL stops the upload; the
/// client keeps the complete response readable and its upload ends.
#[test]
fn an_early_answer_arrives_whole_and_then_stops_the_upload() {
    for version in Version::ALL {
        let client = Config::default().with_send_slack(256 * 1024);
        let mut pair = Pair::with_configs(version, client, Config::default());
        let id = pair
            .client
            .open_stream(request(version, "/upload"), OpenOptions::default())
            .unwrap();
        pair.client
            .send_data(id, Bytes::from(vec![1u8; 200_000]), false)
            .unwrap();
        pair.step();
        pair.server
            .reply(id, response(version, "413 Payload Too Large"), false)
            .unwrap();
        pair.server
            .send_data(id, Bytes::from_static(b"too large"), true)
            .unwrap();
        pair.server.cancel(id).unwrap();
        pair.run();
        let (body, end) = drain(&mut pair.client, id);
        assert_eq!(
            (body.as_slice(), end),
            (&b"too large"[..], true),
            "{version}"
        );
        assert_eq!(
            pair.client
                .send_data(id, Bytes::from_static(b"more"), false),
            Err(spdy_proto::session::UserError::UnknownStream(id)),
            "{version}: the upload is over"
        );
        assert_eq!(pair.client.active_streams(), (0, 0), "{version}");
        assert_eq!(pair.server.active_streams(), (0, 0), "{version}");
        let events = pair.take_client_events();
        assert!(!events
            .iter()
            .any(|e| matches!(e, Event::StreamFailed { .. })));
        assert!(events.contains(&Event::SendStopped {
            id,
            status: spdy_proto::frame::RstStatus::Cancel
        }));
    }
}

/// A peer without flow control (Kubernetes' spdystream): with
/// `with_peer_flow_control(false)` we send past its (never reopened)
/// windows, accept DATA past ours without resetting it, send no
/// WINDOW_UPDATE, and bound memory by pausing input instead.
#[test]
fn a_peer_without_flow_control_is_neither_waited_for_nor_reset() {
    use spdy_proto::frame::{Data, Frame, SynStream};
    use spdy_proto::session::{Config, Role};
    let config = Config::default()
        .with_peer_flow_control(false)
        .with_session_window(1 << 20);
    let mut peer = support::Peer::started(Role::Server, Version::V3, config);
    let id = support::sid(1);
    peer.send(&[Frame::SynStream(SynStream::new(
        id,
        request(Version::V3, "/exec"),
    ))]);
    peer.events();
    peer.session
        .reply(id, response(Version::V3, "200"), false)
        .unwrap();
    // 200 KiB out at once: far past the 64 KiB window the peer never opens.
    peer.session
        .send_data(id, Bytes::from(vec![7u8; 200 * 1024]), false)
        .unwrap();
    let sent: usize = peer
        .frames()
        .iter()
        .map(|f| match f {
            Frame::Data(d) => d.data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent, 200 * 1024);
    // 300 KiB in: past our 64 KiB window, no reset, nothing owed.
    peer.send(&[Frame::Data(Data::new(
        id,
        Bytes::from(vec![1u8; 300 * 1024]),
        false,
    ))]);
    assert!(peer.frames().is_empty(), "no RST_STREAM, no WINDOW_UPDATE");
    assert!(peer.session.wants_input());
    // 300 KiB more: over half the session window unread, input pauses.
    peer.send(&[Frame::Data(Data::new(
        id,
        Bytes::from(vec![1u8; 300 * 1024]),
        false,
    ))]);
    assert!(!peer.session.wants_input());
    let (got, _) = drain(&mut peer.session, id);
    assert_eq!(got.len(), 600 * 1024);
    assert!(peer.session.wants_input());
    assert!(
        peer.frames().is_empty(),
        "still no WINDOW_UPDATE after reading"
    );
}

/// Frames that cost work and carry nothing for us (answers to pings we never
/// sent, resets of unknown streams, repeated GOAWAYs) count against the
/// empty-frame limit, so a flood of them ends the session.
#[test]
fn floods_of_cheap_ignored_frames_end_the_session() {
    use spdy_proto::frame::{Frame, GoAway, GoAwayStatus, Ping, RstStatus, RstStream, StreamId};
    use spdy_proto::session::{Config, Flood, RateLimit, Role, SessionError};
    let floods: [&dyn Fn(u32) -> Frame; 3] = [
        // Even ids: the server's own parity, never sent by it.
        &|i| Frame::Ping(Ping::new(2 * i + 2)),
        &|i| {
            Frame::RstStream(RstStream::new(
                support::sid(1001 + 2 * i),
                RstStatus::Cancel,
            ))
        },
        &|_| Frame::GoAway(GoAway::new(StreamId::ZERO, GoAwayStatus::Ok)),
    ];
    for (n, make) in floods.iter().enumerate() {
        let config = Config::default()
            .with_empty_frame_rate(RateLimit::new(5, std::time::Duration::from_secs(1)));
        let mut peer = support::Peer::started(Role::Server, Version::V3_1, config);
        // An open stream keeps the session from simply draining away.
        let syn = spdy_proto::frame::SynStream::new(support::sid(1), request(Version::V3_1, "/"));
        let mut frames = vec![Frame::SynStream(syn)];
        frames.extend((0..10).map(make));
        peer.send(&frames);
        let events = peer.events();
        assert!(
            events.contains(&Event::Closed {
                error: Some(SessionError::Flood(Flood::EmptyFrames))
            }),
            "flood {n}: {events:?}"
        );
    }
}

/// A peer without flow control (spdystream) stops reading at GOAWAY: in
/// peer-compat mode our GOAWAY waits until the open streams are done, so
/// data queued before it is never cut off.
#[test]
fn goaway_waits_for_open_streams_when_the_peer_has_no_flow_control() {
    use spdy_proto::frame::{Frame, GoAwayStatus, SynStream};
    use spdy_proto::session::{Config, Role};
    let config = Config::default().with_peer_flow_control(false);
    let mut peer = support::Peer::started(Role::Server, Version::V3, config);
    let id = support::sid(1);
    let mut syn = SynStream::new(id, request(Version::V3, "/exec"));
    syn.fin = true;
    peer.send(&[Frame::SynStream(syn)]);
    peer.events();
    peer.session
        .reply(id, response(Version::V3, "200"), false)
        .unwrap();
    peer.session
        .send_data(id, Bytes::from_static(b"exit status"), false)
        .unwrap();
    peer.session.go_away(GoAwayStatus::Ok);
    let frames = peer.frames();
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::GoAway(_))),
        "GOAWAY before the stream ended: {frames:?}"
    );
    peer.session.send_data(id, Bytes::new(), true).unwrap();
    let frames = peer.frames();
    let last = frames.last();
    assert!(matches!(last, Some(Frame::GoAway(_))), "{frames:?}");
    assert!(peer.session.is_closed());
}
