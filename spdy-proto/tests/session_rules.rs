//! The protocol rules of the session, one test per rule, against a scripted
//! peer: each test sends raw frames and asserts the exact frames the session
//! answers with (which RST_STREAM status on which stream, which GOAWAY, or
//! nothing) and the events its application sees.
//!
//! Section numbers are those of SPDY/3 and 3.1 (the same in both); SPDY/2
//! has no numbers, so its sections are named.

mod support;

use std::time::Duration;

use bytes::Bytes;
use spdy_proto::frame::{
    Data, Frame, GoAway, GoAwayStatus, Headers, Ping, RstStatus, RstStream, Setting, SettingId,
    Settings, StreamId, SynReply, SynStream, Version, WindowUpdate,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{
    Config, Event, Initiator, OpenOptions, ProtocolViolation, Recv, Role, Session, SessionError,
    StreamError, UserError, MAX_WINDOW,
};
use support::{block, request, response, sid, Peer};

/// The versions with flow control and the SPDY/3 status codes.
const V3S: [Version; 2] = [Version::V3, Version::V3_1];

// ===== frames =====

fn rst(id: u32, status: RstStatus) -> Frame {
    Frame::RstStream(RstStream::new(sid(id), status))
}

/// A GOAWAY as the peer decodes it: SPDY/2's has no status (it reads as OK).
fn goaway(version: Version, last_good: u32, status: GoAwayStatus) -> Frame {
    let status = if version == Version::V2 {
        GoAwayStatus::Ok
    } else {
        status
    };
    Frame::GoAway(GoAway::new(StreamId::from_wire(last_good), status))
}

fn syn(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        fin,
        ..SynStream::new(StreamId::from_wire(id), request(version, "/"))
    })
}

fn reply(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynReply(SynReply {
        fin,
        ..SynReply::new(sid(id), response(version, "200 OK"))
    })
}

fn data(id: u32, len: usize, fin: bool) -> Frame {
    Frame::Data(Data::new(sid(id), vec![b'x'; len], fin))
}

fn window_update(id: u32, delta: u32) -> Frame {
    Frame::WindowUpdate(WindowUpdate::new(StreamId::from_wire(id), delta))
}

fn settings(entries: &[(SettingId, u32)]) -> Frame {
    Frame::Settings(Settings::new(
        entries
            .iter()
            .map(|&(id, value)| Setting::new(id, value))
            .collect(),
    ))
}

/// The headers naming a pushed resource: `url` in SPDY/2, `:scheme`,
/// `:host` and `:path` in SPDY/3, plus a response status.
fn push_headers(version: Version, path: &str) -> HeaderBlock {
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

/// A pushed SYN_STREAM as a server sends it: associated, unidirectional.
fn push(id: u32, associated_to: u32, headers: HeaderBlock) -> Frame {
    Frame::SynStream(SynStream {
        associated_to: sid(associated_to),
        unidirectional: true,
        ..SynStream::new(sid(id), headers)
    })
}

/// One line per frame: enough to compare sequences of DATA and headers
/// frames exactly without spelling out their header blocks.
fn describe(frame: &Frame) -> String {
    let flag = |on: bool, name: &str| {
        if on {
            format!(" {name}")
        } else {
            String::new()
        }
    };
    match frame {
        Frame::Data(f) => format!(
            "DATA {} len={}{}",
            f.stream_id,
            f.data.len(),
            flag(f.fin, "fin")
        ),
        Frame::SynStream(f) => format!(
            "SYN_STREAM {}{}{}{}",
            f.stream_id,
            if f.associated_to.is_zero() {
                String::new()
            } else {
                format!(" assoc={}", f.associated_to)
            },
            flag(f.fin, "fin"),
            flag(f.unidirectional, "uni")
        ),
        Frame::SynReply(f) => format!("SYN_REPLY {}{}", f.stream_id, flag(f.fin, "fin")),
        Frame::Headers(f) => format!("HEADERS {}{}", f.stream_id, flag(f.fin, "fin")),
        Frame::RstStream(f) => format!("RST_STREAM {} {}", f.stream_id, f.status),
        Frame::GoAway(f) => format!("GOAWAY {} {}", f.last_good_stream_id, f.status),
        Frame::WindowUpdate(f) => format!("WINDOW_UPDATE {} {}", f.stream_id, f.delta),
        Frame::Ping(f) => format!("PING {}", f.id),
        Frame::Settings(_) => "SETTINGS".to_owned(),
        other => format!("{other:?}"),
    }
}

/// What a session sends first with the default session window: SETTINGS
/// with its MAX_CONCURRENT_STREAMS (and `extra` entries) and, in SPDY/3.1,
/// a WINDOW_UPDATE raising the session window from 64 KiB to 1 MiB.
fn opening_frames(version: Version, max_concurrent: u32, extra: Vec<Setting>) -> Vec<Frame> {
    let mut entries = vec![Setting::new(
        SettingId::MaxConcurrentStreams,
        max_concurrent,
    )];
    entries.extend(extra);
    let mut frames = vec![Frame::Settings(Settings::new(entries))];
    if version == Version::V3_1 {
        frames.push(window_update(0, (1 << 20) - 65536));
    }
    frames
}

fn described(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(describe).collect()
}

// ===== sessions =====

/// A client session that opened stream 1 (SYN_STREAM already read).
fn client_with_stream(version: Version, config: Config, fin: bool) -> Peer {
    let mut peer = Peer::started(Role::Client, version, config);
    let id = peer
        .session
        .open_stream(
            request(version, "/"),
            OpenOptions {
                fin,
                ..OpenOptions::default()
            },
        )
        .unwrap();
    assert_eq!(id, sid(1));
    let sent = described(&peer.frames());
    let want = if fin {
        "SYN_STREAM 1 fin"
    } else {
        "SYN_STREAM 1"
    };
    assert_eq!(sent, [want], "{version}");
    assert_eq!(peer.events(), [Event::StreamStarted { id }], "{version}");
    peer
}

/// A server session whose peer opened stream 1.
fn server_with_stream(version: Version, config: Config, fin: bool) -> Peer {
    let mut peer = Peer::started(Role::Server, version, config);
    peer.send(&[syn(version, 1, fin)]);
    assert_no_frames(&mut peer, version);
    let events = peer.events();
    assert!(
        matches!(events.first(), Some(Event::StreamOpened { id, .. }) if *id == sid(1)),
        "{version}: {events:?}"
    );
    peer
}

fn assert_no_frames(peer: &mut Peer, version: Version) {
    let frames = peer.frames();
    assert!(
        frames.is_empty(),
        "{version}: expected no answer, got {:?}",
        described(&frames)
    );
}

fn local_reset(status: RstStatus) -> StreamError {
    StreamError::Reset {
        status,
        initiator: Initiator::Local,
    }
}

fn failed(id: u32, error: StreamError) -> Event {
    Event::StreamFailed { id: sid(id), error }
}

fn closed_with(error: impl Into<SessionError>) -> Event {
    Event::Closed {
        error: Some(error.into()),
    }
}

// ===== stream creation (2.3.2) =====

/// SPDY/3 2.3.2: "0 is not a valid Stream-ID." A SYN_STREAM on stream 0 is
/// a session error, and 2.4.1: "the endpoint encountering the error MUST
/// first send a GOAWAY (Section 2.6.6) frame with the stream id of most
/// recently received stream from the remote endpoint". (SPDY/2, "Stream
/// creation": "0 is not a valid Stream-ID.")
#[test]
fn syn_stream_on_stream_zero_is_a_session_error() {
    for version in Version::ALL {
        let mut peer = server_with_stream(version, Config::default(), false);
        peer.send(&[syn(version, 0, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                failed(1, StreamError::SessionClosed),
                closed_with(ProtocolViolation::StreamIdZero)
            ],
            "{version}"
        );
        assert!(peer.session.is_closed());
    }
}

/// SPDY/3 2.3.2: "If the server is initiating the stream, the Stream-ID must
/// be even. If the client is initiating the stream, the Stream-ID must be
/// odd." A peer opening a stream of our parity breaks the session; 2.4.1:
/// "MUST first send a GOAWAY".
#[test]
fn syn_stream_with_our_parity_is_a_session_error() {
    for version in Version::ALL {
        // A client opening an even stream on a server.
        let mut peer = server_with_stream(version, Config::default(), false);
        peer.send(&[syn(version, 2, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                failed(1, StreamError::SessionClosed),
                closed_with(ProtocolViolation::WrongParity(sid(2)))
            ],
            "{version}"
        );

        // A server opening an odd stream on a client.
        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[syn(version, 1, false)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 0, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [closed_with(ProtocolViolation::WrongParity(sid(1)))],
            "{version}"
        );
    }
}

/// SPDY/3 2.3.2: "If an endpoint receives a SYN_STREAM with a stream id
/// which is less than any previously received SYN_STREAM, it MUST issue a
/// session error (Section 2.4.1) with the status PROTOCOL_ERROR." (SPDY/2:
/// "Stream-IDs from each side of the connection must increase
/// monotonically".)
#[test]
fn syn_stream_with_a_lower_id_is_a_session_error() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 5, true)]);
        assert_no_frames(&mut peer, version);
        peer.events();
        peer.send(&[syn(version, 3, true)]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 5, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                failed(5, StreamError::SessionClosed),
                closed_with(ProtocolViolation::StreamIdNotIncreasing {
                    id: sid(3),
                    last: sid(5)
                })
            ],
            "{version}"
        );
    }
}

/// SPDY/3 2.3.2: "If a recipient receives a second SYN_STREAM for the same
/// stream, it MUST issue a stream error Section (2.4.2) with the status code
/// PROTOCOL_ERROR." (SPDY/2, SYN_STREAM: "it must drop the stream, and send
/// a RST_STREAM for the stream with the error PROTOCOL_ERROR.") The session
/// itself goes on.
#[test]
fn second_syn_stream_for_the_same_id_is_reset_with_protocol_error() {
    for version in Version::ALL {
        let mut peer = server_with_stream(version, Config::default(), false);
        peer.send(&[syn(version, 1, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::ProtocolError))],
            "{version}"
        );
        assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
        // The session is still usable.
        peer.send(&[syn(version, 3, true)]);
        assert_no_frames(&mut peer, version);
        assert!(matches!(
            peer.events().first(),
            Some(Event::StreamOpened { id, .. }) if *id == sid(3)
        ));
    }
}

// ===== DATA (2.2.2, 2.3.6) =====

/// SPDY/3 2.2.2: "If an endpoint receives a data frame for a stream-id which
/// is not open and the endpoint has not sent a GOAWAY (Section 2.6.6) frame,
/// it MUST issue a stream error (Section 2.4.2) with the error code
/// INVALID_STREAM for the stream-id." (SPDY/2: "it must return a RST_STREAM
/// with error code INVALID_STREAM for the stream-id.")
#[test]
fn data_for_an_unknown_stream_is_reset_with_invalid_stream() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[data(1, 10, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::InvalidStream)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");

        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[data(2, 10, true)]);
        assert_eq!(
            peer.frames(),
            [rst(2, RstStatus::InvalidStream)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 2.2.2: DATA "for a stream-id which is not open" MUST be answered
/// with INVALID_STREAM. A stream id the peer skipped (it opened 5 without
/// ever opening 3) was never open, so 2.3.7's PROTOCOL_ERROR for DATA
/// "after the stream is closed" does not apply to it. (SPDY/2: "for a
/// stream-id which does not exist, it must return a RST_STREAM with error
/// code INVALID_STREAM".)
#[test]
fn data_for_a_skipped_stream_id_is_reset_with_invalid_stream() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 5, false)]);
        peer.events();
        peer.send(&[data(3, 10, false)]);
        assert_eq!(
            peer.frames(),
            [rst(3, RstStatus::InvalidStream)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 2.3.7: "If an endpoint receives a data frame after the stream is
/// closed, it must send a RST_STREAM to the sender with the status
/// PROTOCOL_ERROR."
#[test]
fn data_after_the_stream_closed_is_reset_with_protocol_error() {
    for version in V3S {
        let mut peer = server_with_stream(version, Config::default(), true);
        peer.events();
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert_eq!(described(&peer.frames()), ["SYN_REPLY 1 fin"]);
        assert_eq!(peer.events(), [Event::StreamClosed { id: sid(1) }]);
        assert_eq!(peer.session.recv(sid(1), 100), Ok(Recv::End));
        peer.send(&[data(1, 5, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 2.2.2: "If the endpoint which created the stream receives a data
/// frame before receiving a SYN_REPLY on that stream, it is a protocol
/// error, and the recipient MUST issue a stream error (Section 2.4.2) with
/// the status code PROTOCOL_ERROR for the stream-id." (SPDY/2 only says the
/// receiver "should close the connection", so it is not covered here.)
#[test]
fn data_before_syn_reply_is_reset_with_protocol_error() {
    for version in V3S {
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.send(&[data(1, 5, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::ProtocolError))],
            "{version}"
        );
        assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
    }
}

/// SPDY/3 2.3.6: "If an endpoint receives a data frame after the stream is
/// half-closed from the sender (e.g. the endpoint has already received a
/// prior frame for the stream with the FIN flag set), it MUST send a
/// RST_STREAM to the sender with the status STREAM_ALREADY_CLOSED."
#[test]
fn data_after_the_peers_fin_is_reset_with_stream_already_closed() {
    for version in V3S {
        // FIN on the peer's SYN_STREAM.
        let mut peer = server_with_stream(version, Config::default(), true);
        peer.events();
        peer.send(&[data(1, 5, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::StreamAlreadyClosed)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::StreamAlreadyClosed))],
            "{version}"
        );

        // FIN on a DATA frame of a stream we opened.
        let mut peer = client_with_stream(version, Config::default(), false);
        peer.send(&[reply(version, 1, false), data(1, 5, true)]);
        assert_no_frames(&mut peer, version);
        peer.events();
        peer.send(&[data(1, 5, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::StreamAlreadyClosed)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::StreamAlreadyClosed))],
            "{version}"
        );
    }
}

// ===== SYN_REPLY and HEADERS (2.6.2, 2.6.7) =====

/// SPDY/3 2.6.2: "If an endpoint receives multiple SYN_REPLY frames for the
/// same active stream ID, it MUST issue a stream error (Section 2.4.2) with
/// the error code STREAM_IN_USE." SPDY/2, SYN_REPLY: "it must drop the
/// stream, and send a RST_STREAM for the stream with the error
/// PROTOCOL_ERROR."
#[test]
fn second_syn_reply_is_reset_with_stream_in_use() {
    for version in Version::ALL {
        let status = if version == Version::V2 {
            RstStatus::ProtocolError
        } else {
            RstStatus::StreamInUse
        };
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.send(&[reply(version, 1, false)]);
        assert_no_frames(&mut peer, version);
        assert!(matches!(
            peer.events().as_slice(),
            [Event::Reply { id, fin: false, .. }] if *id == sid(1)
        ));
        peer.send(&[reply(version, 1, false)]);
        assert_eq!(peer.frames(), [rst(1, status)], "{version}");
        let events = peer.events();
        assert!(
            matches!(
                events.as_slice(),
                [Event::StreamFailed { id, error: StreamError::Reset { initiator: Initiator::Local, .. } }]
                    if *id == sid(1)
            ),
            "{version}: {events:?}"
        );
        assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
    }
}

/// The `StreamError::Reset` docs: `status` is "The status sent or
/// received". In SPDY/2, which has no STREAM_IN_USE or
/// STREAM_ALREADY_CLOSED, the session sends PROTOCOL_ERROR (SPDY/2,
/// SYN_REPLY: "send a RST_STREAM for the stream with the error
/// PROTOCOL_ERROR"), so the application must be told PROTOCOL_ERROR too,
/// not a code SPDY/2 does not define.
#[test]
fn stream_failed_reports_the_status_put_on_the_wire_in_spdy2() {
    let version = Version::V2;
    let mut peer = client_with_stream(version, Config::default(), true);
    peer.send(&[reply(version, 1, false)]);
    peer.frames();
    peer.events();
    peer.send(&[reply(version, 1, false)]);
    assert_eq!(peer.frames(), [rst(1, RstStatus::ProtocolError)]);
    assert_eq!(
        peer.events(),
        [failed(1, local_reset(RstStatus::ProtocolError))]
    );
}

/// SPDY/3 2.6.3: "2 - INVALID_STREAM. This is returned when a frame is
/// received for a stream which is not active." A SYN_REPLY for a stream we
/// never opened is such a frame; 2.4.2: "the endpoint MUST send a
/// RST_STREAM (Section 2.6.3) frame which contains the stream id of the
/// stream where the error occurred".
#[test]
fn syn_reply_for_an_unknown_stream_is_reset_with_invalid_stream() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[reply(version, 1, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::InvalidStream)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
        // The header block was inflated: the next one still decodes.
        peer.send(&[reply(version, 3, false)]);
        assert_eq!(
            peer.frames(),
            [rst(3, RstStatus::InvalidStream)],
            "{version}"
        );
    }
}

/// SPDY/3 2.3.6: "The sender of the FLAG_FIN MUST NOT send further frames on
/// that stream." and 2.6.3: "9 - STREAM_ALREADY_CLOSED. The endpoint
/// received a data or SYN_REPLY frame for a stream which is half closed."
/// HEADERS after the peer's FIN is answered the same way.
#[test]
fn headers_after_the_peers_fin_are_reset_with_stream_already_closed() {
    for version in V3S {
        let mut peer = client_with_stream(version, Config::default(), false);
        peer.send(&[reply(version, 1, true)]);
        assert_no_frames(&mut peer, version);
        peer.events();
        peer.send(&[Frame::Headers(Headers::new(
            sid(1),
            block(&[("x-late", "1")]),
        ))]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::StreamAlreadyClosed)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::StreamAlreadyClosed))],
            "{version}"
        );
    }
}

// ===== RST_STREAM (2.4.2) =====

/// SPDY/3 2.4.2: "An endpoint MUST NOT send a RST_STREAM in response to an
/// RST_STREAM, as doing so would lead to RST_STREAM loops." A RST_STREAM
/// for a stream we do not know (never opened, or already reset) is
/// answered with nothing.
#[test]
fn rst_stream_for_an_unknown_stream_gets_no_answer() {
    for version in Version::ALL {
        for role in [Role::Client, Role::Server] {
            let mut peer = Peer::started(role, version, Config::default());
            peer.send(&[
                rst(1, RstStatus::Cancel),
                rst(2, RstStatus::ProtocolError),
                rst(99, RstStatus::InvalidStream),
            ]);
            assert_no_frames(&mut peer, version);
            assert_eq!(peer.events(), [], "{version} {role:?}");
        }

        // A stream we reset ourselves: the peer's crossing RST_STREAM.
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.session.reset(sid(1), RstStatus::Cancel).unwrap();
        assert_eq!(peer.frames(), [rst(1, RstStatus::Cancel)], "{version}");
        peer.send(&[rst(1, RstStatus::InvalidStream)]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");
    }
}

// ===== flow control (2.6.8) =====

/// SPDY/3.1 2.6.8: "The sender MUST NOT send a flow controlled frame with a
/// length that exceeds the space available in either of the flow control
/// windows advertised by the receiver." and "A receiver MAY respond with a
/// stream error (Section 2.4.2) ... of type FLOW_CONTROL_ERROR". (SPDY/3:
/// "The sender must not send a data frame with data length greater than the
/// transfer window size.")
#[test]
fn data_beyond_the_stream_window_is_reset_with_flow_control_error() {
    for version in V3S {
        let mut peer = server_with_stream(version, Config::default(), false);
        // Exactly the 64 KiB default window is fine.
        peer.send(&[data(1, 65536, false)]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [Event::Readable { id: sid(1) }], "{version}");
        peer.send(&[data(1, 1, false)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::FlowControlError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::FlowControlError))],
            "{version}"
        );
        // The buffered 64 KiB went with the stream.
        assert_eq!(
            peer.session.recv(sid(1), usize::MAX),
            Err(UserError::UnknownStream(sid(1)))
        );
    }
}

/// SPDY/3.1 2.6.8: "The sender MUST NOT send a flow controlled frame with a
/// length that exceeds the space available in either of the flow control
/// windows advertised by the receiver." Exceeding the session window is a
/// session error (2.4.1: "MUST first send a GOAWAY"). The session
/// advertises its configured window with a WINDOW_UPDATE for stream 0 when
/// it starts.
#[test]
fn data_beyond_the_session_window_is_a_session_error() {
    let version = Version::V3_1;
    // 128 KiB: the 64 KiB default plus a WINDOW_UPDATE of 64 KiB.
    let config = Config::default().with_session_window(128 * 1024);
    let mut peer = Peer::new(Role::Server, version, config);
    assert_eq!(
        peer.frames(),
        [
            settings(&[(SettingId::MaxConcurrentStreams, 100)]),
            window_update(0, 65536)
        ]
    );
    peer.send(&[
        syn(version, 1, false),
        syn(version, 3, false),
        syn(version, 5, false),
    ]);
    // Each stream stays inside its own 64 KiB window; together they fill
    // the session window exactly.
    peer.send(&[data(1, 65536, false), data(3, 65536, false)]);
    assert_no_frames(&mut peer, version);
    peer.events();
    peer.send(&[data(5, 1, false)]);
    assert_eq!(
        peer.frames(),
        [goaway(version, 5, GoAwayStatus::ProtocolError)]
    );
    let events = peer.events();
    assert_eq!(
        events.last(),
        Some(&closed_with(ProtocolViolation::SessionWindowExceeded))
    );
    let mut failed_ids: Vec<StreamId> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamFailed {
                id,
                error: StreamError::SessionClosed,
            } => Some(*id),
            _ => None,
        })
        .collect();
    failed_ids.sort();
    assert_eq!(failed_ids, [sid(1), sid(3), sid(5)]);
    assert_eq!(events.len(), 4, "{events:?}");

    // The smallest session window (64 KiB, the default) needs no
    // WINDOW_UPDATE and is enforced from the start.
    let config = Config::default().with_session_window(1);
    let mut peer = Peer::new(Role::Server, version, config);
    assert_eq!(
        peer.frames(),
        [settings(&[(SettingId::MaxConcurrentStreams, 100)])]
    );
    peer.send(&[syn(version, 1, false), syn(version, 3, false)]);
    peer.events();
    peer.send(&[data(1, 40_000, false), data(3, 25_536, false)]);
    assert_no_frames(&mut peer, version);
    peer.send(&[data(3, 1, false)]);
    assert_eq!(
        peer.frames(),
        [goaway(version, 3, GoAwayStatus::ProtocolError)]
    );
}

/// SPDY/3.1 2.6.8: "A sender MUST NOT allow a flow control window to exceed
/// 2^31 - 1 bytes. If a sender receives a WINDOW_UPDATE that causes a flow
/// control window to exceed this maximum it MUST terminate either the
/// stream or the connection, as appropriate. For streams, the sender sends
/// a RST_STREAM with the error code of FLOW_CONTROL_ERROR code". (SPDY/3:
/// "must send RST_STREAM with status code FLOW_CONTROL_ERROR".)
#[test]
fn window_update_overflowing_a_stream_window_is_reset_with_flow_control_error() {
    for version in V3S {
        let mut peer = client_with_stream(version, Config::default(), false);
        peer.send(&[window_update(1, MAX_WINDOW)]);
        assert_eq!(
            peer.frames(),
            [rst(1, RstStatus::FlowControlError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [failed(1, local_reset(RstStatus::FlowControlError))],
            "{version}"
        );
    }
    // SPDY/3.1: exactly 2^31 - 1 is allowed, one more is not.
    let version = Version::V3_1;
    let mut peer = client_with_stream(version, Config::default(), false);
    peer.send(&[window_update(1, MAX_WINDOW - 65536)]);
    assert_no_frames(&mut peer, version);
    peer.send(&[window_update(1, 1)]);
    assert_eq!(peer.frames(), [rst(1, RstStatus::FlowControlError)]);
}

/// SPDY/3 2.6.8: "The window size as kept by the sender must never exceed
/// 2^31 (although it can become negative in one special case). If a sender
/// receives a WINDOW_UPDATE that causes the its window size to exceed this
/// limit, it must send RST_STREAM with status code FLOW_CONTROL_ERROR". In
/// SPDY/3 (unlike 3.1's 2^31 - 1) a window of exactly 2^31 does not exceed
/// the limit.
#[test]
fn spdy3_stream_window_may_reach_exactly_2_pow_31() {
    let version = Version::V3;
    let mut peer = client_with_stream(version, Config::default(), false);
    peer.send(&[window_update(1, MAX_WINDOW - 65536 + 1)]);
    assert_no_frames(&mut peer, version);
    assert_eq!(peer.events(), []);
    peer.send(&[window_update(1, 1)]);
    assert_eq!(peer.frames(), [rst(1, RstStatus::FlowControlError)]);
}

/// SPDY/3.1 2.6.8: "If a sender receives a WINDOW_UPDATE that causes a flow
/// control window to exceed this maximum it MUST terminate either the
/// stream or the connection, as appropriate. ... for the connection, a
/// GOAWAY frame with a FLOW_CONTROL_ERROR code." GOAWAY defines only codes
/// 0 to 2 (2.6.6), so the session reports PROTOCOL_ERROR, as its docs say.
#[test]
fn window_update_overflowing_the_session_window_is_a_session_error() {
    let version = Version::V3_1;
    let mut peer = Peer::started(Role::Client, version, Config::default());
    // 64 KiB + (2^31 - 1 - 64 KiB) = 2^31 - 1: allowed.
    peer.send(&[window_update(0, MAX_WINDOW - 65536)]);
    assert_no_frames(&mut peer, version);
    peer.send(&[window_update(0, 1)]);
    assert_eq!(
        peer.frames(),
        [goaway(version, 0, GoAwayStatus::ProtocolError)]
    );
    assert_eq!(
        peer.events(),
        [closed_with(ProtocolViolation::SessionWindowOverflow)]
    );
}

/// SPDY/3.1 2.6.8: "When the value of SETTINGS_INITIAL_WINDOW_SIZE changes,
/// a receiver MUST adjust the size of all stream flow control windows that
/// it maintains by the difference between the new value and the old value."
/// and "A sender MUST track the negative flow control window, and MUST NOT
/// send new flow controlled frames until it receives WINDOW_UPDATE frames
/// that cause the flow control window to become positive." (SPDY/3: "the
/// sender will discover its window size is -48KB on receipt of the
/// SETTINGS".)
#[test]
fn lowered_initial_window_makes_send_windows_negative() {
    for version in V3S {
        // 100 KB queued at once, beyond the 64 KiB window.
        let config = Config::default().with_send_slack(1 << 20);
        let mut peer = client_with_stream(version, config, false);
        if version == Version::V3_1 {
            // Lift the session window out of the way.
            peer.send(&[window_update(0, 1 << 24)]);
        }
        peer.send(&[reply(version, 1, false)]);
        peer.events();
        peer.session
            .send_data(sid(1), Bytes::from(vec![7u8; 100_000]), false)
            .unwrap();
        // The 64 KiB default window, in 16 KiB frames.
        assert_eq!(
            described(&peer.frames()),
            ["DATA 1 len=16384"; 4],
            "{version}"
        );

        // 16 KiB: the window becomes 16384 - 65536 = -49152.
        peer.send(&[settings(&[(SettingId::InitialWindowSize, 16384)])]);
        assert_no_frames(&mut peer, version);
        peer.send(&[window_update(1, 16384)]); // -32768
        assert_no_frames(&mut peer, version);
        peer.send(&[window_update(1, 32768)]); // 0
        assert_no_frames(&mut peer, version);
        peer.send(&[window_update(1, 1000)]); // 1000
        assert_eq!(described(&peer.frames()), ["DATA 1 len=1000"], "{version}");
        peer.send(&[window_update(1, 50_000)]);
        // 33464 bytes are left.
        assert_eq!(
            described(&peer.frames()),
            ["DATA 1 len=16384", "DATA 1 len=16384", "DATA 1 len=696"],
            "{version}"
        );

        // A new stream starts with the new initial window.
        let id = peer
            .session
            .open_stream(request(version, "/2"), OpenOptions::default())
            .unwrap();
        peer.session
            .send_data(id, Bytes::from(vec![7u8; 20_000]), false)
            .unwrap();
        assert_eq!(
            described(&peer.frames()),
            ["SYN_STREAM 3", "DATA 3 len=16384"],
            "{version}"
        );
    }
}

// ===== SETTINGS_MAX_CONCURRENT_STREAMS (2.6.4) =====

/// SPDY/3 2.6.4: "SETTINGS_MAX_CONCURRENT_STREAMS allows the sender to
/// inform the remote endpoint the maximum number of remote-initiated
/// concurrent streams which it will allow." Streams opened beyond the
/// peer's limit wait (no SYN_STREAM) and go out in order as streams close,
/// each announced by `Event::StreamStarted`; data queued meanwhile follows
/// its SYN_STREAM (`open_stream` docs: "data sent meanwhile is buffered").
#[test]
fn peer_max_concurrent_streams_makes_our_opens_wait() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[settings(&[(SettingId::MaxConcurrentStreams, 2)])]);
        assert!(matches!(peer.events().as_slice(), [Event::Settings(_)]));
        let mut ids = Vec::new();
        for n in 0..4 {
            let id = peer
                .session
                .open_stream(request(version, &format!("/{n}")), OpenOptions::default())
                .unwrap();
            peer.session
                .send_data(id, Bytes::from(format!("body {n}")), true)
                .unwrap();
            ids.push(id);
        }
        assert_eq!(ids, [sid(1), sid(3), sid(5), sid(7)]);
        assert_eq!(
            described(&peer.frames()),
            [
                "SYN_STREAM 1",
                "SYN_STREAM 3",
                "DATA 1 len=6 fin",
                "DATA 3 len=6 fin"
            ],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                Event::StreamStarted { id: sid(1) },
                Event::StreamStarted { id: sid(3) }
            ],
            "{version}"
        );
        assert_eq!(peer.session.active_streams(), (2, 0), "{version}");

        // Stream 1 ends: stream 5 goes out, with its data.
        peer.send(&[reply(version, 1, true)]);
        let events = peer.events();
        let started: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::StreamStarted { .. }))
            .collect();
        assert_eq!(started, [&Event::StreamStarted { id: sid(5) }], "{version}");
        assert!(events.contains(&Event::StreamClosed { id: sid(1) }));
        assert_eq!(
            described(&peer.frames()),
            ["SYN_STREAM 5", "DATA 5 len=6 fin"],
            "{version}"
        );

        // Stream 3 ends: stream 7.
        peer.send(&[reply(version, 3, true)]);
        let events = peer.events();
        assert!(events.contains(&Event::StreamStarted { id: sid(7) }));
        assert_eq!(
            described(&peer.frames()),
            ["SYN_STREAM 7", "DATA 7 len=6 fin"],
            "{version}"
        );
        assert_eq!(peer.session.active_streams(), (2, 0), "{version}");
    }
}

/// SPDY/3 2.3.2: "Upon receipt of a SYN_STREAM, the recipient can reject the
/// stream by sending a stream error (Section 2.4.2) with the error code
/// REFUSED_STREAM." A peer opening more streams than our advertised
/// SETTINGS_MAX_CONCURRENT_STREAMS gets REFUSED_STREAM for the extra ones.
#[test]
fn peer_exceeding_our_max_concurrent_streams_is_refused() {
    for version in Version::ALL {
        let config = Config::default().with_max_concurrent_streams(2);
        let mut peer = Peer::new(Role::Server, version, config);
        assert_eq!(
            peer.frames(),
            opening_frames(version, 2, vec![]),
            "{version}"
        );
        peer.send(&[
            syn(version, 1, true),
            syn(version, 3, false),
            syn(version, 5, false),
        ]);
        assert_eq!(
            peer.frames(),
            [rst(5, RstStatus::RefusedStream)],
            "{version}"
        );
        let opened: Vec<StreamId> = peer
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::StreamOpened { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(opened, [sid(1), sid(3)], "{version}");
        assert_eq!(peer.session.active_streams(), (0, 2), "{version}");

        // Once stream 1 is finished, there is room again.
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert_eq!(described(&peer.frames()), ["SYN_REPLY 1 fin"], "{version}");
        peer.send(&[syn(version, 7, false)]);
        assert_no_frames(&mut peer, version);
        assert!(peer
            .events()
            .iter()
            .any(|e| matches!(e, Event::StreamOpened { id, .. } if *id == sid(7))));
        assert_eq!(peer.session.active_streams(), (0, 2), "{version}");
    }
}

// ===== PING (2.6.5) =====

/// SPDY/3 2.6.5: "Recipients of a PING frame should send an identical frame
/// to the sender as soon as possible". The peer's pings have its parity
/// (client odd, server even) and are echoed unchanged.
#[test]
fn ping_from_the_peer_is_echoed() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[
            Frame::Ping(Ping::new(1)),
            Frame::Ping(Ping::new(0x7fff_ffff)),
        ]);
        assert_eq!(
            peer.frames(),
            [
                Frame::Ping(Ping::new(1)),
                Frame::Ping(Ping::new(0x7fff_ffff))
            ],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");

        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[Frame::Ping(Ping::new(2))]);
        assert_eq!(peer.frames(), [Frame::Ping(Ping::new(2))], "{version}");
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 2.6.5: "If a server receives an even numbered PING which it did
/// not initiate, it must ignore the PING. If a client receives an odd
/// numbered PING which it did not initiate, it must ignore the PING."
/// (SPDY/2 says the same.)
#[test]
fn ping_with_our_parity_that_we_never_sent_is_ignored() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[Frame::Ping(Ping::new(2)), Frame::Ping(Ping::new(4))]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");

        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[Frame::Ping(Ping::new(1))]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");

        // An answer we already had is not ours to take twice.
        let id = peer.session.ping(peer.now).unwrap();
        peer.frames();
        peer.send(&[Frame::Ping(Ping::new(id))]);
        assert!(matches!(peer.events().as_slice(), [Event::Pong { .. }]));
        peer.send(&[Frame::Ping(Ping::new(id))]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 2.6.5: "The PING control frame is a mechanism for measuring a
/// minimal round-trip time from the sender." and "When the client initiates
/// a ping, it must use an odd numbered ID. When the server initiates a
/// ping, it must use an even numbered ping." Our ping's answer is reported
/// with the time between sending and receiving.
#[test]
fn our_ping_reports_the_round_trip_time() {
    for version in Version::ALL {
        for role in [Role::Client, Role::Server] {
            let mut peer = Peer::started(role, version, Config::default());
            let id = peer.session.ping(peer.now).unwrap();
            assert_eq!(id % 2, u32::from(role == Role::Client), "{version}");
            assert_eq!(peer.frames(), [Frame::Ping(Ping::new(id))], "{version}");
            peer.advance(Duration::from_millis(37));
            peer.send(&[Frame::Ping(Ping::new(id))]);
            assert_no_frames(&mut peer, version);
            assert_eq!(
                peer.events(),
                [Event::Pong {
                    id,
                    rtt: Duration::from_millis(37)
                }],
                "{version}"
            );
        }
    }
}

// ===== GOAWAY (2.6.6) =====

/// SPDY/3 2.6.6: "Recipients of a GOAWAY frame must not send additional
/// streams on this session" and "If the receiver of the GOAWAY sent new
/// SYN_STREAMs for sessions after this last-stream-id, they were not
/// processed by the server and the receiver may treat the stream as though
/// it had never been created at all". Streams above last-good fail as
/// retryable; those at or below it go on; the session ends once they do.
#[test]
fn goaway_received_refuses_streams_above_last_good() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        for _ in 0..3 {
            peer.session
                .open_stream(
                    request(version, "/"),
                    OpenOptions {
                        fin: true,
                        ..OpenOptions::default()
                    },
                )
                .unwrap();
        }
        peer.frames();
        peer.events();
        peer.send(&[Frame::GoAway(GoAway::new(sid(3), GoAwayStatus::Ok))]);
        assert_no_frames(&mut peer, version);
        let events = peer.events();
        assert_eq!(
            events,
            [
                Event::GoAway {
                    last_good_stream_id: sid(3),
                    status: GoAwayStatus::Ok
                },
                failed(5, StreamError::Refused)
            ],
            "{version}"
        );
        assert!(StreamError::Refused.is_retryable());
        assert_eq!(
            peer.session
                .open_stream(request(version, "/"), OpenOptions::default()),
            Err(UserError::Closing),
            "{version}"
        );

        // Streams 1 and 3 continue.
        peer.send(&[reply(version, 1, false), data(1, 5, true)]);
        assert_no_frames(&mut peer, version);
        let events = peer.events();
        assert!(events.contains(&Event::StreamClosed { id: sid(1) }));
        assert!(!events.iter().any(|e| matches!(e, Event::Closed { .. })));
        assert_eq!(
            peer.session.recv(sid(1), 100),
            Ok(Recv::Data(Bytes::from_static(b"xxxxx")))
        );
        peer.send(&[reply(version, 3, true)]);
        assert_no_frames(&mut peer, version);
        let events = peer.events();
        assert!(events.contains(&Event::StreamClosed { id: sid(3) }));
        assert_eq!(
            events.last(),
            Some(&Event::Closed { error: None }),
            "{version}"
        );
        assert_eq!(peer.session.active_streams(), (0, 0));
    }
}

/// SPDY/3 2.6.6: "After sending a GOAWAY message, the sender must ignore all
/// SYN_STREAM frames for new streams, and MUST NOT create any new streams."
/// and 2.2.2 (DATA for a stream that is not open is reset only if "the
/// endpoint has not sent a GOAWAY"). The session closes cleanly once the
/// streams it accepted are finished.
#[test]
fn after_our_goaway_new_streams_are_ignored_and_the_session_drains() {
    for version in Version::ALL {
        let mut peer = server_with_stream(version, Config::default(), false);
        peer.session.go_away(GoAwayStatus::Ok);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::Ok)],
            "{version}"
        );
        assert_eq!(
            peer.session
                .open_stream(request(version, "/"), OpenOptions::default()),
            Err(UserError::Closing)
        );
        peer.send(&[syn(version, 3, false), data(3, 10, true)]);
        assert_no_frames(&mut peer, version);
        assert_eq!(peer.events(), [], "{version}");

        // Stream 1 finishes both ways: the session is over.
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert_eq!(described(&peer.frames()), ["SYN_REPLY 1 fin"], "{version}");
        assert_eq!(peer.events(), [], "{version}");
        peer.send(&[data(1, 0, true)]);
        assert_no_frames(&mut peer, version);
        let events = peer.events();
        assert_eq!(
            events.last(),
            Some(&Event::Closed { error: None }),
            "{version}: {events:?}"
        );
        assert!(events.contains(&Event::StreamClosed { id: sid(1) }));
        assert!(peer.session.is_closed());
    }
}

// ===== server push (3.3) =====

/// SPDY/3 3.3.1: "it opens a new stream by sending a unidirectional
/// SYN_STREAM. The SYN_STREAM MUST include an Associated-To-Stream-ID, and
/// MUST set the FLAG_UNIDIRECTIONAL flag. The SYN_STREAM MUST include
/// headers for ":scheme", ":host", ":path"". (SPDY/2: a header for "url".)
/// The client accepts it without a reply and reads its data.
#[test]
fn server_push_is_accepted_by_a_client() {
    for version in Version::ALL {
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.send(&[reply(version, 1, false)]);
        peer.events();
        peer.send(&[push(2, 1, push_headers(version, "/style.css"))]);
        peer.send(&[data(2, 6, true)]);
        assert_no_frames(&mut peer, version);
        let events = peer.events();
        let path = if version == Version::V2 {
            "url"
        } else {
            ":path"
        };
        assert!(
            matches!(
                events.as_slice(),
                [
                    Event::StreamOpened { id, associated_to: Some(assoc), fin: false, unidirectional: true, headers, .. },
                    Event::Readable { id: readable },
                    Event::StreamClosed { id: closed },
                ] if *id == sid(2) && *assoc == sid(1) && *readable == sid(2) && *closed == sid(2)
                    && headers.get(path).is_some()
            ),
            "{version}: {events:?}"
        );
        // We may not send on a pushed stream.
        assert_eq!(
            peer.session
                .send_data(sid(2), Bytes::from_static(b"no"), true),
            Err(UserError::SendClosed(sid(2)))
        );
        assert_eq!(
            peer.session.recv(sid(2), 100),
            Ok(Recv::Data(Bytes::from_static(b"xxxxxx")))
        );
        assert_eq!(peer.session.recv(sid(2), 100), Ok(Recv::End));
        assert_no_frames(&mut peer, version);
    }
}

/// SPDY/3 2.3.2: "the recipient can reject the stream by sending a stream
/// error (Section 2.4.2) with the error code REFUSED_STREAM." A client that
/// does not accept push (`Config::with_accept_push(false)`) refuses every
/// pushed stream.
#[test]
fn client_not_accepting_push_refuses_it() {
    for version in Version::ALL {
        let config = Config::default().with_accept_push(false);
        let mut peer = client_with_stream(version, config, true);
        peer.send(&[push(2, 1, push_headers(version, "/a.js"))]);
        assert_eq!(
            peer.frames(),
            [rst(2, RstStatus::RefusedStream)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
        assert_eq!(peer.session.active_streams(), (1, 0), "{version}");
    }
}

/// SPDY/3 3.3.2: "When a client receives a SYN_STREAM from the server
/// without a the ':host', ':scheme', and ':path' headers in the Name/Value
/// section, it MUST reply with a RST_STREAM with error code
/// HTTP_PROTOCOL_ERROR." SPDY/2, Client Implementation: "When a client
/// receives a SYN_STREAM from the server without an 'url' in the Name/Value
/// section, it must reply with a RST_STREAM with error code
/// PROTOCOL_ERROR."
#[test]
fn push_without_the_resource_headers_is_reset_with_protocol_error() {
    for version in Version::ALL {
        let mut peer = client_with_stream(version, Config::default(), true);
        let missing: &[&str] = if version == Version::V2 {
            &["url"]
        } else {
            &[":scheme", ":host", ":path"]
        };
        for (n, name) in missing.iter().enumerate() {
            let id = 2 * (n as u32 + 1);
            let headers: HeaderBlock = push_headers(version, "/x")
                .iter()
                .filter(|(k, _)| k.as_ref() != name.as_bytes())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            peer.send(&[push(id, 1, headers)]);
            assert_eq!(
                peer.frames(),
                [rst(id, RstStatus::ProtocolError)],
                "{version} without {name}"
            );
            assert_eq!(peer.events(), [], "{version}");
        }
    }
}

/// SPDY/3 3.3.1: "The SYN_STREAM MUST include an Associated-To-Stream-ID,
/// and MUST set the FLAG_UNIDIRECTIONAL flag." (SPDY/2: "Server pushed
/// streams are unidirectional, and must set the FLAG_UNIDIRECTIONAL flag in
/// the SYN_STREAM.")
#[test]
fn push_without_the_unidirectional_flag_is_reset_with_protocol_error() {
    for version in Version::ALL {
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.send(&[Frame::SynStream(SynStream {
            associated_to: sid(1),
            ..SynStream::new(sid(2), push_headers(version, "/x"))
        })]);
        assert_eq!(
            peer.frames(),
            [rst(2, RstStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 3.3.1: "The Associated-To-Stream-ID must be the ID of an existing,
/// open stream." and "once the originating stream is closed no further push
/// streams may be associated with it." A push onto a stream the server
/// already finished (or one that never existed) is reset.
#[test]
fn push_associated_to_a_closed_stream_is_reset() {
    for version in Version::ALL {
        let mut peer = client_with_stream(version, Config::default(), true);
        peer.send(&[reply(version, 1, true)]);
        assert_no_frames(&mut peer, version);
        peer.events();
        // Closed, but not yet read by the application.
        peer.send(&[push(2, 1, push_headers(version, "/late"))]);
        assert_eq!(
            peer.frames(),
            [rst(2, RstStatus::ProtocolError)],
            "{version}"
        );
        // Closed and forgotten.
        assert_eq!(peer.session.recv(sid(1), 100), Ok(Recv::End));
        peer.send(&[push(4, 1, push_headers(version, "/later"))]);
        assert_eq!(
            peer.frames(),
            [rst(4, RstStatus::ProtocolError)],
            "{version}"
        );
        // Never opened.
        peer.send(&[push(6, 99, push_headers(version, "/never"))]);
        assert_eq!(
            peer.frames(),
            [rst(6, RstStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(peer.events(), [], "{version}");
    }
}

/// SPDY/3 3.3: "SPDY enables a server to send multiple replies to a client
/// for a single request" and 3.3.1 "When the server intends to push a
/// resource to the user-agent, it opens a new stream": only a server
/// pushes. A client pushing to a server breaks the session (2.4.1: "MUST
/// first send a GOAWAY").
#[test]
fn push_received_by_a_server_is_a_session_error() {
    for version in Version::ALL {
        let mut peer = server_with_stream(version, Config::default(), false);
        peer.send(&[push(3, 1, push_headers(version, "/x"))]);
        assert_eq!(
            peer.frames(),
            [goaway(version, 1, GoAwayStatus::ProtocolError)],
            "{version}"
        );
        assert_eq!(
            peer.events(),
            [
                failed(1, StreamError::SessionClosed),
                closed_with(ProtocolViolation::InvalidPush(sid(3)))
            ],
            "{version}"
        );
    }
}

/// SPDY/3 3.3.1: "The SYN_STREAM MUST include an Associated-To-Stream-ID,
/// and MUST set the FLAG_UNIDIRECTIONAL flag. The SYN_STREAM MUST include
/// headers for ":scheme", ":host", ":path"" and "once the originating stream
/// is closed no further push streams may be associated with it."
/// `Session::push` sends exactly that, and refuses what would break it.
#[test]
fn session_push_follows_the_push_rules() {
    for version in Version::ALL {
        let mut peer = server_with_stream(version, Config::default(), false);
        let id = peer
            .session
            .push(sid(1), push_headers(version, "/app.js"), 2)
            .unwrap();
        assert_eq!(id, sid(2));
        let frames = peer.frames();
        assert!(
            matches!(
                frames.as_slice(),
                [Frame::SynStream(SynStream { stream_id, associated_to, priority: 2, fin: false, unidirectional: true, .. })]
                    if *stream_id == sid(2) && *associated_to == sid(1)
            ),
            "{version}: {frames:?}"
        );
        assert_eq!(peer.events(), [Event::StreamStarted { id }]);
        peer.session
            .send_data(id, Bytes::from_static(b"pushed"), true)
            .unwrap();
        assert_eq!(described(&peer.frames()), ["DATA 2 len=6 fin"], "{version}");

        // Missing the resource's name.
        let bare = if version == Version::V2 {
            block(&[("status", "200 OK"), ("version", "HTTP/1.1")])
        } else {
            block(&[(":host", "example.com"), (":scheme", "https")])
        };
        assert!(matches!(
            peer.session.push(sid(1), bare, 0),
            Err(UserError::CannotPush(_))
        ));
        // Associated to nothing.
        assert!(matches!(
            peer.session.push(sid(99), push_headers(version, "/a"), 0),
            Err(UserError::CannotPush(_))
        ));
        // Associated to a stream we opened ourselves.
        assert!(matches!(
            peer.session.push(id, push_headers(version, "/a"), 0),
            Err(UserError::CannotPush(_))
        ));
        // Associated to a stream we finished.
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert!(matches!(
            peer.session.push(sid(1), push_headers(version, "/a"), 0),
            Err(UserError::CannotPush(_))
        ));
        assert_eq!(described(&peer.frames()), ["SYN_REPLY 1 fin"]);

        // A client cannot push.
        let mut peer = client_with_stream(version, Config::default(), false);
        assert!(matches!(
            peer.session.push(sid(1), push_headers(version, "/a"), 0),
            Err(UserError::CannotPush(_))
        ));
        assert_no_frames(&mut peer, version);
    }
}

// ===== flow control: what we send (2.6.8) =====

/// SPDY/3.1 2.6.8: "The receiver of a frame sends a WINDOW_UPDATE frame as
/// it consumes data and frees up space in flow control windows. Separate
/// WINDOW_UPDATE frames are sent for the stream and connection level flow
/// control windows." Receiving (or taking) data sends nothing; only
/// `release_capacity` does, and the update returns exactly what was
/// released.
#[test]
fn window_update_is_sent_only_for_released_data() {
    for version in V3S {
        // 64 KiB session window: updates go out once 32 KiB are released.
        let config = Config::default().with_session_window(65536);
        let mut peer = server_with_stream(version, config, false);
        peer.send(&[data(1, 20_000, false)]);
        assert_no_frames(&mut peer, version);
        let Ok(Recv::Data(chunk)) = peer.session.recv(sid(1), usize::MAX) else {
            panic!("{version}: no data");
        };
        assert_eq!(chunk.len(), 20_000);
        assert_no_frames(&mut peer, version);
        peer.session.release_capacity(sid(1), 20_000).unwrap();
        // Less than half a window: kept for later.
        assert_no_frames(&mut peer, version);

        peer.send(&[data(1, 20_000, false)]);
        if version == Version::V3_1 {
            // The peer's view of the session window fell below half
            // (65536 - 40000): credit already released goes back at once
            // rather than wait for more (held credit must never leave the
            // peer stuck on an empty window).
            assert_eq!(peer.frames(), [window_update(0, 20_000)], "{version}");
        } else {
            assert_no_frames(&mut peer, version);
        }
        peer.session.recv(sid(1), usize::MAX).unwrap();
        peer.session.release_capacity(sid(1), 20_000).unwrap();
        assert_eq!(peer.frames(), [window_update(1, 40_000)], "{version}");
    }
}

/// SPDY/3.1 2.6.8: "The receiver of a frame sends a WINDOW_UPDATE frame as
/// it consumes data and frees up space in flow control windows." and the
/// `recv` docs: "Taken bytes still count against the peer's window until
/// [`release_capacity`] returns them." Bytes taken from a stream that has
/// since finished must still go back to the session window when the
/// application releases them, or the peer's session window shrinks for
/// good and the session stalls.
#[test]
fn released_data_of_a_finished_stream_returns_to_the_session_window() {
    let version = Version::V3_1;
    let config = Config::default().with_session_window(65536);
    let mut peer = server_with_stream(version, config, false);
    peer.session
        .reply(sid(1), response(version, "200 OK"), true)
        .unwrap();
    peer.frames();
    peer.send(&[data(1, 40_000, true)]);
    peer.events();
    let Ok(Recv::Data(body)) = peer.session.recv(sid(1), usize::MAX) else {
        panic!("no data");
    };
    assert_eq!(body.len(), 40_000);
    assert_eq!(peer.session.recv(sid(1), usize::MAX), Ok(Recv::End));
    // The application is done with the body only now.
    let _ = peer.session.release_capacity(sid(1), body.len());
    assert_eq!(peer.frames(), [window_update(0, 40_000)]);
}

/// SPDY/2 has no flow control (its WINDOW_UPDATE section says it was never
/// implemented; SPDY/3 section 7 lists flow control as new): a SPDY/2
/// session never sends WINDOW_UPDATE, and sends all its data whatever the
/// peer says about windows.
#[test]
fn spdy2_has_no_flow_control() {
    let version = Version::V2;
    let mut peer = client_with_stream(version, Config::default(), false);
    // The peer talks of windows: a SETTINGS value and a type-9 frame, which
    // SPDY/2 does not define and ignores.
    peer.send(&[settings(&[(SettingId::InitialWindowSize, 1000)])]);
    let mut raw = vec![0x80, 0x02, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08];
    raw.extend_from_slice(&1u32.to_be_bytes());
    raw.extend_from_slice(&1000u32.to_be_bytes());
    peer.send_raw(&raw);
    peer.send(&[reply(version, 1, false)]);
    // 100 KiB received, read and released: no WINDOW_UPDATE.
    peer.send(&[data(1, 50_000, false), data(1, 50_000, false)]);
    let mut got = 0;
    while let Ok(Recv::Data(chunk)) = peer.session.recv(sid(1), usize::MAX) {
        got += chunk.len();
        peer.session.release_capacity(sid(1), chunk.len()).unwrap();
    }
    assert_eq!(got, 100_000);
    assert_no_frames(&mut peer, version);
    // 200 000 bytes go out at once, far past 64 KiB or the 1000 advertised.
    peer.session
        .send_data(sid(1), Bytes::from(vec![1u8; 200_000]), true)
        .unwrap();
    let frames = peer.frames();
    let mut want = vec!["DATA 1 len=16384".to_owned(); 12];
    want.push("DATA 1 len=3392 fin".to_owned());
    assert_eq!(described(&frames), want);
}

// ===== version detection =====

/// SPDY/2, "Protocol versioning": "SPDY does lazy version checking on
/// receipt of any control frame". A server that accepts every version takes
/// it from the first control frame and answers in that version.
#[test]
fn detecting_server_answers_in_the_clients_version() {
    for version in [Version::V2, Version::V3] {
        let mut peer = Peer::with_session(Session::detecting(Config::default()), version);
        assert_eq!(peer.session.version(), None);
        assert_no_frames(&mut peer, version);
        peer.send(&[syn(version, 1, true)]);
        assert_eq!(peer.session.version(), Some(version));
        let events = peer.events();
        assert!(
            matches!(
                events.as_slice(),
                [Event::Version(v), Event::StreamOpened { id, .. }, ..] if *v == version && *id == sid(1)
            ),
            "{version}: {events:?}"
        );
        // Our SETTINGS in that version (no session window in SPDY/3).
        assert_eq!(
            peer.frames(),
            [settings(&[(SettingId::MaxConcurrentStreams, 100)])],
            "{version}"
        );
        peer.session
            .reply(sid(1), response(version, "200 OK"), true)
            .unwrap();
        assert_eq!(described(&peer.frames()), ["SYN_REPLY 1 fin"], "{version}");
    }
}

/// SPDY/3.1 2.6.8: "Stream-ID: The stream ID for which this WINDOW_UPDATE
/// control frame applies to, or 0 if applied to connection-level flow
/// control." SPDY/3 and 3.1 share the version number 3, so a detecting
/// server becomes 3.1 on the first session WINDOW_UPDATE and then
/// advertises its own session window.
#[test]
fn detected_spdy3_becomes_3_1_on_a_session_window_update() {
    let mut peer = Peer::with_session(Session::detecting(Config::default()), Version::V3);
    peer.send(&[syn(Version::V3, 1, false)]);
    peer.frames();
    assert!(matches!(
        peer.events().first(),
        Some(Event::Version(Version::V3))
    ));
    peer.send(&[window_update(0, 1 << 20)]);
    assert_eq!(peer.events(), [Event::Version(Version::V3_1)]);
    assert_eq!(peer.session.version(), Some(Version::V3_1));
    assert_eq!(peer.frames(), [window_update(0, (1 << 20) - 65536)]);
}

/// SPDY/3.1 2.6.8: "After sending a flow controlled frame, the sender
/// reduces the space available in both windows by the length of the
/// transmitted frame." and "The sender MUST NOT send a flow controlled frame
/// with a length that exceeds the space available in either of the flow
/// control windows advertised by the receiver." A session WINDOW_UPDATE
/// shows the peer spoke 3.1 from the start, so it counted every DATA byte
/// the session sent before it knew: the session window it grants is
/// 64 KiB minus those bytes plus the update.
#[test]
fn detected_3_1_counts_data_sent_before_the_upgrade() {
    let version = Version::V3;
    let mut peer = Peer::with_session(Session::detecting(Config::default()), version);
    peer.send(&[syn(version, 1, true), syn(version, 3, true)]);
    peer.frames();
    peer.events();
    peer.session
        .reply(sid(1), response(version, "200 OK"), false)
        .unwrap();
    peer.session
        .send_data(sid(1), Bytes::from(vec![0u8; 50_000]), false)
        .unwrap();
    assert_eq!(
        described(&peer.frames()),
        [
            "SYN_REPLY 1",
            "DATA 1 len=16384",
            "DATA 1 len=16384",
            "DATA 1 len=16384",
            "DATA 1 len=848"
        ]
    );
    // The client's session window for us is now 65536 - 50000 = 15536;
    // it adds 1000.
    peer.send(&[window_update(0, 1000)]);
    assert_eq!(peer.events(), [Event::Version(Version::V3_1)]);
    peer.frames();
    // Stream 3 has its whole 64 KiB stream window, but only 16536 bytes of
    // session window are left.
    peer.session
        .reply(sid(3), response(version, "200 OK"), false)
        .unwrap();
    peer.session
        .send_data(sid(3), Bytes::from(vec![0u8; 30_000]), false)
        .unwrap();
    let sent: usize = peer
        .frames()
        .iter()
        .map(|f| match f {
            Frame::Data(d) => d.data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent, 16_536);
}

/// A detecting server needs a control frame to learn the version (SPDY/2:
/// "SPDY does lazy version checking on receipt of any control frame"). A
/// DATA frame first, or a version it does not speak, ends the session; no
/// GOAWAY can be written in an unknown version.
#[test]
fn detecting_server_rejects_data_or_an_unknown_version_first() {
    let mut peer = Peer::with_session(Session::detecting(Config::default()), Version::V3);
    peer.send_raw(&[0, 0, 0, 1, 0, 0, 0, 2, b'h', b'i']);
    assert_no_frames(&mut peer, Version::V3);
    assert_eq!(peer.events(), [closed_with(ProtocolViolation::NoVersion)]);
    assert!(peer.session.is_closed());

    let mut peer = Peer::with_session(Session::detecting(Config::default()), Version::V3);
    // A version-4 PING.
    peer.send_raw(&[0x80, 0x04, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]);
    assert_no_frames(&mut peer, Version::V3);
    assert_eq!(
        peer.events(),
        [closed_with(ProtocolViolation::UnsupportedVersion(4))]
    );
    assert!(peer.session.is_closed());
    assert_eq!(peer.session.version(), None);
}

// ===== persisted settings (2.6.4) =====

fn persist(id: SettingId, value: u32) -> Setting {
    Setting {
        persist_value: true,
        ..Setting::new(id, value)
    }
}

/// SPDY/3 2.6.4: "When the server is the sender, the sender can request that
/// configuration data be persisted by the client across SPDY sessions" and
/// FLAG_SETTINGS_CLEAR_SETTINGS: "When set, the client should clear any
/// previously persisted SETTINGS ID/Value pairs." Also: "servers MUST ignore
/// persistence related flags sent by a client."
#[test]
fn client_stores_persisted_settings_and_clears_them() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[Frame::Settings(Settings::new(vec![
            persist(SettingId::UploadBandwidth, 100),
            Setting::new(SettingId::RoundTripTime, 50),
        ]))]);
        peer.send(&[Frame::Settings(Settings::new(vec![
            persist(SettingId::DownloadBandwidth, 200),
            persist(SettingId::UploadBandwidth, 150),
        ]))]);
        let mut stored: Vec<(SettingId, u32)> = peer
            .session
            .persisted_settings()
            .iter()
            .map(|s| (s.id, s.value))
            .collect();
        stored.sort();
        assert_eq!(
            stored,
            [
                (SettingId::UploadBandwidth, 150),
                (SettingId::DownloadBandwidth, 200)
            ],
            "{version}"
        );
        assert_no_frames(&mut peer, version);

        peer.send(&[Frame::Settings(Settings {
            clear_persisted: true,
            entries: vec![],
        })]);
        assert_eq!(peer.session.persisted_settings(), [], "{version}");

        // A server keeps nothing.
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[Frame::Settings(Settings::new(vec![persist(
            SettingId::UploadBandwidth,
            100,
        )]))]);
        assert_eq!(peer.session.persisted_settings(), [], "{version}");
    }
}

/// SPDY/3 2.6.4: "If the recipient of a SETTINGS frame discovers multiple
/// values for the same ID, it MUST ignore all values except the first one."
#[test]
fn duplicate_setting_ids_keep_the_first_value() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, Config::default());
        peer.send(&[Frame::Settings(Settings::new(vec![
            persist(SettingId::MaxConcurrentStreams, 1),
            persist(SettingId::MaxConcurrentStreams, 50),
        ]))]);
        let stored: Vec<(SettingId, u32)> = peer
            .session
            .persisted_settings()
            .iter()
            .map(|s| (s.id, s.value))
            .collect();
        assert_eq!(stored, [(SettingId::MaxConcurrentStreams, 1)], "{version}");
        // The limit in force is 1: the second stream waits.
        for _ in 0..2 {
            peer.session
                .open_stream(request(version, "/"), OpenOptions::default())
                .unwrap();
        }
        assert_eq!(described(&peer.frames()), ["SYN_STREAM 1"], "{version}");
    }
}

/// SPDY/3 2.6.4: FLAG_SETTINGS_PERSISTED "When set, the sender is notifying
/// the recipient that this ID/Value pair was previously sent to the sender
/// by the recipient with the FLAG_SETTINGS_PERSIST_VALUE, and the sender is
/// returning it. Because persistence is only implemented on the client,
/// this flag is only sent by the client."
#[test]
fn client_returns_persisted_settings_in_its_first_settings() {
    for version in Version::ALL {
        let mut session = Session::new(Role::Client, version, Config::default());
        session.set_persisted_settings(vec![
            persist(SettingId::UploadBandwidth, 100),
            persist(SettingId::RoundTripTime, 40),
        ]);
        let mut peer = Peer::with_session(session, version);
        let returned = |id, value| Setting {
            persisted: true,
            ..Setting::new(id, value)
        };
        assert_eq!(
            peer.frames(),
            opening_frames(
                version,
                100,
                vec![
                    returned(SettingId::UploadBandwidth, 100),
                    returned(SettingId::RoundTripTime, 40),
                ]
            ),
            "{version}"
        );

        // Clients only: a server's first SETTINGS carries no such flag.
        let mut session = Session::new(Role::Server, version, Config::default());
        session.set_persisted_settings(vec![persist(SettingId::UploadBandwidth, 100)]);
        let mut peer = Peer::with_session(session, version);
        assert_eq!(
            peer.frames(),
            opening_frames(version, 100, vec![]),
            "{version}"
        );
    }
}
