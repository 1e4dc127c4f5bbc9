//! Arbitrary bytes from a "peer" into a session of either role and any
//! version (or one detecting the version), with an application that accepts,
//! replies, reads and writes. The session must never panic, and everything it
//! sends must decode as valid frames of its version.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use spdy_proto::frame::{Frame, Version};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Config, Event, OpenOptions, Recv, Role, Session};
use spdy_proto::{DecodeLimits, FrameDecoder};

/// One fuzz input; panics when the contract is broken.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let role = if mode & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let version = match (mode >> 1) % 4 {
        0 => Some(Version::V2),
        1 => Some(Version::V3),
        2 => Some(Version::V3_1),
        _ => None,
    };
    let config = Config::default()
        .with_max_concurrent_streams(8)
        .with_max_pending_control(64)
        .with_keepalive(Duration::from_secs(5), Duration::from_secs(5));
    let mut session = match (version, role) {
        (Some(v), r) => Session::new(r, v, config),
        (None, _) => Session::detecting(config),
    };
    let mut now = Instant::now();
    let mut out_decoder: Option<FrameDecoder> = None;
    let mut out = BytesMut::new();
    if role == Role::Client {
        let headers: HeaderBlock = [(":path", "/"), ("url", "/")].into_iter().collect();
        let _ = session.open_stream(headers, OpenOptions::default());
    }
    let chunk = 1 + usize::from(mode >> 4) * 7;
    for piece in rest.chunks(chunk) {
        let mut buf = BytesMut::from(piece);
        session.handle_input(now, &mut buf);
        now += Duration::from_millis(u64::from(piece[0] % 16) * 100);
        session.handle_timeout(now);
        while let Some(event) = session.poll_event() {
            match event {
                Event::StreamOpened {
                    id, unidirectional, ..
                } if !unidirectional => {
                    let _ = session.reply(id, HeaderBlock::new(), false);
                    let _ = session.send_data(id, Bytes::from_static(b"hello"), false);
                }
                Event::Readable { id } => {
                    while let Ok(Recv::Data(d)) = session.recv(id, 4096) {
                        let _ = session.release_capacity(id, d.len());
                    }
                }
                _ => {}
            }
        }
        while let Some(mut t) = session.poll_transmit(now) {
            let n = t.remaining();
            out.extend_from_slice(&t.copy_to_bytes(n));
        }
        if let (None, Some(v)) = (&out_decoder, session.version()) {
            let limits = DecodeLimits::default().with_max_control_frame_len(u32::MAX);
            // Detected 3 may become 3.1 later; the wire is the same.
            out_decoder = Some(FrameDecoder::new(v, limits));
        }
        if let Some(decoder) = out_decoder.as_mut() {
            loop {
                match decoder.decode(&mut out) {
                    Ok(Some(Frame::Unknown(f))) => panic!("session sent an unknown frame {f:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => panic!("session sent a malformed frame: {e}"),
                }
            }
        }
    }
}
