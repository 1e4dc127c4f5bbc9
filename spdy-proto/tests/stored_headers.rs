//! Header blocks sent without compression (`CompressConfig { level: 0 }`):
//! the compressor writes the zlib stream by hand as stored deflate blocks
//! and keeps no zlib state. These tests check that the blocks are read by
//! our decoder, by flate2's inflater driven directly and by node-spdy's
//! parser; that such a compressor holds next to nothing; and that sessions
//! using it carry streams end to end.
//!
//! The node test needs Node.js and `npm ci --prefix interop`, like
//! `interop_node.rs`; without them it fails with a message saying so.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushDecompress};
use serde_json::{json, Value};
use spdy_proto::frame::{Frame, Headers, StreamId, SynReply, SynStream, Version};
use spdy_proto::header_block::{dictionary, CompressConfig, HeaderBlock, HeaderCompressor};
use spdy_proto::session::{Config, Event, OpenOptions, Recv, Session};
use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};
use support::{block, request, response, sid, Pair};

const STORE: CompressConfig = CompressConfig {
    level: 0,
    window_bits: 11,
};

/// The uncompressed form of `block` (SPDY/2: 16-bit lengths, SPDY/3: 32),
/// written here independently of the crate.
fn plain(block: &HeaderBlock, version: Version) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, version: Version, n: usize) {
        if version == Version::V2 {
            out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        } else {
            out.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
        }
    }
    let mut out = Vec::new();
    put(&mut out, version, block.len());
    for (name, value) in block.iter() {
        for field in [name, value] {
            put(&mut out, version, field.len());
            out.extend_from_slice(field);
        }
    }
    out
}

/// Printable bytes that do not repeat in any useful way.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// Header blocks of every shape: ordinary requests and responses, an empty
/// block, and one whose plain form exceeds a stored block's 65535 bytes
/// (two values, since SPDY/2 caps each at 65535).
fn blocks(version: Version) -> Vec<HeaderBlock> {
    let mut out = Vec::new();
    for i in 0..30 {
        match i % 5 {
            0 | 3 => out.push(request(version, &format!("/item/{i}"))),
            1 => {
                let mut b = response(version, "200 OK");
                b.push("content-type", "text/plain");
                b.push("set-cookie", format!("a={i}\0b=2"));
                out.push(b);
            }
            2 => out.push(HeaderBlock::new()),
            _ => {
                let mut b = HeaderBlock::new();
                b.push("x-big-a", noise(40_000, i));
                b.push("x-big-b", noise(40_000, i + 1));
                out.push(b);
            }
        }
    }
    out
}

fn frames(version: Version) -> Vec<Frame> {
    blocks(version)
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let id = sid(2 * i as u32 + 1);
            match i % 3 {
                0 => Frame::SynStream(SynStream::new(id, b)),
                1 => Frame::SynReply(SynReply::new(id, b)),
                _ => Frame::Headers(Headers::new(id, b)),
            }
        })
        .collect()
}

fn big_limits() -> DecodeLimits {
    DecodeLimits::default()
        .with_max_control_frame_len(u32::MAX)
        .with_max_header_block_len(1 << 20)
}

#[test]
fn our_decoder_reads_stored_blocks() {
    for version in Version::ALL {
        let frames = frames(version);
        let mut encoder = FrameEncoder::with_compression(version, STORE);
        let mut wire = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            let start = wire.len();
            encoder.encode(frame, &mut wire).unwrap();
            let ours = &wire[start..];
            let (Frame::SynStream(SynStream { headers, .. })
            | Frame::SynReply(SynReply { headers, .. })
            | Frame::Headers(Headers { headers, .. })) = frame
            else {
                unreachable!()
            };
            let plain = plain(headers, version);
            // Stored, not compressed: the plain block is on the wire as is
            // (whole when it fits one stored block).
            assert!(ours.len() > plain.len(), "{version} frame #{i}");
            if plain.len() <= 0xffff {
                assert!(
                    ours.windows(plain.len()).any(|w| w == plain),
                    "{version} frame #{i}: plain block not found"
                );
            }
            assert!(ours.ends_with(&[0, 0, 0, 0xff, 0xff]), "{version} #{i}");
        }
        // One stream through one decoder: the blocks share one zlib context.
        let mut decoder = FrameDecoder::new(version, big_limits());
        for (i, frame) in frames.iter().enumerate() {
            let got = decoder
                .decode(&mut wire)
                .unwrap_or_else(|e| panic!("{version} frame #{i}: {e}"))
                .unwrap_or_else(|| panic!("{version} frame #{i}: incomplete"));
            assert_eq!(&got, frame, "{version} frame #{i}");
        }
        assert!(wire.is_empty(), "{version}: {} bytes left", wire.len());
    }
}

/// flate2's inflater, driven directly: it asks for the dictionary whose
/// Adler-32 the stream names, which must be the version's, and inflates
/// each block, up to its SYNC_FLUSH, to the block's plain form.
#[test]
fn flate2_inflates_stored_blocks() {
    for version in Version::ALL {
        for window_bits in [9, 11, 15] {
            let config = CompressConfig {
                level: 0,
                window_bits,
            };
            let mut tx = HeaderCompressor::new(version, config);
            let mut inflate = Decompress::new(true);
            let dict = dictionary::for_version(version);
            let dict_id = Compress::new(Compression::default(), true)
                .set_dictionary(dict)
                .unwrap();
            let mut asked = 0;
            for (i, block) in blocks(version).iter().enumerate() {
                let mut wire = BytesMut::new();
                tx.compress(block, usize::MAX, &mut wire).unwrap();
                let expected = plain(block, version);
                let mut out = Vec::with_capacity(expected.len() + 1);
                let mut at = 0;
                while at < wire.len() {
                    let before = inflate.total_in();
                    match inflate.decompress_vec(&wire[at..], &mut out, FlushDecompress::Sync) {
                        Ok(_) => {}
                        Err(e) => {
                            let wanted = e.needs_dictionary().unwrap_or_else(|| {
                                panic!("{version} w{window_bits} block #{i}: {e}")
                            });
                            assert_eq!(wanted, dict_id, "{version}: DICTID");
                            inflate.set_dictionary(dict).unwrap();
                            asked += 1;
                        }
                    }
                    let took = (inflate.total_in() - before) as usize;
                    assert!(
                        took > 0 || out.len() < out.capacity(),
                        "{version} w{window_bits} block #{i}: inflate stalled"
                    );
                    at += took;
                }
                assert_eq!(out, expected, "{version} w{window_bits} block #{i}");
            }
            assert_eq!(asked, 1, "{version}: dictionary asked for once");
        }
    }
}

// ===== node-spdy =====

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Runs `node interop/decode.js <version>` on `wire`, returning its JSON.
fn node_decode(version: Version, wire: &[u8]) -> Value {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/spdy/package.json").exists(),
        "node-spdy is not installed: run `npm ci --prefix interop` (see README.md)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("decode.js"))
        .arg(version.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run `node`: Node.js 18+ is needed for the interop tests");
    let hex: String = wire.iter().map(|b| format!("{b:02x}")).collect();
    {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(json!({ "hex": hex }).to_string().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "decode.js {version}: bad JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "decode.js {version} failed: {value}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    value
}

/// Sorted [name, value] pairs, the form decode.js reports.
fn headers_json(block: &HeaderBlock) -> Value {
    let mut pairs: Vec<(String, String)> = block
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(n, v)| json!([n, v])).collect()
}

/// node-spdy reads a whole session's worth of stored blocks through its
/// zlib inflater (real zlib, not ours). Its parser makes each SYN_STREAM
/// a request, so these carry requests and the rest SYN_REPLY and HEADERS.
#[test]
fn node_spdy_reads_stored_blocks() {
    for version in Version::ALL {
        let mut frames = Vec::new();
        for i in 0..12u32 {
            let id = sid(2 * i + 1);
            let mut req = request(version, &format!("/item/{i}"));
            req.push("x-noise", noise(3000 * i as usize + 1, i));
            frames.push(Frame::SynStream(SynStream::new(id, req)));
            let mut resp = response(version, "200 OK");
            resp.push("content-type", "text/plain");
            frames.push(Frame::SynReply(SynReply::new(id, resp)));
            frames.push(Frame::Headers(Headers::new(
                id,
                block(&[("x-trailer", "yes")]),
            )));
        }
        let mut encoder = FrameEncoder::with_compression(version, STORE);
        let mut wire = BytesMut::new();
        for frame in &frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        let doc = node_decode(version, &wire);
        let decoded = doc["frames"].as_array().unwrap();
        assert_eq!(decoded.len(), frames.len(), "{version}: {doc}");
        for (i, (ours, theirs)) in frames.iter().zip(decoded).enumerate() {
            let (kind, id, headers) = match ours {
                Frame::SynStream(f) => ("SYN_STREAM", f.stream_id, &f.headers),
                Frame::SynReply(f) => ("SYN_REPLY", f.stream_id, &f.headers),
                Frame::Headers(f) => ("HEADERS", f.stream_id, &f.headers),
                _ => unreachable!(),
            };
            assert_eq!(theirs["type"], kind, "{version} frame #{i}");
            assert_eq!(theirs["stream_id"], id.value(), "{version} frame #{i}");
            assert_eq!(
                theirs["headers"],
                headers_json(headers),
                "{version} frame #{i}"
            );
        }
    }
}

// ===== memory =====

/// Heap bytes `value` holds: what dropping it frees (the counting
/// allocator of `allocation-counter` counts per thread).
fn held_by<T>(value: T) -> i64 {
    -allocation_counter::measure(|| drop(value)).bytes_current
}

/// A compressor after its first block, and after a whole sequence with
/// blocks over 64 KiB: at level 0 it holds no heap at all (bound 1 KiB); at
/// level 6 its deflate stream is some 250 KiB, which shows the measurement
/// sees zlib's state.
#[test]
fn a_storing_compressor_holds_almost_nothing() {
    for version in Version::ALL {
        let blocks = blocks(version);
        let mut held = Vec::new();
        for (level, count) in [(0, 1), (6, 1), (0, blocks.len())] {
            let config = CompressConfig {
                level,
                window_bits: 11,
            };
            let mut tx = HeaderCompressor::new(version, config);
            for block in &blocks[..count] {
                let mut wire = BytesMut::new();
                tx.compress(block, usize::MAX, &mut wire).unwrap();
            }
            held.push(held_by(tx));
        }
        println!(
            "{version}: compressor after its first block: level 0 {} bytes, level 6 {} bytes; \
             level 0 after {} blocks: {} bytes",
            held[0],
            held[1],
            blocks.len(),
            held[2]
        );
        assert!(held[0] <= 1024, "{version}: level 0 holds {}", held[0]);
        assert!(held[2] <= 1024, "{version}: level 0 holds {}", held[2]);
        assert!(
            held[1] >= 100 * 1024,
            "{version}: level 6 holds {}",
            held[1]
        );
    }
}

/// A whole session after sending its first header block (a client's
/// request; the server has read it and not answered): with level 0 it
/// stays near an idle session's size, with level 6 the deflate stream
/// dominates. Bound for level 0: 8 KiB, what session_defences.rs allows an
/// idle session.
#[test]
fn a_session_sending_stored_blocks_stays_small() {
    let fin = OpenOptions {
        fin: true,
        ..OpenOptions::default()
    };
    for version in Version::ALL {
        let mut held = Vec::new();
        for level in [0, 6] {
            let config = Config::default().with_compression(CompressConfig {
                level,
                window_bits: 11,
            });
            let mut pair = Pair::with_configs(version, config, Config::default());
            pair.run();
            pair.client.open_stream(request(version, "/"), fin).unwrap();
            pair.run();
            assert!(
                pair.take_server_events()
                    .iter()
                    .any(|e| matches!(e, Event::StreamOpened { .. })),
                "{version} level {level}"
            );
            held.push(held_by(pair.client));
        }
        println!(
            "{version}: client session after its first request: level 0 {} bytes, level 6 {} bytes",
            held[0], held[1]
        );
        assert!(held[0] <= 8 * 1024, "{version}: level 0 holds {}", held[0]);
        assert!(
            held[1] - held[0] >= 100 * 1024,
            "{version}: level 6 {} vs level 0 {}",
            held[1],
            held[0]
        );
    }
}

// ===== sessions end to end =====

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

/// A server storing its headers (as nginx does by default) and a client
/// compressing, then both storing: requests, replies, bodies and trailers
/// of many streams arrive intact both ways.
#[test]
fn sessions_with_stored_headers_carry_streams() {
    let store = Config::default().with_compression(STORE);
    for version in Version::ALL {
        for (client, server) in [
            (Config::default(), store.clone()),
            (store.clone(), store.clone()),
        ] {
            let mut pair = Pair::with_configs(version, client, server);
            let mut ids = Vec::new();
            for i in 0..20 {
                let mut req = request(version, &format!("/item/{i}"));
                req.push("x-request", format!("r{i}"));
                let id = pair
                    .client
                    .open_stream(req, OpenOptions::default())
                    .unwrap();
                pair.client
                    .send_data(id, Bytes::from(format!("body {i}")), true)
                    .unwrap();
                ids.push(id);
            }
            pair.run();
            let events = pair.take_server_events();
            for (i, &id) in ids.iter().enumerate() {
                assert!(
                    events.iter().any(|e| matches!(e,
                        Event::StreamOpened { id: got, headers, .. }
                            if *got == id
                                && headers.get("x-request").map(|v| &v[..])
                                    == Some(format!("r{i}").as_bytes()))),
                    "{version}: stream {id:?} not opened: {events:?}"
                );
                let (body, end) = drain(&mut pair.server, id);
                assert_eq!(body, format!("body {i}").as_bytes(), "{version}");
                assert!(end, "{version}");
                let mut resp = response(version, "200 OK");
                resp.push("x-response", format!("s{i}"));
                pair.server.reply(id, resp, false).unwrap();
                pair.server
                    .send_data(id, Bytes::from(format!("answer {i}")), false)
                    .unwrap();
                pair.server
                    .send_headers(id, block(&[("x-trailer", "done")]), true)
                    .unwrap();
            }
            pair.run();
            let events = pair.take_client_events();
            for (i, &id) in ids.iter().enumerate() {
                assert!(
                    events.iter().any(|e| matches!(e,
                        Event::Reply { id: got, headers, .. }
                            if *got == id
                                && headers.get("x-response").map(|v| &v[..])
                                    == Some(format!("s{i}").as_bytes()))),
                    "{version}: no reply on {id:?}: {events:?}"
                );
                assert!(
                    events.iter().any(|e| matches!(e,
                        Event::Headers { id: got, headers, .. }
                            if *got == id && headers.get("x-trailer").is_some())),
                    "{version}: no trailers on {id:?}: {events:?}"
                );
                let (body, end) = drain(&mut pair.client, id);
                assert_eq!(body, format!("answer {i}").as_bytes(), "{version}");
                assert!(end, "{version}");
            }
            pair.run();
            assert_eq!(pair.client.active_streams(), (0, 0), "{version}");
            assert_eq!(pair.server.active_streams(), (0, 0), "{version}");
            assert!(!pair.client.is_closed() && !pair.server.is_closed());
        }
    }
}
