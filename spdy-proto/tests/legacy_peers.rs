//! Scripted peers that behave like SPDY implementations found in the
//! field but not run by the interop suite, and the session's behaviour
//! facing each (issue 14): what our GOAWAY tells a peer, a detected SPDY/3
//! session that turns out to be 3.1, peers that ignore
//! SETTINGS_INITIAL_WINDOW_SIZE, and peers that never open a window.

mod support;

use bytes::Bytes;
use spdy_proto::frame::{Frame, GoAway, GoAwayStatus, SettingId, StreamId, Version};
use std::time::Duration;

use spdy_proto::session::{Config, Event, Recv, Role, Session, StreamError, DEFAULT_WINDOW};
use support::{data, request, response, sid, syn, window_update, Peer};

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

// ===== a scripted client that downloads =====

/// How a scripted client does flow control.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// It counts the SPDY/3.1 session window (else SPDY/3: no session
    /// window at all).
    session_window: bool,
    /// It takes a new stream's window from our SETTINGS_INITIAL_WINDOW_SIZE
    /// (else it assumes 64 KiB whatever we say, like a Go SPDY/3.1
    /// library).
    honours_settings: bool,
    /// A WINDOW_UPDATE it sends right after each SYN_STREAM, raising the
    /// stream's window (as we do for windows above 64 KiB), or 0.
    raise: u32,
}

/// The client's view of one stream.
#[derive(Default)]
struct ClientStream {
    /// What it believes it will still accept from us.
    window: i64,
    received: usize,
    credit: u32,
    fin: bool,
}

/// A client that opens `streams` GETs and reads every response as fast as
/// it arrives, checking that we never send past the windows it believes
/// in and returning credit by WINDOW_UPDATE once half of what it believes
/// the window to be is consumed. The server application answers each
/// stream with `body` bytes. When nothing moves, time is moved to the
/// session's next deadline (a few times at most). Returns the bytes
/// received per stream and the number of such waits.
fn download(
    mut peer: Peer,
    version: Version,
    behaviour: Behaviour,
    streams: u32,
    body: usize,
) -> (Vec<usize>, u32) {
    let mut waits = 0;
    let mut initial_stream_window = i64::from(DEFAULT_WINDOW);
    let mut session_window = i64::from(DEFAULT_WINDOW);
    let mut session_credit = 0u32;
    let mut clients: Vec<ClientStream> = Vec::new();
    let ids: Vec<u32> = (0..streams).map(|i| 1 + 2 * i).collect();
    let mut opened = false;
    let mut left: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut idle_rounds = 0;
    for _round in 0..1_000_000 {
        let mut moved = false;
        // Our application: answer new streams, then write what fits.
        for event in peer.events() {
            match event {
                Event::StreamOpened { id, .. } => {
                    peer.session
                        .reply(id, response(version, "200 OK"), false)
                        .unwrap();
                    left.insert(id.value(), body);
                }
                Event::StreamFailed { id, error } => panic!("stream {id} failed: {error}"),
                Event::Closed { error } => panic!("session closed: {error:?}"),
                _ => {}
            }
        }
        for (&id, rest) in left.iter_mut() {
            if *rest == 0 {
                continue;
            }
            let room = peer.session.send_capacity(sid(id)).unwrap();
            let n = room.min(*rest);
            if n > 0 {
                *rest -= n;
                peer.session
                    .send_data(sid(id), Bytes::from(vec![b'y'; n]), *rest == 0)
                    .unwrap();
            }
        }
        // The client reads what we sent.
        let mut answer = Vec::new();
        if !opened {
            opened = true;
            for &id in &ids {
                answer.push(syn(version, id, true));
                if behaviour.raise > 0 {
                    answer.push(window_update(id, behaviour.raise));
                }
                clients.push(ClientStream {
                    window: -1,
                    ..Default::default()
                });
            }
        }
        for frame in peer.frames() {
            moved = true;
            match frame {
                Frame::Settings(s) if behaviour.honours_settings => {
                    if let Some(w) = s.get(SettingId::InitialWindowSize) {
                        initial_stream_window = i64::from(w);
                    }
                }
                Frame::SynReply(r) => {
                    let c = &mut clients[(r.stream_id.value() as usize - 1) / 2];
                    if c.window < 0 {
                        c.window = initial_stream_window + i64::from(behaviour.raise);
                    }
                }
                // A plain SPDY/3 peer knows no session WINDOW_UPDATE (3.1's
                // stream 0); a strict one dies on it.
                Frame::WindowUpdate(w) if w.stream_id.is_zero() && !behaviour.session_window => {
                    panic!("a session WINDOW_UPDATE sent to a SPDY/3 peer: {w:?}")
                }
                Frame::WindowUpdate(_) | Frame::Settings(_) => {}
                Frame::Data(d) => {
                    let i = (d.stream_id.value() as usize - 1) / 2;
                    let len = d.data.len();
                    let c = &mut clients[i];
                    c.window -= len as i64;
                    assert!(
                        c.window >= 0,
                        "stream {} sent past its window by {}",
                        d.stream_id,
                        -c.window
                    );
                    c.received += len;
                    c.fin |= d.fin;
                    c.credit += len as u32;
                    if behaviour.session_window {
                        session_window -= len as i64;
                        assert!(
                            session_window >= 0,
                            "session window overrun by {}",
                            -session_window
                        );
                        session_credit += len as u32;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The application consumes everything that arrived in this read,
        // and only then is credit returned (as a receiver does that reads
        // after each read from the socket).
        for (i, c) in clients.iter_mut().enumerate() {
            let window = initial_stream_window + i64::from(behaviour.raise);
            if c.credit as i64 >= window / 2 && !c.fin {
                c.window += i64::from(c.credit);
                answer.push(window_update(1 + 2 * i as u32, c.credit));
                c.credit = 0;
            }
        }
        if session_credit >= DEFAULT_WINDOW / 2 {
            session_window += i64::from(session_credit);
            answer.push(window_update(0, session_credit));
            session_credit = 0;
        }
        if !answer.is_empty() {
            moved = true;
            peer.send(&answer);
        }
        if clients.iter().all(|c| c.fin) && !clients.is_empty() {
            break;
        }
        idle_rounds = if moved { 0 } else { idle_rounds + 1 };
        if idle_rounds > 3 {
            match peer.session.poll_timeout() {
                Some(deadline) if waits < 3 => {
                    waits += 1;
                    idle_rounds = 0;
                    let by = deadline.saturating_duration_since(peer.now);
                    peer.advance(by);
                }
                _ => break,
            }
        }
    }
    (clients.iter().map(|c| c.received).collect(), waits)
}

// ===== a detected SPDY/3 session that turns out to be 3.1 =====

/// A SPDY/3.1 client that keeps the default 64 KiB session window sends no
/// WINDOW_UPDATE(0) until it has consumed half of it, so a server that
/// detects the version sees SPDY/3 at first. What it sends meanwhile must
/// stay within the 64 KiB the client assumes, on all streams together
/// (the client asserts it), and the download then goes on as 3.1.
#[test]
fn detected_v3_that_is_v3_1_never_overruns_the_session_window() {
    let peer = Peer::with_session(Session::detecting(Config::default()), Version::V3_1);
    let behaviour = Behaviour {
        session_window: true,
        honours_settings: true,
        raise: 0,
    };
    let got = download(peer, Version::V3_1, behaviour, 4, 256 * 1024);
    assert_eq!(got, (vec![256 * 1024; 4], 0));
}

/// A 3.1 client that raises each stream's window by WINDOW_UPDATE when it
/// opens it (as ours does for windows above 64 KiB) still has the default
/// session window: those raises return nothing we sent and must not make
/// the server take it for plain SPDY/3.
#[test]
fn detected_v3_1_that_raises_stream_windows_is_not_taken_for_v3() {
    let peer = Peer::with_session(Session::detecting(Config::default()), Version::V3_1);
    let behaviour = Behaviour {
        session_window: true,
        honours_settings: true,
        raise: 4 * 1024 * 1024,
    };
    let got = download(peer, Version::V3_1, behaviour, 2, 1024 * 1024);
    assert_eq!(got, (vec![1024 * 1024; 2], 0));
}

/// The same server with a plain SPDY/3 client (stream windows only, never a
/// WINDOW_UPDATE(0)) must not stay limited by a session window the client
/// knows nothing of. One stream: its credit gives the client away at once.
#[test]
fn detected_v3_that_stays_v3_is_not_held_by_a_session_window() {
    let peer = Peer::with_session(Session::detecting(Config::default()), Version::V3);
    let behaviour = Behaviour {
        session_window: false,
        honours_settings: true,
        raise: 0,
    };
    let got = download(peer, Version::V3, behaviour, 1, 1024 * 1024);
    assert_eq!(got, (vec![1024 * 1024], 0));
}

/// Four streams share the tentative 64 KiB: none reaches the client's
/// update threshold, so it returns nothing, exactly as a 3.1 client that
/// does not read. After one wait of the detection grace the session is
/// SPDY/3 and the downloads finish.
#[test]
fn detected_v3_reading_many_streams_is_settled_after_one_wait() {
    let peer = Peer::with_session(Session::detecting(Config::default()), Version::V3);
    let behaviour = Behaviour {
        session_window: false,
        honours_settings: true,
        raise: 0,
    };
    let got = download(peer, Version::V3, behaviour, 4, 256 * 1024);
    assert_eq!(got, (vec![256 * 1024; 4], 1));
}

// ===== receive windows grown by WINDOW_UPDATE =====

/// A scripted peer that sends `total` bytes to our session on one stream,
/// as far as the windows *it believes in* allow: 64 KiB per stream (or our
/// SETTINGS_INITIAL_WINDOW_SIZE, if it honours SETTINGS) and, in SPDY/3.1,
/// 64 KiB for the session, each grown only by our WINDOW_UPDATEs. With
/// `our_role` Client we open a GET and the peer answers it (a download);
/// with Server the peer opens a POST (an upload). Our application reads
/// and releases everything after each read. Panics if our session resets
/// anything or goes away, if the peer ever believes in more window than
/// our stream `window` (and `session` window) let us hold, or if both
/// sides wait on each other (a stall). Returns the bytes our application
/// received.
fn send_to_us(
    our_role: Role,
    honours_settings: bool,
    window: u32,
    session: u32,
    total: usize,
) -> usize {
    let version = Version::V3_1;
    let config = Config::default()
        .with_initial_window(window)
        .with_session_window(session);
    let stream_cap = i64::from(window.max(DEFAULT_WINDOW));
    let session_cap = i64::from(session);
    let mut peer = Peer::new(our_role, version, config);
    let mut initial_window = i64::from(DEFAULT_WINDOW);
    let mut stream_window = 0i64;
    let mut session_window = i64::from(DEFAULT_WINDOW);
    let mut stream: Option<u32> = None;
    let mut may_send = false;
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut done = false;
    if our_role == Role::Client {
        peer.session
            .open_stream(
                request(version, "/big"),
                spdy_proto::session::OpenOptions {
                    fin: true,
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let mut idle = 0;
    for _ in 0..1_000_000 {
        let mut moved = false;
        let mut out = Vec::new();
        for frame in peer.frames() {
            moved = true;
            match frame {
                Frame::Settings(s) => {
                    if let Some(w) = s.get(SettingId::InitialWindowSize) {
                        if honours_settings {
                            stream_window += i64::from(w) - initial_window;
                            initial_window = i64::from(w);
                        }
                    }
                }
                Frame::SynStream(s) => {
                    // Our GET: the peer answers and starts sending.
                    stream = Some(s.stream_id.value());
                    stream_window = initial_window;
                    may_send = true;
                    out.push(Frame::SynReply(spdy_proto::frame::SynReply::new(
                        s.stream_id,
                        response(version, "200 OK"),
                    )));
                }
                Frame::SynReply(_) => {}
                Frame::WindowUpdate(w) if w.stream_id.is_zero() => {
                    session_window += i64::from(w.delta);
                    assert!(
                        session_window <= session_cap,
                        "session window {session_window}"
                    );
                }
                Frame::WindowUpdate(w) => {
                    assert_eq!(Some(w.stream_id.value()), stream);
                    stream_window += i64::from(w.delta);
                }
                other => panic!("our session sent {other:?}"),
            }
        }
        if our_role == Role::Server && stream.is_none() {
            stream = Some(1);
            stream_window = initial_window;
            may_send = true;
            out.push(syn(version, 1, false));
        }
        assert!(
            stream_window <= stream_cap,
            "the peer believes in a stream window of {stream_window}, we hold {stream_cap}"
        );
        // The peer sends what its windows allow.
        if let (true, Some(id)) = (may_send, stream) {
            while sent < total {
                let n = (total - sent)
                    .min(16 * 1024)
                    .min(stream_window.max(0) as usize)
                    .min(session_window.max(0) as usize);
                if n == 0 {
                    break;
                }
                sent += n;
                stream_window -= n as i64;
                session_window -= n as i64;
                out.push(data(id, n, sent == total));
            }
        }
        if !out.is_empty() {
            moved = true;
            peer.send(&out);
        }
        // Our application reads and releases everything.
        for event in peer.events() {
            match event {
                Event::StreamOpened { id, .. } => peer
                    .session
                    .reply(id, response(version, "200 OK"), true)
                    .unwrap(),
                Event::StreamFailed { id, error } => panic!("stream {id} failed: {error}"),
                Event::Closed { error } => panic!("session closed: {error:?}"),
                _ => {}
            }
        }
        if let Some(id) = stream {
            loop {
                match peer.session.recv(sid(id), usize::MAX) {
                    Ok(Recv::Data(d)) => {
                        received += d.len();
                        peer.session.release_capacity(sid(id), d.len()).unwrap();
                    }
                    Ok(Recv::End) => {
                        done = true;
                        break;
                    }
                    _ => break,
                }
            }
        }
        if done {
            break;
        }
        idle = if moved { 0 } else { idle + 1 };
        assert!(
            idle < 3,
            "stalled after {sent} bytes sent, {received} received \
             (the peer's windows: stream {stream_window}, session {session_window})"
        );
    }
    received
}

const BIG: usize = 20 * 1024 * 1024;
const MIB: u32 = 1024 * 1024;

/// Issue 14: a Go SPDY/3.1 server ignores SETTINGS_INITIAL_WINDOW_SIZE.
/// With a 1 or 4 MiB stream window configured our client must still get
/// a 20 MiB response (it stopped at 64 KiB).
#[test]
fn a_server_that_ignores_settings_sends_20_mib_to_a_large_window() {
    for window in [MIB, 4 * MIB] {
        let got = send_to_us(Role::Client, false, window, 16 * MIB, BIG);
        assert_eq!(got, BIG, "{window}");
    }
}

/// The same peer as a client uploading to our server.
#[test]
fn a_client_that_ignores_settings_uploads_20_mib() {
    assert_eq!(send_to_us(Role::Server, false, MIB, MIB, BIG), BIG);
}

/// A peer that honours SETTINGS must not be given more than we hold (it
/// would add our WINDOW_UPDATE to an advertised window), in either role.
#[test]
fn a_peer_that_honours_settings_never_gets_more_than_we_hold() {
    for role in [Role::Client, Role::Server] {
        assert_eq!(send_to_us(role, true, MIB, 4 * MIB, BIG), BIG, "{role:?}");
        // A window below the default is still advertised, and honoured.
        let got = send_to_us(role, true, 16 * 1024, MIB, MIB as usize);
        assert_eq!(got, MIB as usize, "{role:?}");
    }
}

// ===== a peer that never opens a window =====

/// Our client opens a stream and has 1 MiB to send to a scripted server
/// that answers but never sends WINDOW_UPDATE (spdystream does no flow
/// control; so does a 3.1-only server spoken to as SPDY/3). Returns the
/// peer, the stream, and what the server received (the first window).
fn blocked_upload(
    version: Version,
    config: Config,
    peer_settings: Option<Frame>,
) -> (Peer, StreamId, usize) {
    let mut peer = Peer::started(Role::Client, version, config);
    if let Some(settings) = peer_settings {
        peer.send(&[settings]);
    }
    let id = peer
        .session
        .open_stream(
            request(version, "/upload"),
            spdy_proto::session::OpenOptions::default(),
        )
        .unwrap();
    peer.frames();
    peer.send(&[Frame::SynReply(spdy_proto::frame::SynReply::new(
        id,
        response(version, "200 OK"),
    ))]);
    peer.events();
    let mut left = 1024 * 1024;
    let mut received = 0;
    loop {
        let room = peer.session.send_capacity(id).unwrap().min(left);
        if room > 0 {
            left -= room;
            peer.session
                .send_data(id, Bytes::from(vec![b'u'; room]), left == 0)
                .unwrap();
        }
        let frames = peer.frames();
        let got: usize = frames
            .iter()
            .map(|f| match f {
                Frame::Data(d) => d.data.len(),
                _ => 0,
            })
            .sum();
        received += got;
        if got == 0 && room == 0 {
            break;
        }
    }
    (peer, id, received)
}

fn stalled(events: &[Event], id: StreamId) -> Option<std::time::Duration> {
    events.iter().find_map(|e| match e {
        Event::StreamFailed {
            id: failed,
            error: StreamError::WindowStalled { waited },
        } if *failed == id => Some(*waited),
        _ => None,
    })
}

/// The stream fails with a typed error that names the likely cause and
/// the way out, after the configured time without a WINDOW_UPDATE, and the
/// peer is told by RST_STREAM CANCEL; the clock restarts with each update.
#[test]
fn a_peer_that_never_opens_the_window_fails_the_stream_with_advice() {
    let timeout = Duration::from_secs(60);
    for version in [Version::V3, Version::V3_1] {
        let (mut peer, id, received) = blocked_upload(version, Config::default(), None);
        assert_eq!(received, DEFAULT_WINDOW as usize, "{version}");
        let deadline = peer.session.poll_timeout().expect("a deadline");
        assert_eq!(deadline - peer.now, timeout, "{version}");
        // An update just before the deadline lets 16 KiB more go, and the
        // clock starts again from there.
        peer.advance(timeout - Duration::from_secs(1));
        assert!(stalled(&peer.events(), id).is_none(), "{version}");
        peer.send(&[window_update(id.value(), 16 * 1024)]);
        if version == Version::V3_1 {
            peer.send(&[window_update(0, 16 * 1024)]);
        }
        let room = peer.session.send_capacity(id).unwrap();
        peer.session
            .send_data(id, Bytes::from(vec![b'u'; room]), false)
            .unwrap();
        let sent: usize = peer
            .frames()
            .iter()
            .map(|f| match f {
                Frame::Data(d) => d.data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(sent, 16 * 1024, "{version}");
        peer.advance(timeout - Duration::from_secs(1));
        assert!(stalled(&peer.events(), id).is_none(), "{version}");
        peer.advance(Duration::from_secs(1));
        let events = peer.events();
        assert_eq!(stalled(&events, id), Some(timeout), "{version}: {events:?}");
        let frames = peer.frames();
        assert!(
            matches!(frames.as_slice(), [Frame::RstStream(r)]
                if r.stream_id == id && r.status == spdy_proto::frame::RstStatus::Cancel),
            "{version}: {frames:?}"
        );
        let message = StreamError::WindowStalled { waited: timeout }.to_string();
        assert!(
            message.contains("with_peer_flow_control(false)"),
            "{message}"
        );
    }
}

/// SPDY/3.1: a stream with window to spare still stalls on a session
/// window the peer never opens, and that is caught too.
#[test]
fn a_session_window_that_never_opens_fails_the_stream() {
    let big = Frame::Settings(spdy_proto::frame::Settings::new(vec![
        spdy_proto::frame::Setting::new(SettingId::InitialWindowSize, 8 * 1024 * 1024),
    ]));
    let config = Config::default().with_window_stall_timeout(Some(Duration::from_secs(5)));
    let (mut peer, id, received) = blocked_upload(Version::V3_1, config, Some(big));
    assert_eq!(received, DEFAULT_WINDOW as usize);
    peer.advance(Duration::from_secs(5));
    assert_eq!(stalled(&peer.events(), id), Some(Duration::from_secs(5)));
}

/// `None` waits forever, as before.
#[test]
fn the_window_stall_timeout_can_be_turned_off() {
    let config = Config::default().with_window_stall_timeout(None);
    let (mut peer, _, received) = blocked_upload(Version::V3_1, config, None);
    assert_eq!(received, DEFAULT_WINDOW as usize);
    assert_eq!(peer.session.poll_timeout(), None);
    peer.advance(Duration::from_secs(3600));
    assert!(peer.events().is_empty());
    assert!(peer.frames().is_empty());
}

// ===== a client that opens streams out of order =====

fn opened(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StreamOpened { id, .. } => Some(id.value()),
            _ => None,
        })
        .collect()
}

/// A Go client opening streams from several goroutines: SYN_STREAMs for
/// 5, 3, 1 in that order. In the tolerant mode all three open, in order of
/// arrival, and each can be answered; a second SYN_STREAM for any of them
/// is refused with RST_STREAM PROTOCOL_ERROR (2.3.2) and the session
/// goes on.
#[test]
fn tolerant_mode_accepts_unused_ids_below_the_highest() {
    let config = Config::default().with_tolerate_unordered_stream_ids(true);
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, config.clone());
        peer.send(&[
            syn(version, 5, false),
            syn(version, 3, false),
            syn(version, 1, false),
        ]);
        assert_eq!(opened(&peer.events()), vec![5, 3, 1], "{version}");
        assert!(goaways(&peer.frames()).is_empty(), "{version}");
        for id in [3, 1, 5] {
            peer.send(&[syn(version, id, false)]);
            let frames = peer.frames();
            assert!(
                matches!(frames.as_slice(), [Frame::RstStream(r)]
                    if r.stream_id == sid(id)
                        && r.status == spdy_proto::frame::RstStatus::ProtocolError),
                "{version} {id}: {frames:?}"
            );
        }
        // A new id above the highest still opens, and so does one left
        // out below it.
        peer.send(&[syn(version, 9, false), syn(version, 7, true)]);
        assert_eq!(opened(&peer.events()), vec![9, 7], "{version}");
        peer.session
            .reply(sid(7), response(version, "200 OK"), true)
            .unwrap();
        let frames = peer.frames();
        assert!(
            matches!(frames.as_slice(), [Frame::SynReply(r)] if r.stream_id == sid(7)),
            "{version}: {frames:?}"
        );
    }
}

/// Only a bounded window of ids below the highest is remembered; an id
/// further down cannot be known unused and is the session error of the
/// default mode.
#[test]
fn tolerant_mode_refuses_ids_beyond_its_window() {
    let config = Config::default().with_tolerate_unordered_stream_ids(true);
    let version = Version::V3_1;
    let window = spdy_proto::session::UNORDERED_ID_WINDOW;
    let top = 1 + 2 * window;
    let mut peer = Peer::started(Role::Server, version, config);
    peer.send(&[syn(version, top, true)]);
    peer.send(&[syn(version, 3, true)]);
    assert_eq!(opened(&peer.events()), vec![top, 3]);
    peer.send(&[syn(version, 1, true)]);
    let sent = goaways(&peer.frames());
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].status, GoAwayStatus::ProtocolError);
}

/// The default is the spec's: ids going backwards end the session with
/// GOAWAY PROTOCOL_ERROR.
#[test]
fn default_mode_ends_the_session_on_ids_going_backwards() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 5, false)]);
        assert_eq!(opened(&peer.events()), vec![5], "{version}");
        peer.send(&[syn(version, 3, false)]);
        let frames = peer.frames();
        let sent = goaways(&frames);
        assert_eq!(sent.len(), 1, "{version}: {frames:?}");
        if version != Version::V2 {
            // SPDY/2's GOAWAY carries no status.
            assert_eq!(sent[0].status, GoAwayStatus::ProtocolError, "{version}");
        }
        assert_eq!(sent[0].last_good_stream_id, sid(5), "{version}");
        let events = peer.events();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Closed { error: Some(_) })),
            "{version}: {events:?}"
        );
    }
}

// ===== a peer that dies on unknown control frames =====

/// A strict peer that knows only the frames of its version and dies on
/// anything else (`download` panics on any frame a GET's client does not
/// expect, and on a session WINDOW_UPDATE sent to a SPDY/3 peer): a
/// 20 MiB download and 100 streams of 4 MiB from our server, for SPDY/3
/// and 3.1, get every byte and send it nothing else. (SPDY/2 has no
/// WINDOW_UPDATE at all, so this client's credit frames do not apply.)
#[test]
fn a_peer_that_dies_on_unknown_frames_gets_only_frames_it_knows() {
    for (version, session_window) in [(Version::V3, false), (Version::V3_1, true)] {
        let behaviour = Behaviour {
            session_window,
            honours_settings: true,
            raise: 0,
        };
        let peer = Peer::started(Role::Server, version, Config::default());
        let got = download(peer, version, behaviour, 1, BIG);
        assert_eq!(got, (vec![BIG], 0), "{version}");
        let peer = Peer::started(Role::Server, version, Config::default());
        let got = download(peer, version, behaviour, 100, 4 * MIB as usize);
        assert_eq!(got, (vec![4 * MIB as usize; 100], 0), "{version}");
    }
}

// ===== a peer that stops reading at GOAWAY =====

/// A client that, once it has some of a 20 MiB response, sends GOAWAY and
/// reads no more: no WINDOW_UPDATE ever comes again. Our server must not
/// wait silently: after the window-stall timeout the stream fails with
/// `WindowStalled` (and is reset), and the session then ends, both sides
/// having gone away with nothing left open.
#[test]
fn a_peer_that_stops_reading_at_goaway_fails_the_stream_then_closes() {
    let timeout = Duration::from_secs(60);
    for version in [Version::V3, Version::V3_1] {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        peer.send(&[syn(version, 1, true)]);
        assert_eq!(opened(&peer.events()), vec![1], "{version}");
        peer.session
            .reply(sid(1), response(version, "200 OK"), false)
            .unwrap();
        let mut left = BIG;
        let mut received = 0;
        loop {
            let room = peer.session.send_capacity(sid(1)).unwrap().min(left);
            if room > 0 {
                left -= room;
                peer.session
                    .send_data(sid(1), Bytes::from(vec![b'y'; room]), left == 0)
                    .unwrap();
            }
            let got: usize = peer
                .frames()
                .iter()
                .map(|f| match f {
                    Frame::Data(d) => d.data.len(),
                    _ => 0,
                })
                .sum();
            received += got;
            if got == 0 && room == 0 {
                break;
            }
        }
        assert_eq!(received, DEFAULT_WINDOW as usize, "{version}");
        // The client goes away (it opened nothing of ours to name) and
        // reads nothing more.
        peer.send(&[Frame::GoAway(GoAway::new(StreamId::ZERO, GoAwayStatus::Ok))]);
        let events = peer.events();
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, Event::Closed { .. } | Event::StreamFailed { .. })),
            "{version}: {events:?}"
        );
        let deadline = peer.session.poll_timeout().expect("a deadline");
        assert_eq!(deadline - peer.now, timeout, "{version}");
        peer.advance(timeout);
        let events = peer.events();
        assert_eq!(
            stalled(&events, sid(1)),
            Some(timeout),
            "{version}: {events:?}"
        );
        let frames = peer.frames();
        assert!(
            frames.iter().any(|f| matches!(f, Frame::RstStream(r)
                if r.stream_id == sid(1) && r.status == spdy_proto::frame::RstStatus::Cancel)),
            "{version}: {frames:?}"
        );
        let mut closed = events.iter().any(|e| matches!(e, Event::Closed { .. }));
        closed |= peer
            .events()
            .iter()
            .any(|e| matches!(e, Event::Closed { .. }));
        assert!(closed || peer.session.is_closed(), "{version}: still open");
    }
}
