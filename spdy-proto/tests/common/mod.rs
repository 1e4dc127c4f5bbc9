//! Helpers shared by `roundtrip.rs` and `arbitrary_input.rs`: proptest
//! strategies that generate frames every version can carry, and small
//! drivers that run a [`FrameDecoder`] over a byte stream.
//!
//! Each integration test file is its own crate and uses only part of this
//! module, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use spdy_proto::frame::{
    ControlType, Credential, Data, Frame, GoAway, GoAwayStatus, Headers, Noop, Ping, RstStatus,
    RstStream, Setting, SettingId, Settings, StreamId, SynReply, SynStream, Unknown, Version,
    WindowUpdate,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeError, DecodeLimits, FrameDecoder, FrameEncoder};

/// Largest stream id / 31-bit field value.
pub const MAX_31: u32 = 0x7fff_ffff;

/// Limits under which every frame the strategies below produce decodes whole:
/// the largest control frame the wire allows, a 16 MiB header block, and DATA
/// frames never split into pieces.
pub fn big_limits() -> DecodeLimits {
    DecodeLimits::default()
        .with_max_control_frame_len(u32::MAX)
        .with_max_header_block_len(16 << 20)
        .with_data_piece_len(usize::MAX)
}

pub fn sid(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

/// One of the three versions.
pub fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V2), Just(Version::V3), Just(Version::V3_1)]
}

/// Any 31-bit stream id, 0 included.
pub fn any_stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![
        3 => 0..=1000u32,
        1 => 0..=MAX_31,
        1 => Just(MAX_31),
    ]
    .prop_map(sid)
}

/// A stream id other than 0 (DATA frames require one).
pub fn nonzero_stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![
        3 => 1..=1000u32,
        1 => 1..=MAX_31,
        1 => Just(MAX_31),
    ]
    .prop_map(sid)
}

/// A header name the encoder accepts: non-empty, no NUL, no upper case
/// ASCII. Mostly the usual HTTP spelling, sometimes any other octets.
pub fn header_name() -> impl Strategy<Value = Vec<u8>> {
    let usual = prop_oneof![
        Just(b":method".to_vec()),
        Just(b":path".to_vec()),
        Just(b":host".to_vec()),
        Just(b"user-agent".to_vec()),
        Just(b"accept-encoding".to_vec()),
        Just(b"set-cookie".to_vec()),
        "[a-z:][a-z0-9-]{0,15}".prop_map(String::into_bytes),
    ];
    let odd = vec(
        (1u8..=255).prop_filter("no upper case", |b| !b.is_ascii_uppercase()),
        1..12,
    );
    prop_oneof![4 => usual, 1 => odd]
}

/// A header value obeying the NUL rules: one or more non-empty parts
/// separated by single NULs; SPDY/3 also allows an empty value.
pub fn header_value(version: Version) -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        3 => "[ -~]{1,24}".prop_map(String::into_bytes),
        1 => vec(1u8..=255, 1..24),
    ];
    let joined = vec(part, 1..4).prop_map(|parts| parts.join(&0u8));
    if version == Version::V2 {
        joined.boxed()
    } else {
        prop_oneof![6 => joined, 1 => Just(Vec::new())].boxed()
    }
}

/// A valid header block: unique names (first occurrence kept, order kept).
pub fn header_block(version: Version) -> impl Strategy<Value = HeaderBlock> {
    vec((header_name(), header_value(version)), 0..8).prop_map(|pairs| {
        let mut seen = BTreeSet::new();
        pairs
            .into_iter()
            .filter(|(name, _)| seen.insert(name.clone()))
            .collect::<HeaderBlock>()
    })
}

pub fn syn_stream(version: Version) -> impl Strategy<Value = Frame> {
    let slot = match version {
        // SPDY/2 has no slot field (it decodes as 0); SPDY/3.1 leaves the
        // byte unused, so only SPDY/3 gives it a meaning to preserve.
        Version::V2 | Version::V3_1 => Just(0u8).boxed(),
        Version::V3 => any::<u8>().boxed(),
    };
    (
        any_stream_id(),
        any_stream_id(),
        0..=SynStream::lowest_priority(version),
        slot,
        any::<bool>(),
        any::<bool>(),
        header_block(version),
    )
        .prop_map(
            |(stream_id, associated_to, priority, slot, fin, unidirectional, headers)| {
                Frame::SynStream(SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    fin,
                    unidirectional,
                    headers,
                })
            },
        )
}

pub fn syn_reply(version: Version) -> impl Strategy<Value = Frame> {
    (any_stream_id(), any::<bool>(), header_block(version)).prop_map(|(stream_id, fin, headers)| {
        Frame::SynReply(SynReply {
            stream_id,
            fin,
            headers,
        })
    })
}

pub fn headers(version: Version) -> impl Strategy<Value = Frame> {
    (any_stream_id(), any::<bool>(), header_block(version)).prop_map(|(stream_id, fin, headers)| {
        Frame::Headers(Headers {
            stream_id,
            fin,
            headers,
        })
    })
}

/// DATA payloads: mostly short, sometimes a few KiB.
pub fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 0..4096),
    ]
    .prop_map(Bytes::from)
}

pub fn data() -> impl Strategy<Value = Data> {
    (nonzero_stream_id(), payload(), any::<bool>())
        .prop_map(|(stream_id, data, fin)| Data::new(stream_id, data, fin))
}

pub fn rst_stream() -> impl Strategy<Value = Frame> {
    (any_stream_id(), any::<u32>())
        .prop_map(|(id, status)| Frame::RstStream(RstStream::new(id, RstStatus::from_u32(status))))
}

pub fn settings() -> impl Strategy<Value = Frame> {
    let entry = (
        prop_oneof![3 => 0..=10u32, 1 => 0..=0x00ff_ffffu32],
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(id, value, persist_value, persisted)| Setting {
            id: SettingId::from_u32(id),
            value,
            persist_value,
            persisted,
        });
    (any::<bool>(), vec(entry, 0..10)).prop_map(|(clear_persisted, entries)| {
        Frame::Settings(Settings {
            clear_persisted,
            entries,
        })
    })
}

pub fn ping() -> impl Strategy<Value = Frame> {
    any::<u32>().prop_map(|id| Frame::Ping(Ping::new(id)))
}

pub fn goaway(version: Version) -> impl Strategy<Value = Frame> {
    // SPDY/2's GOAWAY carries no status: it always decodes as OK.
    let status = if version == Version::V2 {
        Just(GoAwayStatus::Ok).boxed()
    } else {
        any::<u32>().prop_map(GoAwayStatus::from_u32).boxed()
    };
    (any_stream_id(), status).prop_map(|(id, status)| Frame::GoAway(GoAway::new(id, status)))
}

pub fn window_update() -> impl Strategy<Value = Frame> {
    (
        any_stream_id(),
        prop_oneof![1..=MAX_31, Just(1), Just(MAX_31)],
    )
        .prop_map(|(id, delta)| Frame::WindowUpdate(WindowUpdate::new(id, delta)))
}

pub fn credential() -> impl Strategy<Value = Frame> {
    let blob = || vec(any::<u8>(), 0..48).prop_map(Bytes::from);
    (any::<u16>(), blob(), vec(blob(), 0..4)).prop_map(|(slot, proof, certificates)| {
        Frame::Credential(Credential {
            slot,
            proof,
            certificates,
        })
    })
}

/// A control frame the decoder skips and reports as [`Frame::Unknown`]:
/// a type the version does not define, or any type but SYN_STREAM carrying
/// another version number. Its payload is written as zeros.
pub fn unknown(version: Version) -> impl Strategy<Value = Frame> {
    let wire = version.wire_number();
    let undefined: BoxedStrategy<u16> = match version {
        Version::V2 => prop_oneof![Just(0u16), Just(9), Just(10), 11..=u16::MAX].boxed(),
        Version::V3 | Version::V3_1 => prop_oneof![Just(0u16), Just(5), 11..=u16::MAX].boxed(),
    };
    let same_version =
        (undefined, any::<u8>(), 0..64u32).prop_map(move |(kind, flags, length)| Unknown {
            version: wire,
            kind: ControlType::from_u16(kind),
            flags,
            length,
        });
    let other_version = (
        (0..=0x7fffu16).prop_filter("another version", move |&v| v != wire),
        (0..=u16::MAX).prop_filter("SYN_STREAM is refused, not skipped", |&k| k != 1),
        any::<u8>(),
        0..64u32,
    )
        .prop_map(|(version, kind, flags, length)| Unknown {
            version,
            kind: ControlType::from_u16(kind),
            flags,
            length,
        });
    prop_oneof![3 => same_version, 1 => other_version].prop_map(Frame::Unknown)
}

/// Any frame `version` defines, with valid field values, plus skipped
/// unknown frames.
pub fn frame(version: Version) -> BoxedStrategy<Frame> {
    let common = prop_oneof![
        4 => data().prop_map(Frame::Data),
        3 => syn_stream(version),
        2 => syn_reply(version),
        2 => headers(version),
        1 => rst_stream(),
        1 => settings(),
        1 => ping(),
        1 => goaway(version),
        1 => unknown(version),
    ];
    match version {
        Version::V2 => prop_oneof![10 => common, 1 => Just(Frame::Noop(Noop))].boxed(),
        Version::V3 => prop_oneof![
            10 => common,
            1 => window_update(),
            1 => credential(),
        ]
        .boxed(),
        // CREDENTIAL is deprecated by 3.1 and the encoder refuses it.
        Version::V3_1 => prop_oneof![10 => common, 1 => window_update()].boxed(),
    }
}

/// A version and a list of frames valid in it.
pub fn versioned_frames(
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = (Version, Vec<Frame>)> {
    version().prop_flat_map(move |v| (Just(v), vec(frame(v), len.clone())))
}

/// How to cut a stream into chunks: one byte at a time, or a repeating
/// pattern of random sizes.
pub fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1]),
        3 => vec(1..=300usize, 1..16),
        1 => vec(1..=8usize, 1..16),
    ]
}

/// Splits `wire` into consecutive chunks whose sizes cycle through `sizes`.
pub fn chunks<'a>(wire: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    sizes.iter().cycle().map_while(move |&size| {
        if at >= wire.len() {
            return None;
        }
        let end = (at + size.max(1)).min(wire.len());
        let chunk = &wire[at..end];
        at = end;
        Some(chunk)
    })
}

/// Encodes `frames` with one encoder into one buffer. Also returns where
/// each frame ends.
pub fn encode_all(version: Version, frames: &[Frame]) -> (BytesMut, Vec<usize>) {
    let mut encoder = FrameEncoder::new(version);
    let mut wire = BytesMut::new();
    let mut ends = Vec::with_capacity(frames.len());
    for frame in frames {
        encoder
            .encode(frame, &mut wire)
            .unwrap_or_else(|e| panic!("encoding {frame:?} for {version}: {e}"));
        ends.push(wire.len());
    }
    (wire, ends)
}

/// Decodes until the decoder needs more bytes, failing on any error.
pub fn decode_available(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return frames,
            Err(e) => panic!(
                "unexpected decode error after {} frames: {e:?}",
                frames.len()
            ),
        }
    }
}

/// Joins DATA pieces the decoder handed out separately: a `Data` without
/// `fin`, followed directly by a `Data` on the same stream, is merged with
/// it. Applied to both the frames sent and the frames received, it makes the
/// two comparable whatever the decoder's split points: only payload bytes
/// and the place of `fin` survive.
pub fn join_data<E>(items: impl IntoIterator<Item = Result<Frame, E>>) -> Vec<Result<Frame, E>> {
    let mut out: Vec<Result<Frame, E>> = Vec::new();
    for item in items {
        if let Ok(Frame::Data(next)) = &item {
            if let Some(Ok(Frame::Data(prev))) = out.last_mut() {
                if !prev.fin && prev.stream_id == next.stream_id {
                    let mut joined = BytesMut::from(&prev.data[..]);
                    joined.extend_from_slice(&next.data);
                    prev.data = joined.freeze();
                    prev.fin = next.fin;
                    continue;
                }
            }
        }
        out.push(item);
    }
    out
}

/// [`join_data`] for a plain list of frames.
pub fn join_data_frames(frames: Vec<Frame>) -> Vec<Frame> {
    join_data(frames.into_iter().map(Ok::<Frame, ()>))
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// Everything a decoder produced for one input: frames and errors in order,
/// ending at the first session error if there is one.
pub type Outcomes = Vec<Result<Frame, DecodeError>>;

/// Feeds `wire` to a fresh decoder in chunks of `sizes` (cycled), calling
/// `decode` until it needs more bytes after each chunk, and returns
/// everything it produced plus what was left in the buffer. Stops at the
/// first session error.
pub fn decode_chunked(
    version: Version,
    limits: DecodeLimits,
    wire: &[u8],
    sizes: &[usize],
) -> (Outcomes, BytesMut) {
    let mut decoder = FrameDecoder::new(version, limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks(wire, sizes) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => out.push(Ok(frame)),
                Err(e @ DecodeError::Stream { .. }) => out.push(Err(e)),
                Err(e @ DecodeError::Session { .. }) => {
                    out.push(Err(e));
                    return (out, buf);
                }
            }
        }
    }
    (out, buf)
}
