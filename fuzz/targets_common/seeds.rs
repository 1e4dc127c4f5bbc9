//! Seed inputs for the fuzz targets, built with our own encoder and sessions
//! so that every header block is real zlib in the right context. Without
//! them libFuzzer spends its time guessing a zlib header and a dictionary
//! checksum, and never reaches the header-block parser or the session.
//!
//! Each seed is laid out the way its target reads input (see the leading
//! byte of each target). `spdy-proto/tests/fuzz_corpus.rs` writes them to
//! `fuzz/corpus/<target>/` (ignored test `regenerate_seeds`) and replays them
//! with the committed corpus.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use spdy_proto::frame::head::{ControlType, Head, HEAD_LEN};
use spdy_proto::frame::{
    Credential, Data, GoAway, GoAwayStatus, Headers, Noop, Ping, RstStatus, RstStream, Setting,
    SettingId, Settings, SynReply, SynStream, Unknown, WindowUpdate,
};
use spdy_proto::header_block::{CompressConfig, HeaderBlock};
use spdy_proto::session::{Config, Event, OpenOptions, Recv, Role, Session};
use spdy_proto::{Frame, FrameEncoder, StreamId, Version};

/// One seed: the target it is for, a file name, and the input.
pub struct Seed {
    /// `decode_frames`, `roundtrip_headers` or `session_input`.
    pub target: &'static str,
    /// File name under `fuzz/corpus/<target>/`.
    pub name: String,
    /// The input, leading selector byte included.
    pub input: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = decode_frames();
    seeds.extend(roundtrip_headers());
    seeds.extend(session_input());
    seeds
}

fn tag(v: Version) -> &'static str {
    match v {
        Version::V2 => "v2",
        Version::V3 => "v3",
        Version::V3_1 => "v31",
    }
}

fn sid(n: u32) -> StreamId {
    StreamId::from_wire(n)
}

/// A request block as a browser would send it in `v`.
fn request(v: Version, path: &str) -> HeaderBlock {
    let mut h = HeaderBlock::new();
    if v == Version::V2 {
        h.push("method", "GET");
        h.push("url", path.to_owned());
        h.push("version", "HTTP/1.1");
        h.push("host", "example.com");
        h.push("scheme", "https");
    } else {
        h.push(":method", "GET");
        h.push(":path", path.to_owned());
        h.push(":version", "HTTP/1.1");
        h.push(":host", "example.com");
        h.push(":scheme", "https");
    }
    h.push("user-agent", "spdy-rs-seed/1");
    h.push("accept-encoding", "gzip, deflate");
    // Two values in one, NUL-separated, as the specs allow.
    h.push("cookie", &b"a=1\0b=2"[..]);
    h
}

fn response(v: Version, status: &str) -> HeaderBlock {
    let mut h = HeaderBlock::new();
    if v == Version::V2 {
        h.push("status", status.to_owned());
        h.push("version", "HTTP/1.1");
    } else {
        h.push(":status", status.to_owned());
        h.push(":version", "HTTP/1.1");
    }
    h.push("content-type", "text/plain");
    h.push("content-length", "5");
    h
}

fn pushed(v: Version, path: &str) -> HeaderBlock {
    let mut h = HeaderBlock::new();
    if v == Version::V2 {
        h.push("url", format!("https://example.com{path}"));
    } else {
        h.push(":scheme", "https");
        h.push(":host", "example.com");
        h.push(":path", path.to_owned());
    }
    h
}

fn trailers() -> HeaderBlock {
    [("grpc-status", "0"), ("x-checksum", "abc")]
        .into_iter()
        .collect()
}

/// One frame of every type `v` defines, plus an unknown type, in an order
/// a peer might send them.
fn every_frame(v: Version) -> Vec<Frame> {
    let low = SynStream::lowest_priority(v);
    let mut frames = vec![
        Frame::Settings(Settings {
            clear_persisted: false,
            entries: vec![
                Setting::new(SettingId::MaxConcurrentStreams, 100),
                Setting::new(SettingId::InitialWindowSize, 65_536),
                Setting {
                    id: SettingId::RoundTripTime,
                    value: 40,
                    persist_value: true,
                    persisted: false,
                },
                Setting {
                    id: SettingId::DownloadBandwidth,
                    value: 1000,
                    persist_value: false,
                    persisted: true,
                },
            ],
        }),
        Frame::SynStream(SynStream {
            fin: true,
            ..SynStream::new(sid(1), request(v, "/"))
        }),
        Frame::SynStream(SynStream {
            priority: low,
            slot: if v == Version::V2 { 0 } else { 3 },
            ..SynStream::new(sid(3), request(v, "/upload"))
        }),
        Frame::Data(Data::new(sid(3), &b"request body"[..], false)),
        Frame::Data(Data::new(sid(3), Bytes::new(), true)),
        Frame::SynReply(SynReply::new(sid(1), response(v, "200 OK"))),
        Frame::SynStream(SynStream {
            associated_to: sid(1),
            unidirectional: true,
            ..SynStream::new(sid(2), pushed(v, "/style.css"))
        }),
        Frame::Data(Data::new(sid(1), &b"hello"[..], false)),
        Frame::Headers(Headers {
            fin: true,
            ..Headers::new(sid(1), trailers())
        }),
        Frame::Data(Data::new(sid(2), vec![b'x'; 300], true)),
        Frame::RstStream(RstStream::new(sid(3), RstStatus::Cancel)),
        Frame::Ping(Ping::new(1)),
        Frame::Ping(Ping::new(2)),
    ];
    match v {
        Version::V2 => frames.push(Frame::Noop(Noop)),
        Version::V3 => {
            frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(1), 65_536)));
            frames.push(Frame::Credential(Credential {
                slot: 1,
                proof: Bytes::from_static(b"proof"),
                certificates: vec![Bytes::from_static(b"cert-1"), Bytes::from_static(b"c2")],
            }));
        }
        Version::V3_1 => {
            frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(1), 65_536)));
            frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(0), 1 << 20)));
        }
    }
    frames.push(Frame::Unknown(Unknown {
        version: v.wire_number(),
        kind: ControlType::Unknown(0xf0),
        flags: 0,
        length: 4,
    }));
    frames.push(Frame::GoAway(GoAway::new(
        sid(3),
        if v == Version::V2 {
            GoAwayStatus::Ok
        } else {
            GoAwayStatus::ProtocolError
        },
    )));
    frames
}

/// A short name for a frame, for file names.
fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Data(_) => "data",
        Frame::SynStream(_) => "syn_stream",
        Frame::SynReply(_) => "syn_reply",
        Frame::RstStream(_) => "rst_stream",
        Frame::Settings(_) => "settings",
        Frame::Noop(_) => "noop",
        Frame::Ping(_) => "ping",
        Frame::GoAway(_) => "goaway",
        Frame::Headers(_) => "headers",
        Frame::WindowUpdate(_) => "window_update",
        Frame::Credential(_) => "credential",
        Frame::Unknown(_) => "unknown",
    }
}

/// Encodes `frames` through one encoder (one zlib context), as one peer
/// would send them.
fn encode(v: Version, frames: &[Frame]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(v);
    let mut wire = BytesMut::new();
    for frame in frames {
        if let Err(e) = encoder.encode(frame, &mut wire) {
            panic!("seed frame {frame:?} does not encode in {v:?}: {e}");
        }
    }
    wire.to_vec()
}

/// A SYN_STREAM whose payload is exactly `len` bytes: its block is stored
/// (zlib level 0), so each byte more of a header value is a byte more on
/// the wire.
fn syn_stream_of_len(v: Version, len: usize) -> Vec<u8> {
    let config = CompressConfig {
        level: 0,
        ..CompressConfig::default()
    };
    for value_len in (len.saturating_sub(1000)..len).rev() {
        let mut block = request(v, "/");
        block.push("x-pad", vec![b'p'; value_len]);
        let frame = Frame::SynStream(SynStream::new(sid(1), block));
        let mut wire = BytesMut::new();
        let mut encoder = FrameEncoder::with_compression(v, config);
        if encoder.encode(&frame, &mut wire).is_ok() && wire.len() == HEAD_LEN + len {
            return wire.to_vec();
        }
    }
    panic!("no SYN_STREAM of exactly {len} bytes in {v:?}");
}

/// A raw control frame header followed by `payload`.
fn raw_control(version: u16, kind: ControlType, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Head::Control {
        version,
        kind,
        flags,
        length: payload.len() as u32,
    }
    .encode(&mut out);
    out.put_slice(payload);
    out.to_vec()
}

fn with_selector(selector: u8, wire: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(wire.len() + 1);
    input.push(selector);
    input.extend_from_slice(wire);
    input
}

/// `decode_frames` reads byte 0 as: version in bits 0-1, chunking pattern
/// in bits 2-4, DATA piece length (1, 7, 512, 16 KiB) in bits 5-6.
fn decode_selector(v: Version, pattern: u8, piece: u8) -> u8 {
    let version = match v {
        Version::V2 => 0,
        Version::V3 => 1,
        Version::V3_1 => 2,
    };
    version | (pattern & 0b111) << 2 | (piece & 0b11) << 5
}

fn decode_frames() -> Vec<Seed> {
    const MAX_CONTROL: usize = 16 * 1024; // the target's limits
    let mut seeds = Vec::new();
    let mut add = |name: String, input: Vec<u8>| {
        seeds.push(Seed {
            target: "decode_frames",
            name,
            input,
        })
    };
    add("empty".into(), Vec::new());
    for v in Version::ALL {
        let t = tag(v);
        let wn = v.wire_number();
        let all = every_frame(v);
        // Each frame type alone (a fresh zlib context for the blocks).
        for (i, frame) in all.iter().enumerate() {
            let wire = encode(v, std::slice::from_ref(frame));
            add(
                format!("{t}-{i:02}-{}", kind(frame)),
                with_selector(decode_selector(v, 0, 2), &wire),
            );
        }
        // All of them through one context, under several chunkings.
        let wire = encode(v, &all);
        for (pattern, piece) in [(0, 2), (1, 0), (3, 1), (5, 2), (6, 3)] {
            add(
                format!("{t}-all-p{pattern}-d{piece}"),
                with_selector(decode_selector(v, pattern, piece), &wire),
            );
        }
        // Truncated in the middle of a compressed block, and in a header.
        let syn = encode(v, &all[1..2]);
        add(
            format!("{t}-cut-block"),
            with_selector(decode_selector(v, 0, 2), &syn[..syn.len() - 5]),
        );
        add(
            format!("{t}-cut-head"),
            with_selector(decode_selector(v, 1, 2), &wire[..wire.len() - 3]),
        );
        // Many header blocks through one context: a long browsing session.
        let mut exchange = Vec::new();
        for n in 0..24u32 {
            let id = 2 * n + 1;
            exchange.push(Frame::SynStream(SynStream {
                fin: true,
                ..SynStream::new(sid(id), request(v, &format!("/page/{n}")))
            }));
            exchange.push(Frame::SynReply(SynReply::new(
                sid(id),
                response(v, "200 OK"),
            )));
            exchange.push(Frame::Data(Data::new(sid(id), &b"hello"[..], true)));
        }
        add(
            format!("{t}-exchange"),
            with_selector(decode_selector(v, 5, 2), &encode(v, &exchange)),
        );
        // Zero-length frames: DATA, SETTINGS with no entries, and control
        // frames whose fixed part is missing.
        let mut zero = encode(
            v,
            &[
                Frame::Data(Data::new(sid(1), Bytes::new(), false)),
                Frame::Settings(Settings::new(Vec::new())),
            ],
        );
        zero.extend(raw_control(wn, ControlType::Ping, 0, &[]));
        add(
            format!("{t}-zero-length"),
            with_selector(decode_selector(v, 0, 2), &zero),
        );
        for kind in [
            ControlType::SynStream,
            ControlType::SynReply,
            ControlType::RstStream,
            ControlType::GoAway,
            ControlType::Headers,
            ControlType::WindowUpdate,
        ] {
            add(
                format!("{t}-short-{}", kind.to_u16()),
                with_selector(
                    decode_selector(v, 0, 2),
                    &raw_control(wn, kind, 0, &[0, 0, 0, 1]),
                ),
            );
        }
        // A SYN_STREAM of exactly the target's largest control frame, and
        // one a byte over it (refused from its header, so the seed keeps
        // only the start). Unknown types are skipped whatever their length,
        // so the length check needs a known type.
        for (name, length) in [("max", MAX_CONTROL), ("over", MAX_CONTROL + 1)] {
            let mut wire = syn_stream_of_len(v, length);
            wire.truncate(if name == "over" { 64 } else { wire.len() });
            add(
                format!("{t}-control-{name}"),
                with_selector(decode_selector(v, 7, 2), &wire),
            );
        }
        // DATA frames: the largest length field, cut short; and one bigger
        // than a piece, delivered in pieces.
        let mut huge = BytesMut::new();
        Head::Data {
            stream_id: sid(1),
            flags: 0,
            length: 0x00ff_ffff,
        }
        .encode(&mut huge);
        huge.put_bytes(b'd', 600);
        add(
            format!("{t}-data-max-cut"),
            with_selector(decode_selector(v, 4, 2), &huge),
        );
        let big = encode(v, &[Frame::Data(Data::new(sid(1), vec![7u8; 1500], true))]);
        add(
            format!("{t}-data-pieces"),
            with_selector(decode_selector(v, 7, 2), &big),
        );
        // Header blocks near the decompressed limit (16 KiB): one under, one
        // over (a stream error), one over four times the limit (a
        // decompression bomb, a session error). Repeated bytes compress to
        // almost nothing. (SPDY/2 values stop at 64 KiB: two of them.)
        for (name, len, count) in [
            ("under", 15_000, 1),
            ("over", 20_000, 1),
            ("bomb", 0xffff, 2),
        ] {
            let mut block = request(v, "/");
            for i in 0..count {
                block.push(format!("x-fill-{i}"), vec![b'a'; len]);
            }
            let frame = Frame::SynStream(SynStream::new(sid(5), block));
            add(
                format!("{t}-block-{name}"),
                with_selector(decode_selector(v, 0, 2), &encode(v, &[frame])),
            );
        }
        // A header block that is not zlib at all, then a valid PING.
        let mut junk = raw_control(
            wn,
            ControlType::SynStream,
            0,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78, 0xbb, 1, 2, 3, 4],
        );
        junk.extend(encode(v, &[Frame::Ping(Ping::new(1))]));
        add(
            format!("{t}-bad-zlib"),
            with_selector(decode_selector(v, 0, 2), &junk),
        );
        // A control frame of another version.
        let other = if v == Version::V2 { 3 } else { 2 };
        add(
            format!("{t}-wrong-version"),
            with_selector(
                decode_selector(v, 0, 2),
                &raw_control(other, ControlType::Ping, 0, &[0, 0, 0, 1]),
            ),
        );
    }
    seeds
}

/// Writes inputs in `roundtrip_headers`' format.
struct HeadersInput(Vec<u8>);

impl HeadersInput {
    fn new(v: Version, sanitize: bool) -> HeadersInput {
        let version = match v {
            Version::V2 => 0,
            Version::V3 => 1,
            Version::V3_1 => 2,
        };
        HeadersInput(vec![version | if sanitize { 0b100 } else { 0 }])
    }

    fn block(&mut self, block: &[(&[u8], &[u8])]) {
        self.0.push(block.len() as u8);
        for (name, value) in block {
            assert!(name.len() < 64, "name too long for the format");
            self.0.push(name.len() as u8);
            self.0.extend_from_slice(name);
            assert!(value.len() < 0xff, "use run() for long values");
            self.0.push(value.len() as u8);
            self.0.extend_from_slice(value);
        }
    }

    /// A SYN_STREAM: flags bit 0 clear; bit 1 FIN, bit 2 unidirectional.
    #[allow(clippy::too_many_arguments)]
    fn syn(
        &mut self,
        flags: u8,
        id: u32,
        assoc: u32,
        priority: u8,
        slot: u8,
        block: &[(&[u8], &[u8])],
        split: u16,
    ) {
        self.0.push(flags & !1);
        self.0.extend_from_slice(&id.to_be_bytes());
        self.0.extend_from_slice(&assoc.to_be_bytes());
        self.0.push(priority);
        self.0.push(slot);
        self.block(block);
        self.0.extend_from_slice(&split.to_be_bytes());
    }

    /// A HEADERS frame: flags bit 0 set; bit 1 FIN.
    fn headers(&mut self, fin: bool, id: u32, block: &[(&[u8], &[u8])], split: u16) {
        self.0.push(1 | if fin { 2 } else { 0 });
        self.0.extend_from_slice(&id.to_be_bytes());
        self.block(block);
        self.0.extend_from_slice(&split.to_be_bytes());
    }

    /// A HEADERS frame with one header whose value is `2 * half` copies of
    /// `byte` (the format's long-value escape).
    fn headers_run(&mut self, id: u32, name: &[u8], half: u16, byte: u8, split: u16) {
        self.0.push(1);
        self.0.extend_from_slice(&id.to_be_bytes());
        self.0.push(1);
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name);
        self.0.push(0xff);
        self.0.extend_from_slice(&half.to_be_bytes());
        self.0.push(byte);
        self.0.extend_from_slice(&split.to_be_bytes());
    }
}

fn roundtrip_headers() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for v in Version::ALL {
        let t = tag(v);
        let (method, path, status, version): (&[u8], &[u8], &[u8], &[u8]) = if v == Version::V2 {
            (b"method", b"url", b"status", b"version")
        } else {
            (b":method", b":path", b":status", b":version")
        };
        let req: Vec<(&[u8], &[u8])> = vec![
            (method, b"GET"),
            (path, b"/index.html"),
            (version, b"HTTP/1.1"),
            (b"user-agent", b"seed"),
            (b"cookie", b"a=1\0b=2"),
        ];
        let resp: Vec<(&[u8], &[u8])> = vec![(status, b"200 OK"), (version, b"HTTP/1.1")];
        for sanitize in [false, true] {
            let s = if sanitize { "clean" } else { "raw" };
            // One request, one push, replies and trailers in one context.
            let mut input = HeadersInput::new(v, sanitize);
            input.syn(2, 1, 0, 0, 0, &req, 7);
            input.syn(4, 2, 1, 3, 1, &[(path, b"/a.css")], 1);
            input.headers(false, 1, &resp, 9);
            input.headers(true, 1, &[(b"x-trailer", b"done")], 0);
            input.headers(false, 3, &[], 3);
            seeds.push(Seed {
                target: "roundtrip_headers",
                name: format!("{t}-{s}-exchange"),
                input: input.0,
            });
            // Sixteen frames: the most the target reads.
            let mut input = HeadersInput::new(v, sanitize);
            for n in 0..16u32 {
                if n % 2 == 0 {
                    input.syn(0, 2 * n + 1, 0, (n % 8) as u8, 0, &req, n as u16 * 5);
                } else {
                    input.headers(n % 3 == 0, 2 * n - 1, &resp, n as u16);
                }
            }
            seeds.push(Seed {
                target: "roundtrip_headers",
                name: format!("{t}-{s}-sixteen"),
                input: input.0,
            });
        }
        // Values past SPDY/2's 16-bit length field (refused there), and a
        // block that inflates far beyond its compressed size.
        let mut input = HeadersInput::new(v, true);
        input.headers_run(1, b"x-long", 0x7fff, b'a', 1000);
        input.headers_run(3, b"x-longer", 0xffff, b'z', 20);
        seeds.push(Seed {
            target: "roundtrip_headers",
            name: format!("{t}-long-values"),
            input: input.0,
        });
        // Blocks the encoder refuses: upper case, empty name, empty value
        // (v2), duplicate names, badly placed NULs.
        let mut input = HeadersInput::new(v, false);
        input.headers(false, 1, &[(b"Upper", b"x")], 0);
        input.headers(false, 1, &[(b"", b"x")], 0);
        input.headers(false, 1, &[(b"empty", b"")], 0);
        input.headers(false, 1, &[(b"dup", b"1"), (b"dup", b"2")], 0);
        input.headers(false, 1, &[(b"nul", b"\0a"), (b"nul2", b"a\0\0b")], 0);
        input.headers(false, 0, &[(b"zero-id", b"1")], 0);
        input.syn(0, 1, 0, 8, 0, &[(b"bad-priority", b"8")], 0);
        input.headers(false, 1, &resp, 2);
        seeds.push(Seed {
            target: "roundtrip_headers",
            name: format!("{t}-refused"),
            input: input.0,
        });
    }
    seeds
}

/// The leading byte of `session_input`: role in bit 0 (1 server), version
/// in bits 1-2 (3: detect, server only), chunk length `1 + 7 * n` in bits
/// 4-7.
fn session_mode(role: Role, v: Option<Version>, chunk_nibble: u8) -> u8 {
    let role = if role == Role::Server { 1 } else { 0 };
    let version = match v {
        Some(Version::V2) => 0,
        Some(Version::V3) => 1,
        Some(Version::V3_1) => 2,
        None => 3,
    };
    role | version << 1 | (chunk_nibble & 0xf) << 4
}

/// What a client sends to a server: settings, a GET, a POST with a body,
/// flow control, a cancelled stream, a ping, headers, GOAWAY.
fn client_script(v: Version) -> Vec<Frame> {
    let mut frames = vec![
        Frame::Settings(Settings::new(vec![
            Setting::new(SettingId::MaxConcurrentStreams, 100),
            Setting::new(SettingId::InitialWindowSize, 1 << 20),
        ])),
        Frame::SynStream(SynStream {
            fin: true,
            ..SynStream::new(sid(1), request(v, "/"))
        }),
        Frame::SynStream(SynStream::new(sid(3), request(v, "/upload"))),
        Frame::Data(Data::new(sid(3), &b"some body bytes"[..], false)),
        Frame::Headers(Headers::new(sid(3), trailers())),
        Frame::Data(Data::new(sid(3), Bytes::new(), true)),
        Frame::Ping(Ping::new(1)),
        Frame::SynStream(SynStream::new(sid(5), request(v, "/gone"))),
        Frame::RstStream(RstStream::new(sid(5), RstStatus::Cancel)),
    ];
    if v != Version::V2 {
        frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(1), 4096)));
    }
    if v == Version::V3_1 {
        frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(0), 1 << 16)));
    }
    frames.push(Frame::SynStream(SynStream {
        fin: true,
        ..SynStream::new(sid(7), request(v, "/last"))
    }));
    frames.push(Frame::GoAway(GoAway::new(sid(0), GoAwayStatus::Ok)));
    frames
}

/// What a server sends to the target's client, which opens stream 1 first:
/// settings, the reply, a push, data, trailers, pings, GOAWAY.
fn server_script(v: Version) -> Vec<Frame> {
    let mut frames = vec![
        Frame::Settings(Settings::new(vec![Setting::new(
            SettingId::MaxConcurrentStreams,
            10,
        )])),
        Frame::SynReply(SynReply::new(sid(1), response(v, "200 OK"))),
        Frame::SynStream(SynStream {
            associated_to: sid(1),
            unidirectional: true,
            ..SynStream::new(sid(2), pushed(v, "/pushed.js"))
        }),
        Frame::Data(Data::new(sid(1), &b"hello"[..], false)),
        Frame::Data(Data::new(sid(2), &b"pushed body"[..], true)),
        Frame::Ping(Ping::new(2)),
        Frame::Headers(Headers {
            fin: true,
            ..Headers::new(sid(1), trailers())
        }),
    ];
    if v != Version::V2 {
        frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(1), 4096)));
    }
    frames.push(Frame::GoAway(GoAway::new(sid(2), GoAwayStatus::Ok)));
    frames
}

/// Drives a real peer session against a session set up as the target sets
/// its own up, and returns every byte the peer sent: an exchange whose
/// flow control, pings and replies follow what the target will answer.
fn real_peer(target_role: Role, v: Version) -> Vec<u8> {
    let config = Config::default()
        .with_max_concurrent_streams(8)
        .with_max_pending_control(64)
        .with_keepalive(Duration::from_secs(5), Duration::from_secs(5));
    let peer_role = match target_role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut target = Session::new(target_role, v, config.clone());
    let mut peer = Session::new(peer_role, v, Config::default());
    let now = Instant::now();
    if target_role == Role::Client {
        let headers: HeaderBlock = [(":path", "/"), ("url", "/")].into_iter().collect();
        let _ = target.open_stream(headers, OpenOptions::default());
    } else {
        for (i, path) in ["/", "/upload", "/big"].into_iter().enumerate() {
            let id = peer
                .open_stream(
                    request(v, path),
                    OpenOptions {
                        priority: i as u8,
                        fin: i == 0,
                        unidirectional: false,
                    },
                )
                .unwrap_or_else(|e| panic!("peer open: {e}"));
            if i == 1 {
                let _ = peer.send_data(id, Bytes::from_static(b"upload body"), true);
            }
        }
        let _ = peer.ping(now);
    }
    let mut sent = Vec::new();
    for _ in 0..16 {
        let mut moved = false;
        while let Some(mut t) = peer.poll_transmit(now) {
            let bytes = t.copy_to_bytes(t.remaining());
            sent.extend_from_slice(&bytes);
            target.handle_input(now, &mut BytesMut::from(&bytes[..]));
            moved = true;
        }
        while let Some(mut t) = target.poll_transmit(now) {
            let bytes = t.copy_to_bytes(t.remaining());
            peer.handle_input(now, &mut BytesMut::from(&bytes[..]));
            moved = true;
        }
        for session in [&mut target, &mut peer] {
            let mut replies = Vec::new();
            while let Some(event) = session.poll_event() {
                match event {
                    Event::StreamOpened {
                        id, unidirectional, ..
                    } if !unidirectional => replies.push(id),
                    Event::Readable { id } => {
                        while let Ok(Recv::Data(d)) = session.recv(id, 4096) {
                            let _ = session.release_capacity(id, d.len());
                        }
                    }
                    _ => {}
                }
            }
            for id in replies {
                let _ = session.reply(id, response(v, "200 OK"), false);
                let _ = session.send_data(id, Bytes::from(vec![b'r'; 2000]), true);
            }
        }
        if !moved {
            break;
        }
    }
    sent
}

fn session_input() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |name: String, mode: u8, wire: &[u8]| {
        seeds.push(Seed {
            target: "session_input",
            name,
            input: with_selector(mode, wire),
        })
    };
    for v in Version::ALL {
        let t = tag(v);
        let client = encode(v, &client_script(v));
        let server = encode(v, &server_script(v));
        for nibble in [0xf, 0x3, 0x0] {
            add(
                format!("{t}-server-script-c{nibble}"),
                session_mode(Role::Server, Some(v), nibble),
                &client,
            );
            add(
                format!("{t}-client-script-c{nibble}"),
                session_mode(Role::Client, Some(v), nibble),
                &server,
            );
        }
        add(
            format!("{t}-detect-script"),
            session_mode(Role::Server, None, 0xf),
            &client,
        );
        add(
            format!("{t}-server-real-peer"),
            session_mode(Role::Server, Some(v), 0xf),
            &real_peer(Role::Server, v),
        );
        add(
            format!("{t}-client-real-peer"),
            session_mode(Role::Client, Some(v), 0xf),
            &real_peer(Role::Client, v),
        );
        // Every frame type, and the same cut in the middle of a block.
        let every = encode(v, &every_frame(v));
        add(
            format!("{t}-server-every-frame"),
            session_mode(Role::Server, Some(v), 0x9),
            &every,
        );
        add(
            format!("{t}-client-cut"),
            session_mode(Role::Client, Some(v), 0x5),
            &server[..server.len() / 2],
        );
    }
    seeds
}
