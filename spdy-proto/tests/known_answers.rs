//! Known-answer tests: frames written byte by byte from the diagrams of the
//! SPDY/2 and SPDY/3 specs, decoded by our decoder and compared field by
//! field, and our encoder's output compared with the same bytes.
//!
//! The compressed header blocks were produced by C zlib (Python's `zlib`
//! module, level 6, SYNC_FLUSH, primed with the spec dictionaries), an
//! implementation independent of the zlib-rs used here. Where compression
//! output may legitimately differ between implementations, the encoder is
//! checked on the uncompressed parts and by decoding what it wrote.

use bytes::{Bytes, BytesMut};
use spdy_proto::frame::{
    ControlType, Credential, Data, Frame, GoAway, GoAwayStatus, Headers, Noop, Ping, RstStatus,
    RstStream, Setting, SettingId, Settings, StreamId, SynReply, SynStream, Unknown, Version,
    WindowUpdate,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sid(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Decodes every frame in `bytes`, expecting no error and nothing left over.
fn decode_all(version: Version, bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn encode(version: Version, frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameEncoder::new(version).encode(frame, &mut out).unwrap();
    out.to_vec()
}

/// Checks both directions for a frame without a header block.
fn check_exact(version: Version, bytes: &str, frame: Frame) {
    let bytes = hex(bytes);
    assert_eq!(
        decode_all(version, &bytes),
        vec![frame.clone()],
        "decode {version}"
    );
    assert_eq!(encode(version, &frame), bytes, "encode {version}");
}

#[test]
fn data_frame() {
    // |0| stream 5 | flags FIN | length 3 | "abc"
    for version in Version::ALL {
        check_exact(
            version,
            "00000005 01 000003 616263",
            Frame::Data(Data::new(sid(5), &b"abc"[..], true)),
        );
        check_exact(
            version,
            "7fffffff 00 000000",
            Frame::Data(Data::new(StreamId::MAX, Bytes::new(), false)),
        );
    }
}

#[test]
fn rst_stream_all_versions() {
    // |1| version | 3 | flags 0 | length 8 | stream 7 | status 5 (CANCEL)
    check_exact(
        Version::V2,
        "8002 0003 00 000008 00000007 00000005",
        Frame::RstStream(RstStream::new(sid(7), RstStatus::Cancel)),
    );
    check_exact(
        Version::V3,
        "8003 0003 00 000008 00000007 0000000b",
        Frame::RstStream(RstStream::new(sid(7), RstStatus::FrameTooLarge)),
    );
    // Status 0 is invalid per spec but is reported, not rejected.
    check_exact(
        Version::V3_1,
        "8003 0003 00 000008 00000001 00000000",
        Frame::RstStream(RstStream::new(sid(1), RstStatus::Unknown(0))),
    );
}

#[test]
fn settings_v3_flags_then_big_endian_id() {
    // |1| 3 | 4 | flags CLEAR | length 4 + 2*8 | count 2 |
    //   flags PERSIST_VALUE, id 4 | 100 |  flags 0, id 7 | 65536
    let frame = Settings {
        clear_persisted: true,
        entries: vec![
            Setting {
                persist_value: true,
                ..Setting::new(SettingId::MaxConcurrentStreams, 100)
            },
            Setting::new(SettingId::InitialWindowSize, 65536),
        ],
    };
    check_exact(
        Version::V3,
        "8003 0004 01 000014 00000002 01000004 00000064 00000007 00010000",
        Frame::Settings(frame),
    );
}

#[test]
fn settings_v2_little_endian_id_then_flags() {
    // SPDY/2: | ID (24, little-endian) | ID_Flags (8) | Value (32) |
    let frame = Settings::new(vec![
        Setting {
            persisted: true,
            ..Setting::new(SettingId::MaxConcurrentStreams, 100)
        },
        Setting::new(SettingId::Unknown(0x030201), 1),
    ]);
    check_exact(
        Version::V2,
        "8002 0004 00 000014 00000002 04000002 00000064 01020300 00000001",
        Frame::Settings(frame),
    );
}

#[test]
fn settings_keep_duplicates_but_get_returns_the_first() {
    let bytes = "8003 0004 00 000014 00000002 00000004 00000001 00000004 00000002";
    let frames = decode_all(Version::V3, &hex(bytes));
    let Frame::Settings(settings) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(settings.entries.len(), 2);
    assert_eq!(settings.get(SettingId::MaxConcurrentStreams), Some(1));
}

#[test]
fn noop_v2() {
    check_exact(Version::V2, "8002 0005 00 000000", Frame::Noop(Noop));
}

#[test]
fn ping_all_versions() {
    check_exact(
        Version::V2,
        "8002 0006 00 000004 00000001",
        Frame::Ping(Ping::new(1)),
    );
    check_exact(
        Version::V3_1,
        "8003 0006 00 000004 fffffffe",
        Frame::Ping(Ping::new(0xffff_fffe)),
    );
}

#[test]
fn goaway_v2_has_no_status() {
    // SPDY/2: | last-good-stream-id | and a length of 4.
    check_exact(
        Version::V2,
        "8002 0007 00 000004 00000003",
        Frame::GoAway(GoAway::new(sid(3), GoAwayStatus::Ok)),
    );
    // A status given for v2 is left out on the wire.
    let out = encode(
        Version::V2,
        &Frame::GoAway(GoAway::new(sid(3), GoAwayStatus::ProtocolError)),
    );
    assert_eq!(out, hex("8002 0007 00 000004 00000003"));
}

#[test]
fn goaway_v3_has_status() {
    check_exact(
        Version::V3,
        "8003 0007 00 000008 00000009 00000001",
        Frame::GoAway(GoAway::new(sid(9), GoAwayStatus::ProtocolError)),
    );
    check_exact(
        Version::V3_1,
        "8003 0007 00 000008 00000000 00000007",
        Frame::GoAway(GoAway::new(StreamId::ZERO, GoAwayStatus::Unknown(7))),
    );
}

#[test]
fn window_update_v3_and_session_window_v3_1() {
    check_exact(
        Version::V3,
        "8003 0009 00 000008 00000001 00001000",
        Frame::WindowUpdate(WindowUpdate::new(sid(1), 4096)),
    );
    check_exact(
        Version::V3_1,
        "8003 0009 00 000008 00000000 7fffffff",
        Frame::WindowUpdate(WindowUpdate::new(StreamId::ZERO, 0x7fff_ffff)),
    );
}

#[test]
fn reserved_bits_are_ignored() {
    // The X bits before stream ids and the delta are reserved; flags that a
    // type does not define are ignored too.
    let frames = decode_all(
        Version::V3,
        &hex("8003 0009 ff 000008 80000001 80001000  8003 0003 ff 000008 80000003 00000001"),
    );
    assert_eq!(
        frames,
        vec![
            Frame::WindowUpdate(WindowUpdate::new(sid(1), 4096)),
            Frame::RstStream(RstStream::new(sid(3), RstStatus::ProtocolError)),
        ]
    );
}

#[test]
fn credential_v3() {
    // | slot 1 | proof length 2 | "pp" | cert length 3 | "abc" | cert length 1 | "z"
    check_exact(
        Version::V3,
        "8003 000a 00 000014 0001 00000002 7070 00000003 616263 00000001 7a",
        Frame::Credential(Credential {
            slot: 1,
            proof: Bytes::from_static(b"pp"),
            certificates: vec![Bytes::from_static(b"abc"), Bytes::from_static(b"z")],
        }),
    );
}

#[test]
fn types_a_version_lacks_are_ignored() {
    // NOOP in v3, WINDOW_UPDATE and CREDENTIAL in v2, type 0xabcd anywhere:
    // reported as ignored, payload skipped, the next frame still decodes.
    let cases = [
        (Version::V3, "8003 0005 00 000000", ControlType::Noop, 0),
        (
            Version::V2,
            "8002 0009 00 000008 00000001 00000001",
            ControlType::WindowUpdate,
            8,
        ),
        (
            Version::V2,
            "8002 000a 00 000002 0001",
            ControlType::Credential,
            2,
        ),
        (
            Version::V3_1,
            "8003 abcd 07 000003 010203",
            ControlType::Unknown(0xabcd),
            3,
        ),
    ];
    for (version, bytes, kind, length) in cases {
        let mut input = hex(bytes);
        input.extend(encode(version, &Frame::Ping(Ping::new(2))));
        let frames = decode_all(version, &input);
        let flags = input[4];
        assert_eq!(
            frames,
            vec![
                Frame::Unknown(Unknown {
                    version: version.wire_number(),
                    kind,
                    flags,
                    length
                }),
                Frame::Ping(Ping::new(2)),
            ],
            "{version} {bytes}"
        );
    }
}

// Header blocks: "method GET, url /, version HTTP/1.1" (v2) and the v3
// equivalent, then a reply, compressed in sequence in one zlib stream.
const V2_Z1: &str =
    "78bbdfa251b262606660cb05e6c3fc14066677d71006669020a33e033b540d03074c2b000000ffff";
const V2_Z2: &str = "626062608368676003266b057f6f2c8a00000000ffff";
const V3_Z1: &str =
    "78bbe3c6a7c202253a507ab442a45a77d7105006b32a4804974d8cfaa0446a8525c102000000ffff";
const V3_Z2: &str = "02e52cb05e2c091cab0600000000ffff";

#[test]
fn syn_stream_and_reply_v3_share_one_zlib_stream() {
    // SYN_STREAM: |1|3|1| flags FIN | length 10 + 40 | stream 1 | assoc 0 |
    //   pri 3 (3 bits: 0x60) | slot 0 | block
    // SYN_REPLY:  |1|3|2| flags 0 | length 4 + 16 | stream 1 | block
    let bytes = hex(&format!(
        "8003 0001 01 000032 00000001 00000000 60 00 {V3_Z1} 8003 0002 00 000014 00000001 {V3_Z2}"
    ));
    let syn = SynStream {
        priority: 3,
        fin: true,
        ..SynStream::new(
            sid(1),
            block(&[(":method", "GET"), (":path", "/"), (":version", "HTTP/1.1")]),
        )
    };
    let reply = SynReply::new(
        sid(1),
        block(&[(":status", "200 OK"), (":version", "HTTP/1.1")]),
    );
    let frames = decode_all(Version::V3, &bytes);
    assert_eq!(
        frames,
        vec![
            Frame::SynStream(syn.clone()),
            Frame::SynReply(reply.clone())
        ]
    );
    // Our encoder: same fixed parts, and what it writes decodes the same.
    let mut encoder = FrameEncoder::new(Version::V3);
    let mut out = BytesMut::new();
    encoder.encode(&Frame::SynStream(syn), &mut out).unwrap();
    assert_eq!(out[..4], hex("80030001")[..]);
    assert_eq!(out[4], 0x01);
    assert_eq!(out[8..18], hex("00000001 00000000 60 00")[..]);
    let syn_len = out.len();
    encoder.encode(&Frame::SynReply(reply), &mut out).unwrap();
    assert_eq!(out[syn_len..syn_len + 5], hex("80030002 00")[..]);
    assert_eq!(out[syn_len + 8..syn_len + 12], hex("00000001")[..]);
    assert_eq!(decode_all(Version::V3, &out), frames);
}

#[test]
fn syn_stream_and_reply_v2_layouts() {
    // SYN_STREAM v2: pri 2 in the top 2 bits (0x80), 14 unused bits.
    // SYN_REPLY v2: stream id then 16 unused bits before the block.
    let bytes = hex(&format!(
        "8002 0001 00 000032 00000001 00000000 80 00 {V2_Z1} 8002 0002 00 00001c 00000001 0000 {V2_Z2}"
    ));
    let syn = SynStream {
        priority: 2,
        ..SynStream::new(
            sid(1),
            block(&[("method", "GET"), ("url", "/"), ("version", "HTTP/1.1")]),
        )
    };
    let reply = SynReply::new(
        sid(1),
        block(&[("status", "200 OK"), ("version", "HTTP/1.1")]),
    );
    let frames = decode_all(Version::V2, &bytes);
    assert_eq!(
        frames,
        vec![
            Frame::SynStream(syn.clone()),
            Frame::SynReply(reply.clone())
        ]
    );
    let mut encoder = FrameEncoder::new(Version::V2);
    let mut out = BytesMut::new();
    encoder.encode(&Frame::SynStream(syn), &mut out).unwrap();
    assert_eq!(out[8..18], hex("00000001 00000000 80 00")[..]);
    let syn_len = out.len();
    encoder.encode(&Frame::SynReply(reply), &mut out).unwrap();
    assert_eq!(out[syn_len..syn_len + 4], hex("80020002")[..]);
    assert_eq!(out[syn_len + 8..syn_len + 14], hex("00000001 0000")[..]);
    assert_eq!(decode_all(Version::V2, &out), frames);
}

#[test]
fn headers_frame_v2_and_v3() {
    let trailer = Headers {
        fin: true,
        ..Headers::new(sid(3), block(&[("x-trailer", "done")]))
    };
    // v3: |1|3|8| FIN | length 4 + 27 | stream 3 | block
    let v3 =
        hex("8003 0008 01 00001f 00000003 78bbe3c6a7c202a6234620e6acd045e40e9614608607000000ffff");
    assert_eq!(
        decode_all(Version::V3_1, &v3),
        vec![Frame::Headers(trailer.clone())]
    );
    // v2: |1|2|8| FIN | length 6 + 26 | stream 3 | unused 16 | block
    let v2 = hex(
        "8002 0008 01 000020 00000003 0000 78bbdfa251b2626064e0acd085c60a034b0a304300000000ffff",
    );
    assert_eq!(
        decode_all(Version::V2, &v2),
        vec![Frame::Headers(trailer.clone())]
    );
    for version in Version::ALL {
        let out = encode(version, &Frame::Headers(trailer.clone()));
        assert_eq!(
            decode_all(version, &out),
            vec![Frame::Headers(trailer.clone())]
        );
    }
}

#[test]
fn v3_slot_is_read_and_written() {
    let syn = SynStream {
        priority: 7,
        slot: 9,
        unidirectional: true,
        associated_to: sid(1),
        ..SynStream::new(sid(2), block(&[(":path", "/x")]))
    };
    let out = encode(Version::V3, &Frame::SynStream(syn.clone()));
    assert_eq!(out[4], 0x02, "FLAG_UNIDIRECTIONAL");
    assert_eq!(out[8..18], hex("00000002 00000001 e0 09")[..]);
    assert_eq!(decode_all(Version::V3, &out), vec![Frame::SynStream(syn)]);
}
