//! Connection-level defences of the sans-IO session (issue 11), each against
//! a scripted peer: what a slow reader can make us buffer, which resets
//! count as abuse, floods of frames for streams we reset, large SETTINGS,
//! DATA as the first frame, broken header blocks, and the memory an idle
//! session holds.

mod support;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use spdy_proto::frame::{Frame, StreamId, SynReply, SynStream, Version, WindowUpdate};
use spdy_proto::session::{Config, Event, Role};
use support::{request, response, sid, Peer};

/// Our default stream window, the peer's session window before it raises
/// it, and our largest DATA frame (the send slack).
const WINDOW: usize = 64 * 1024;
const SLACK: usize = 16 * 1024;

fn syn(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        fin,
        ..SynStream::new(sid(id), request(version, "/"))
    })
}

#[allow(dead_code)]
fn reply(version: Version, id: u32) -> Frame {
    Frame::SynReply(SynReply::new(sid(id), response(version, "200 OK")))
}

fn window_update(id: u32, delta: u32) -> Frame {
    Frame::WindowUpdate(WindowUpdate::new(StreamId::from_wire(id), delta))
}

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
