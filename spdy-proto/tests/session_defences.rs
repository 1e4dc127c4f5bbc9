//! Connection-level defences of the sans-IO session (issue 11), each against
//! a scripted peer: what a slow reader can make us buffer, which resets
//! count as abuse, floods of frames for streams we reset, large SETTINGS,
//! DATA as the first frame, broken header blocks, and the memory an idle
//! session holds.

mod support;

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};
use spdy_proto::frame::{
    Data, Frame, FrameError, GoAwayStatus, Headers, Ping, RstStatus, Setting, SettingId, Settings,
    StreamId, SynReply, Version,
};
use spdy_proto::header_block::{HeaderBlock, HeaderBlockError};
use spdy_proto::session::{Config, Event, Flood, OpenOptions, Role, Session, SessionError};
use spdy_proto::{DecodeLimits, FrameEncoder};
use support::{request, response, rst, sid, syn, window_update, Pair, Peer};

/// Our default stream window, the peer's session window before it raises
/// it, and our largest DATA frame (the send slack).
const WINDOW: usize = 64 * 1024;
const SLACK: usize = 16 * 1024;

/// A server peer with `n` client streams (1, 3, 5, ...) opened and replied
/// to, its opening frames read.
fn server_with_replied_streams(version: Version, config: Config, n: u32) -> (Peer, Vec<u32>) {
    let mut peer = Peer::started(Role::Server, version, config);
    let ids: Vec<u32> = (0..n).map(|i| 2 * i + 1).collect();
    for &id in &ids {
        peer.send(&[syn(version, id, true)]);
    }
    peer.events();
    for &id in &ids {
        peer.session
            .reply(sid(id), response(version, "200 OK"), false)
            .unwrap();
    }
    peer.frames();
    (peer, ids)
}

/// Writes as much as the session accepts on `id`, as a driver does
/// (`poll_capacity`, then `send_data` of that much). Returns the bytes
/// accepted.
fn fill(peer: &mut Peer, id: u32, limit: usize) -> usize {
    let mut written = 0;
    while written < limit {
        let room = peer.session.poll_capacity(sid(id)).unwrap();
        if room == 0 {
            break;
        }
        let n = room.min(limit - written);
        let fin = written + n == limit;
        peer.session
            .send_data(sid(id), Bytes::from(vec![7u8; n]), fin)
            .unwrap();
        written += n;
    }
    written
}

// ===== 1. slow readers =====

/// A peer that opens many streams and never sends WINDOW_UPDATE: what we
/// buffer for each stream is bounded by what its window lets us send plus
/// one DATA frame, not by `max_send_buffer` (256 KiB), so a reader that
/// stops costs at most its window. SPDY/3 2.6.8: "When the window size
/// becomes less than or equal to 0, the sender must pause transmitting data
/// frames." In SPDY/3.1 the session window (64 KiB until the peer raises
/// it) caps what goes out across all streams.
#[test]
fn a_peer_that_never_opens_its_windows_costs_at_most_its_window_per_stream() {
    for version in [Version::V3, Version::V3_1] {
        let (mut peer, ids) = server_with_replied_streams(version, Config::default(), 20);
        let mut written: HashMap<u32, usize> = HashMap::new();
        let mut sent: HashMap<u32, usize> = HashMap::new();
        // Several rounds of writing and reading what the session sends: the
        // peer reads every frame but never gives window back.
        for _ in 0..10 {
            for &id in &ids {
                *written.entry(id).or_default() += fill(&mut peer, id, 1 << 30);
            }
            for frame in peer.frames() {
                if let Frame::Data(d) = frame {
                    *sent.entry(d.stream_id.value()).or_default() += d.data.len();
                }
            }
        }
        for &id in &ids {
            let w = written[&id];
            let s = sent.get(&id).copied().unwrap_or(0);
            // What the application handed us = what went out + what waits.
            assert!(
                w <= WINDOW + SLACK,
                "{version}: stream {id} buffered {w} bytes (sent {s})"
            );
            assert!(s <= WINDOW, "{version}: stream {id} sent {s}");
            assert!(w >= SLACK, "{version}: stream {id} accepted only {w}");
        }
        let total_sent: usize = sent.values().sum();
        if version == Version::V3_1 {
            assert_eq!(total_sent, WINDOW, "{version}: the session window");
        } else {
            assert_eq!(total_sent, WINDOW * ids.len(), "{version}");
        }
    }
}

/// The room `poll_capacity` reports is still there when the writer uses
/// it: a driver asks, unlocks, then writes, and meanwhile other streams may
/// send (spending the SPDY/3.1 session window) and the peer may lower its
/// initial window. Neither takes room away; only the stream's own writes do.
#[test]
fn reported_room_survives_other_streams_and_a_smaller_initial_window() {
    for version in [Version::V3, Version::V3_1] {
        let (mut peer, ids) = server_with_replied_streams(version, Config::default(), 2);
        let (a, b) = (sid(ids[0]), sid(ids[1]));
        let room = peer.session.poll_capacity(a).unwrap();
        assert_eq!(room, WINDOW + SLACK, "{version}");
        // Stream b spends the whole session window (in 3.1).
        assert_eq!(fill(&mut peer, ids[1], WINDOW), WINDOW, "{version}");
        peer.frames();
        peer.send(&[Frame::Settings(Settings::new(vec![Setting::new(
            SettingId::InitialWindowSize,
            1024,
        )]))]);
        peer.events();
        peer.session
            .send_data(a, Bytes::from(vec![1u8; room]), false)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(peer.session.send_capacity(a), Ok(0), "{version}");
        assert!(peer.session.send_capacity(b).is_err(), "{version}: b ended");
    }
}

/// Without windows (SPDY/2, or a peer without flow control) the bound is
/// `max_send_buffer`, as before.
#[test]
fn without_flow_control_the_send_buffer_is_the_bound() {
    let cases = [
        (Version::V2, Config::default().with_max_send_buffer(100_000)),
        (
            Version::V3,
            Config::default()
                .with_max_send_buffer(100_000)
                .with_peer_flow_control(false),
        ),
    ];
    for (version, config) in cases {
        let (mut peer, ids) = server_with_replied_streams(version, config, 1);
        assert_eq!(fill(&mut peer, ids[0], 1 << 30), 100_000, "{version}");
    }
}

/// A peer that does give window back gets whole bodies through, and the
/// writer, which writes only after `Event::Writable` once it found no room,
/// never hangs: stream and session WINDOW_UPDATEs both wake it.
#[test]
fn a_peer_that_updates_its_windows_gets_every_body_through() {
    const BODY: usize = 1 << 20;
    for version in [Version::V3, Version::V3_1] {
        let (mut peer, ids) = server_with_replied_streams(version, Config::default(), 4);
        let mut left: HashMap<u32, usize> = ids.iter().map(|&id| (id, BODY)).collect();
        let mut received: HashMap<u32, usize> = HashMap::new();
        let mut finished: HashSet<u32> = HashSet::new();
        let mut blocked: HashSet<u32> = HashSet::new();
        let mut rounds = 0;
        while finished.len() < ids.len() {
            rounds += 1;
            assert!(
                rounds < 10_000,
                "{version}: stalled, received {received:?}, blocked {blocked:?}"
            );
            for &id in &ids {
                if blocked.contains(&id) || left[&id] == 0 {
                    continue;
                }
                let n = fill(&mut peer, id, left[&id]);
                *left.get_mut(&id).unwrap() -= n;
                if left[&id] > 0 {
                    blocked.insert(id);
                }
            }
            let mut updates = Vec::new();
            for frame in peer.frames() {
                if let Frame::Data(d) = frame {
                    let id = d.stream_id.value();
                    let len = d.data.len() as u32;
                    *received.entry(id).or_default() += d.data.len();
                    if d.fin {
                        finished.insert(id);
                    }
                    if len > 0 {
                        updates.push(window_update(id, len));
                        if version == Version::V3_1 {
                            updates.push(window_update(0, len));
                        }
                    }
                }
            }
            peer.send(&updates);
            for event in peer.events() {
                if let Event::Writable { id } = event {
                    blocked.remove(&id.value());
                }
            }
        }
        for &id in &ids {
            assert_eq!(received[&id], BODY, "{version}: stream {id}");
        }
    }
}

// ===== 2. which resets count =====

/// The session ended with `flood` after a GOAWAY PROTOCOL_ERROR naming
/// `last_good` (2.4.1: "MUST first send a GOAWAY").
fn assert_goaway_flood(peer: &mut Peer, version: Version, last_good: u32, flood: Flood) {
    let frames = peer.frames();
    assert_closed_by(peer, &frames, version, last_good, flood);
}

/// Like [`assert_goaway_flood`], with the session's last frames already
/// read.
fn assert_closed_by(
    peer: &mut Peer,
    frames: &[Frame],
    version: Version,
    last_good: u32,
    flood: Flood,
) {
    assert!(
        matches!(frames, [Frame::GoAway(g)]
            if g.last_good_stream_id == StreamId::from_wire(last_good)
                && (version == Version::V2 || g.status == GoAwayStatus::ProtocolError)),
        "{version}: {frames:?}"
    );
    let events = peer.events();
    assert_eq!(
        events.last(),
        Some(&Event::Closed {
            error: Some(SessionError::Flood(flood))
        }),
        "{version}"
    );
    assert!(peer.session.is_closed(), "{version}");
}

/// A client that cancels streams we were already answering is a client
/// leaving (a media player seeking, a proxy whose own client went away):
/// 1,200 such cancels within one period of the reset limit (1,000 per
/// 10 s by default) leave the session up, and every stream is freed.
#[test]
fn cancels_of_answered_streams_do_not_count_as_rapid_reset() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        for i in 0..1200u32 {
            let id = 2 * i + 1;
            peer.send(&[syn(version, id, true)]);
            peer.session
                .reply(sid(id), response(version, "200 OK"), false)
                .unwrap();
            peer.session
                .send_data(sid(id), Bytes::from_static(b"partial body"), false)
                .unwrap();
            // Our SYN_REPLY (and some data) is on the wire.
            let frames = peer.frames();
            assert!(
                matches!(frames.first(), Some(Frame::SynReply(_))),
                "{version}: {frames:?}"
            );
            peer.send(&[rst(id, RstStatus::Cancel)]);
            assert_eq!(peer.session.active_streams(), (0, 0), "{version}");
        }
        assert!(peer.frames().is_empty(), "{version}");
        assert!(
            !peer
                .events()
                .iter()
                .any(|e| matches!(e, Event::Closed { .. })),
            "{version}"
        );
        assert!(!peer.session.is_closed(), "{version}");
    }
}

/// The rapid-reset shape (CVE-2023-44487): streams opened and cancelled
/// before we answered cost us work and gave the peer nothing. The 1,001st
/// within the period ends the session with GOAWAY PROTOCOL_ERROR and
/// `Flood::Resets`, even if our answer was queued (not yet sent) when the
/// cancel came.
#[test]
fn cancels_before_our_reply_still_count_as_rapid_reset() {
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Server, version, Config::default());
        let mut id = 1;
        for i in 0..1000u32 {
            peer.send(&[syn(version, id, true)]);
            if i % 2 == 0 {
                // Answered, but the answer has not gone out yet.
                peer.session
                    .reply(sid(id), response(version, "200 OK"), false)
                    .unwrap();
            }
            peer.send(&[rst(id, RstStatus::Cancel)]);
            id += 2;
        }
        assert!(peer.frames().is_empty(), "{version}: nothing to say yet");
        assert!(!peer.session.is_closed(), "{version}");
        peer.events();
        peer.send(&[syn(version, id, true), rst(id, RstStatus::Cancel)]);
        // The last stream never reached the application: not last-good.
        assert_goaway_flood(&mut peer, version, id - 2, Flood::Resets);
    }
}

// ===== 3. frames for streams we reset =====

/// A server peer with stream 1 opened by the client and reset by us.
fn server_with_reset_stream(version: Version, config: Config) -> Peer {
    let mut peer = Peer::started(Role::Server, version, config);
    peer.send(&[syn(version, 1, false)]);
    peer.session.reset(sid(1), RstStatus::Cancel).unwrap();
    let frames = peer.frames();
    assert!(
        matches!(frames.as_slice(), [Frame::RstStream(r)] if r.stream_id == sid(1)),
        "{version}: {frames:?}"
    );
    peer.events();
    peer
}

/// Sends `frame` until the session answers; returns how many were sent
/// and the answer.
fn send_until_answered(peer: &mut Peer, frame: &Frame, max: usize) -> (usize, Vec<Frame>) {
    for n in 1..=max {
        peer.send(std::slice::from_ref(frame));
        let frames = peer.frames();
        if !frames.is_empty() {
            return (n, frames);
        }
    }
    (max, Vec::new())
}

/// HEADERS for a stream we reset must still be inflated (the zlib context
/// is shared: SPDY/3 2.4.1, "the session compression state is dependent
/// upon both endpoints always processing all compressed data") and are
/// then dropped. Each small frame that inflates to 60 KiB is 60 KiB of work
/// for nothing: the bytes inflated for dropped frames are counted
/// (`Config::with_ignored_header_bytes`, 4 MiB per 10 s), and the flood
/// ends with GOAWAY PROTOCOL_ERROR and `Flood::IgnoredHeaderBytes` after
/// about 70 frames, not 100,000.
#[test]
fn headers_that_inflate_big_on_a_reset_stream_end_the_session() {
    for version in Version::ALL {
        let mut peer = server_with_reset_stream(version, Config::default());
        let mut headers = HeaderBlock::new();
        headers.push("x-filler", vec![b'a'; 60_000]);
        let frame = Frame::Headers(Headers::new(sid(1), headers));
        // Without the budget this would go on for all 100,000 frames.
        let (sent, answer) = send_until_answered(&mut peer, &frame, 100_000);
        let budget = 4 * 1024 * 1024 / 60_000;
        assert!(
            (budget..=budget + 2).contains(&sent),
            "{version}: closed after {sent} frames"
        );
        // The GOAWAY names stream 1, the last one the peer opened.
        assert_closed_by(&mut peer, &answer, version, 1, Flood::IgnoredHeaderBytes);
    }
}

/// Small HEADERS, SYN_REPLY and short DATA for a stream we reset count as
/// frames processed for nothing (`Config::with_ignored_frame_rate`, 5000
/// per 10 s): the 5001st in a period ends the session.
#[test]
fn a_flood_of_small_frames_on_a_reset_stream_ends_the_session() {
    for version in Version::ALL {
        let frames = [
            Frame::Headers(Headers::new(sid(1), HeaderBlock::new())),
            Frame::Data(Data::new(sid(1), Bytes::new(), true)),
        ];
        for frame in &frames {
            let mut peer = server_with_reset_stream(version, Config::default());
            let (sent, answer) = send_until_answered(&mut peer, frame, 100_000);
            assert_eq!(sent, 5001, "{version}: {frame:?}");
            assert_closed_by(&mut peer, &answer, version, 1, Flood::IgnoredFrames);
        }
    }
    // A client: SYN_REPLY for a stream it reset.
    let version = Version::V3_1;
    let mut peer = Peer::started(Role::Client, version, Config::default());
    let id = peer
        .session
        .open_stream(request(version, "/"), Default::default())
        .unwrap();
    peer.session.reset(id, RstStatus::Cancel).unwrap();
    peer.frames();
    let frame = Frame::SynReply(SynReply::new(id, HeaderBlock::new()));
    let (sent, answer) = send_until_answered(&mut peer, &frame, 100_000);
    assert_eq!(sent, 5001);
    assert_closed_by(&mut peer, &answer, version, 0, Flood::IgnoredFrames);
}

/// A peer's few late frames after our reset (trailers, the end of its
/// data) are normal and cost nothing: the session goes on.
#[test]
fn a_few_late_frames_after_our_reset_are_dropped_quietly() {
    for version in Version::ALL {
        let mut peer = server_with_reset_stream(version, Config::default());
        peer.send(&[
            Frame::Data(Data::new(sid(1), vec![1u8; 20_000], false)),
            Frame::Headers(Headers::new(sid(1), request(version, "/"))),
            Frame::Data(Data::new(sid(1), Bytes::new(), true)),
        ]);
        assert!(peer.frames().is_empty(), "{version}");
        assert!(!peer.session.is_closed(), "{version}");
    }
}

// ===== 4. large SETTINGS =====

/// A server may ask a client to persist settings (SPDY/3 2.6.4,
/// FLAG_SETTINGS_PERSIST_VALUE) in a frame of thousands of entries. The
/// client handles it in one pass and keeps at most one value per id the
/// spec defines (the first: "it MUST ignore all values except the first
/// one"), so what it stores and replays is bounded by the 8 ids, not by the
/// frame.
#[test]
fn a_settings_frame_of_ten_thousand_entries_keeps_one_value_per_known_id() {
    let limits = DecodeLimits::default().with_max_control_frame_len(1 << 20);
    let config = Config::default().with_decode_limits(limits);
    for version in Version::ALL {
        let mut peer = Peer::started(Role::Client, version, config.clone());
        // Ids 1..=8 and two unknown ones, in turn, all asking to persist.
        let entries: Vec<Setting> = (0..10_000u32)
            .map(|i| {
                let id = match i % 10 {
                    k @ 0..=7 => SettingId::from_u32(k + 1),
                    _ => SettingId::Unknown(1000 + i),
                };
                Setting {
                    persist_value: true,
                    ..Setting::new(id, i)
                }
            })
            .collect();
        peer.send(&[Frame::Settings(Settings::new(entries))]);
        assert!(!peer.session.is_closed(), "{version}");
        let mut kept: Vec<(u32, u32)> = peer
            .session
            .persisted_settings()
            .iter()
            .map(|s| (s.id.to_u32(), s.value))
            .collect();
        kept.sort_unstable();
        // The first value of each known id: id k came first as entry k - 1.
        let expected: Vec<(u32, u32)> = (1..=8).map(|k| (k, k - 1)).collect();
        assert_eq!(kept, expected, "{version}");
        // MAX_CONCURRENT_STREAMS (4) took its first value too: 3.
        let events = peer.events();
        assert!(
            matches!(events.as_slice(), [Event::Settings(s)]
                if s.get(SettingId::MaxConcurrentStreams) == Some(3)),
            "{version}"
        );
    }
}

/// What an application hands back for replay is bounded the same way.
#[test]
fn replayed_settings_are_bounded_by_the_known_ids() {
    let version = Version::V3_1;
    let mut session = Session::new(Role::Client, version, Config::default());
    let given: Vec<Setting> = (0..10_000u32)
        .map(|i| Setting::new(SettingId::from_u32(i % 20 + 1), i))
        .collect();
    session.set_persisted_settings(given);
    let kept: Vec<(u32, u32)> = session
        .persisted_settings()
        .iter()
        .map(|s| (s.id.to_u32(), s.value))
        .collect();
    assert_eq!(kept, (1..=8).map(|k| (k, k - 1)).collect::<Vec<_>>());
}

// ===== 5. DATA as the first frame =====

/// The 8-byte header of a DATA frame for `id` announcing `len` bytes.
fn data_head(id: u32, len: u32, fin: bool) -> [u8; 8] {
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&id.to_be_bytes());
    head[4] = u8::from(fin);
    head[5..].copy_from_slice(&len.to_be_bytes()[1..]);
    head
}

/// A server of fixed version (`Session::new`, as `spdy serve --spdy 3`
/// uses) whose first frame is a DATA frame for a stream that does not
/// exist answers at once with RST_STREAM INVALID_STREAM (SPDY/3 2.2.2: a
/// data frame for a stream-id "which is not open ... MUST issue a stream
/// error with the status code INVALID_STREAM"), instead of waiting for the
/// frame's payload; the payload is then discarded as it arrives, nothing of
/// it kept, and the session goes on.
#[test]
fn data_as_the_first_frame_is_answered_at_once() {
    for version in Version::ALL {
        let mut peer = Peer::new(Role::Server, version, Config::default());
        let announced = 1_000_000u32;
        let mut wire = BytesMut::from(&data_head(1, announced, false)[..]);
        wire.extend_from_slice(&[9u8; 100]);
        peer.session.handle_input(peer.now, &mut wire);
        assert!(wire.is_empty(), "{version}: {} bytes held", wire.len());
        let frames = peer.frames();
        let resets: Vec<&Frame> = frames
            .iter()
            .filter(|f| matches!(f, Frame::RstStream(_)))
            .collect();
        assert_eq!(
            resets,
            [&rst(1, RstStatus::InvalidStream)],
            "{version}: {frames:?}"
        );
        // The rest of the payload goes by without an answer or a copy.
        let mut left = announced as usize - 100;
        while left > 0 {
            let n = left.min(60_000);
            let mut piece = BytesMut::from(&vec![9u8; n][..]);
            peer.session.handle_input(peer.now, &mut piece);
            assert!(piece.is_empty(), "{version}");
            left -= n;
        }
        assert!(peer.frames().is_empty(), "{version}");
        // Framing is intact: the next frame is read as one.
        peer.send(&[Frame::Ping(Ping::new(1))]);
        assert_eq!(peer.frames(), [Frame::Ping(Ping::new(1))], "{version}");
        assert!(!peer.session.is_closed(), "{version}");
    }
}

// ===== 6. broken header blocks end the session =====

/// A SYN_STREAM for `id` (priority 0, no flags) carrying `block` as its
/// compressed header block, as raw bytes: SPDY/2 and 3 share the layout up
/// to the block (ids, then two bytes of priority and slot or unused).
fn raw_syn_stream(version: Version, id: u32, block: &[u8]) -> Vec<u8> {
    let len = u32::try_from(10 + block.len()).unwrap();
    let mut out = vec![0x80, version.wire_number() as u8, 0x00, 0x01, 0x00];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(block);
    out
}

/// `plain` compressed as a peer's first header block: zlib with the
/// version's dictionary, ended with SYNC_FLUSH.
fn deflate_first_block(version: Version, plain: &[u8]) -> Vec<u8> {
    let mut deflate = flate2::Compress::new(flate2::Compression::default(), true);
    deflate
        .set_dictionary(spdy_proto::header_block::dictionary::for_version(version))
        .unwrap();
    let mut out = Vec::with_capacity(plain.len() + 64);
    deflate
        .compress_vec(plain, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out
}

/// Which decoding error a test expects.
type BlockCheck = fn(&HeaderBlockError) -> bool;

/// The session ended on a broken header block: GOAWAY PROTOCOL_ERROR naming
/// no stream, and the decoding error the application sees.
fn assert_ended_by_block(
    peer: &mut Peer,
    version: Version,
    expected: fn(&HeaderBlockError) -> bool,
) {
    let frames = peer.frames();
    assert!(
        matches!(frames.as_slice(), [.., Frame::GoAway(g)]
            if g.last_good_stream_id == StreamId::ZERO
                && (version == Version::V2 || g.status == GoAwayStatus::ProtocolError)),
        "{version}: {frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::RstStream(_))),
        "{version}: a stream error is not enough: {frames:?}"
    );
    let events = peer.events();
    match events.last() {
        Some(Event::Closed {
            error: Some(SessionError::Frame(FrameError::HeaderBlock(e))),
        }) if expected(e) => {}
        other => panic!("{version}: {other:?}"),
    }
    assert!(peer.session.is_closed(), "{version}");
}

/// A header block cut short (the frame's length ends it early) may still
/// inflate, leaving the shared zlib stream mid-symbol; every later block
/// would be read out of step. It does not end with the SYNC_FLUSH marker
/// every block ends with (2.6.10.1: "SPDY uses a SYNC_FLUSH between each
/// compressed frame"), so the session ends (2.4.1: an error "which corrupts
/// the session compression state" is a session error).
#[test]
fn a_header_block_cut_short_ends_the_session() {
    for version in Version::ALL {
        let mut encoder = FrameEncoder::new(version);
        let mut wire = BytesMut::new();
        encoder.encode(&syn(version, 1, true), &mut wire).unwrap();
        let block = &wire[18..];
        for cut in [1, 4, 6, block.len() / 2] {
            let mut peer = Peer::new(Role::Server, version, Config::default());
            peer.send_raw(&raw_syn_stream(version, 1, &block[..block.len() - cut]));
            assert_ended_by_block(&mut peer, version, |e| {
                matches!(e, HeaderBlockError::Decompress(_))
            });
        }
    }
}

/// A block that inflates cleanly but ends in the middle of a name/value
/// pair, or has bytes after the last pair, does not match its own counts:
/// the session ends rather than go on with a compression stream that may be
/// out of step.
#[test]
fn a_header_block_whose_counts_do_not_match_ends_the_session() {
    for version in Version::ALL {
        let field = |n: usize| -> Vec<u8> {
            if version == Version::V2 {
                u16::try_from(n).unwrap().to_be_bytes().to_vec()
            } else {
                u32::try_from(n).unwrap().to_be_bytes().to_vec()
            }
        };
        // Two pairs announced; the second name says 100 bytes, has 3.
        let mut truncated = field(2);
        for part in [&b"x-one"[..], b"abc"] {
            truncated.extend(field(part.len()));
            truncated.extend_from_slice(part);
        }
        truncated.extend(field(100));
        truncated.extend_from_slice(b"x-t");
        // One pair announced, followed by stray bytes.
        let mut trailing = field(1);
        for part in [&b"x-one"[..], b"abc"] {
            trailing.extend(field(part.len()));
            trailing.extend_from_slice(part);
        }
        trailing.extend_from_slice(b"zz");
        let cases: [(&[u8], BlockCheck); 2] = [
            (&truncated, |e| matches!(e, HeaderBlockError::Truncated)),
            (&trailing, |e| {
                matches!(e, HeaderBlockError::TrailingBytes(2))
            }),
        ];
        for (plain, expected) in cases {
            let mut peer = Peer::new(Role::Server, version, Config::default());
            let block = deflate_first_block(version, plain);
            peer.send_raw(&raw_syn_stream(version, 1, &block));
            assert_ended_by_block(&mut peer, version, expected);
        }
    }
}

// ===== 7. memory of an idle session =====

/// Heap bytes `value` holds: what dropping it frees (the counting
/// allocator of `allocation-counter` counts per thread).
fn held_by<T>(value: T) -> i64 {
    -allocation_counter::measure(|| drop(value)).bytes_current
}

/// A client and a server session that exchanged their SETTINGS (and, in
/// SPDY/3.1, session WINDOW_UPDATEs) and one PING, through the shared
/// test harness.
fn idle_pair(version: Version) -> Pair {
    let mut pair = Pair::new(version);
    pair.run();
    pair.client.ping(pair.now).unwrap();
    pair.run();
    let events = pair.take_client_events();
    assert!(
        events.iter().any(|e| matches!(e, Event::Pong { .. })),
        "{version}: {events:?}"
    );
    pair.take_server_events();
    pair
}

/// What a session that has exchanged only SETTINGS and PING holds: no
/// zlib state (each direction's is built at its first header block; the
/// two cost about 200 KiB together), so an idle connection stays small.
/// Bound: 8 KiB per session, the session's share of the 16 KiB an idle
/// connection may cost.
#[test]
fn an_idle_session_holds_under_8_kib() {
    const BOUND: i64 = 8 * 1024;
    for version in Version::ALL {
        let pair = idle_pair(version);
        let client = held_by(pair.client);
        let server = held_by(pair.server);
        println!("{version}: idle client session {client} bytes, server session {server} bytes");
        assert!(client <= BOUND, "{version}: client holds {client} bytes");
        assert!(server <= BOUND, "{version}: server holds {server} bytes");
    }
}

/// What the first header block in each direction adds, the zlib states
/// being built then: a deflate stream (about 246 KiB with zlib-rs, almost
/// all of it its fixed hash table and symbol buffer, whatever the window)
/// for the first block sent, an inflate stream (about 46 KiB, its 32 KiB
/// window included) for the first received. Bounds: 64 KiB for a session
/// that has only received headers, 320 KiB once both directions carried
/// one.
#[test]
fn memory_after_the_first_header_blocks() {
    let fin = OpenOptions {
        fin: true,
        ..OpenOptions::default()
    };
    for version in Version::ALL {
        // The request only: the client deflated, the server inflated.
        let mut pair = idle_pair(version);
        pair.client.open_stream(request(version, "/"), fin).unwrap();
        pair.run();
        let client_sent = held_by(pair.client);
        let server_received = held_by(pair.server);

        // And the reply: each side has both streams.
        let mut pair = idle_pair(version);
        let id = pair.client.open_stream(request(version, "/"), fin).unwrap();
        pair.run();
        pair.server
            .reply(id, response(version, "200 OK"), true)
            .unwrap();
        pair.run();
        let client_both = held_by(pair.client);
        let server_both = held_by(pair.server);
        println!(
            "{version}: after the request: client {client_sent} bytes, server {server_received} \
             bytes; after the reply too: client {client_both} bytes, server {server_both} bytes"
        );
        assert!(server_received <= 64 * 1024, "{version}: {server_received}");
        for held in [client_sent, client_both, server_both] {
            assert!(held <= 320 * 1024, "{version}: {held}");
        }
    }
}
