//! Hostile input: whatever bytes a peer sends, the decoder must not panic,
//! must classify every problem as a stream or a session error with the
//! promised properties, and must not let a length field or a compressed
//! block make it allocate memory the peer has not sent.
//!
//! Memory is measured with the counting global allocator of the
//! `allocation-counter` crate, per thread.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use proptest::collection::vec;
use proptest::prelude::*;
use spdy_proto::frame::{
    ControlType, Frame, FrameError, GoAwayStatus, Ping, RstStatus, SynStream, Unknown, Version,
};
use spdy_proto::header_block::{dictionary, HeaderBlock, HeaderBlockError};
use spdy_proto::{DecodeError, DecodeLimits, FrameDecoder, FrameEncoder};

use common::{big_limits, chunk_sizes, chunks, encode_all, join_data, sid, Outcomes, MAX_31};

/// Runs `f` and returns its result with the largest number of bytes this
/// thread held allocated at any moment during `f`, beyond what it held when
/// `f` started. (`allocation-counter` replaces the global allocator of the
/// test binaries and counts per thread, so tests running in parallel do not
/// disturb each other.)
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    let out = out.expect("the closure ran");
    (out, usize::try_from(info.bytes_max).unwrap_or(usize::MAX))
}

/// A control frame header.
fn control_head(version: u16, kind: u16, flags: u8, length: u32) -> [u8; 8] {
    let mut head = [0u8; 8];
    head[..2].copy_from_slice(&(0x8000 | version).to_be_bytes());
    head[2..4].copy_from_slice(&kind.to_be_bytes());
    head[4..].copy_from_slice(&((u32::from(flags) << 24) | length).to_be_bytes());
    head
}

/// A DATA frame header.
fn data_head(stream_id: u32, flags: u8, length: u32) -> [u8; 8] {
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&stream_id.to_be_bytes());
    head[4..].copy_from_slice(&((u32::from(flags) << 24) | length).to_be_bytes());
    head
}

fn ping_bytes(version: Version, id: u32) -> BytesMut {
    let mut wire = BytesMut::new();
    FrameEncoder::new(version)
        .encode(&Frame::Ping(Ping::new(id)), &mut wire)
        .unwrap();
    wire
}

fn session_error(cause: FrameError) -> DecodeError {
    DecodeError::Session {
        status: GoAwayStatus::ProtocolError,
        cause,
    }
}

/// Checks what holds for every frame the decoder hands out, whatever the
/// input: DATA never names stream 0, fields fit their wire widths, and the
/// frame can be written again by an encoder and read back unchanged (so the
/// decoder never produces a value the protocol cannot carry).
struct FrameChecker {
    version: Version,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
}

impl FrameChecker {
    fn new(version: Version) -> FrameChecker {
        let mut encoder = FrameEncoder::new(version);
        // SPDY/2 receivers accept upper-case names the encoder would refuse.
        encoder.set_validate_headers(false);
        FrameChecker {
            version,
            encoder,
            decoder: FrameDecoder::new(version, big_limits()),
        }
    }

    fn check(&mut self, frame: &Frame) {
        if let Some(id) = frame.stream_id() {
            assert!(id.value() <= MAX_31);
        }
        match frame {
            Frame::Data(data) => assert!(!data.stream_id.is_zero(), "DATA on stream 0"),
            Frame::WindowUpdate(w) => assert!((1..=MAX_31).contains(&w.delta), "{w:?}"),
            Frame::SynStream(s) => {
                assert!(s.priority <= SynStream::lowest_priority(self.version));
                if self.version == Version::V2 {
                    assert_eq!(s.slot, 0);
                }
            }
            // CREDENTIAL decodes in 3.1 (3 and 3.1 look alike on the wire) but
            // the encoder only writes it for 3.
            Frame::Credential(_) if self.version == Version::V3_1 => return,
            // Re-encoding writes the skipped payload as zeros; keep it cheap.
            Frame::Unknown(u) if u.length > 4096 => return,
            _ => {}
        }
        let mut wire = BytesMut::new();
        self.encoder
            .encode(frame, &mut wire)
            .unwrap_or_else(|e| panic!("decoded frame {frame:?} cannot be encoded: {e}"));
        let again = self.decoder.decode(&mut wire).unwrap().unwrap();
        let mut expected = frame.clone();
        if let Frame::GoAway(g) = &mut expected {
            // A SPDY/2 GOAWAY of length 8 has its status read, but SPDY/2
            // GOAWAYs are written without one.
            if self.version == Version::V2 {
                g.status = GoAwayStatus::Ok;
            }
        }
        assert_eq!(again, expected, "re-encoding changed the frame");
        // (A skipped frame's payload goes on the next call.)
        assert_eq!(self.decoder.decode(&mut wire), Ok(None));
        assert!(wire.is_empty());
    }
}

/// Feeds `wire` to a decoder in chunks (sizes cycled) and checks, at every
/// call:
/// - no panic (a panic fails the property);
/// - a frame or a stream error consumes at least one byte (no livelock);
/// - every frame passes [`FrameChecker::check`];
/// - a stream error names a stream other than 0, with a status the version
///   defines, and leaves the decoder usable;
/// - a session error carries PROTOCOL_ERROR, marks the decoder failed, and
///   every later call returns the same error, whatever bytes follow.
///
/// Returns everything decoded, ending with the session error if any.
fn decode_checked(
    version: Version,
    limits: DecodeLimits,
    wire: &[u8],
    sizes: &[usize],
) -> Outcomes {
    let mut decoder = FrameDecoder::new(version, limits);
    let mut checker = FrameChecker::new(version);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for chunk in chunks(wire, sizes) {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(None) => {
                    assert!(!decoder.is_failed());
                    break;
                }
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "{frame:?} consumed nothing");
                    checker.check(&frame);
                    out.push(Ok(frame));
                }
                Err(err @ DecodeError::Stream { .. }) => {
                    let DecodeError::Stream {
                        stream_id, status, ..
                    } = &err
                    else {
                        unreachable!()
                    };
                    assert!(!stream_id.is_zero(), "stream error on stream 0: {err:?}");
                    assert!(buf.len() < before, "{err:?} consumed nothing");
                    if version == Version::V2 {
                        assert!((1..=7).contains(&status.to_u32()), "{err:?}");
                    }
                    assert!(!decoder.is_failed());
                    out.push(Err(err));
                }
                Err(err @ DecodeError::Session { .. }) => {
                    assert!(matches!(
                        err,
                        DecodeError::Session {
                            status: GoAwayStatus::ProtocolError,
                            ..
                        }
                    ));
                    assert!(decoder.is_failed());
                    for _ in 0..3 {
                        assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
                    }
                    buf.extend_from_slice(&wire[fed..]);
                    assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
                    let mut valid = ping_bytes(version, 7);
                    assert_eq!(decoder.decode(&mut valid), Err(err.clone()));
                    assert_eq!(decoder.decode(&mut BytesMut::new()), Err(err.clone()));
                    out.push(Err(err));
                    return out;
                }
            }
        }
    }
    out
}

/// Runs [`decode_checked`] on `wire` whole and in `sizes` chunks, and checks
/// that both give the same frames and errors. DATA is delivered as soon as
/// any of it is there (piece size 1), so after joining pieces the results
/// must agree exactly: where the bytes were cut must not matter.
fn decode_whole_and_chunked(version: Version, limits: DecodeLimits, wire: &[u8], sizes: &[usize]) {
    let limits = limits.with_data_piece_len(1);
    let whole = decode_checked(version, limits, wire, &[wire.len().max(1)]);
    let chunked = decode_checked(version, limits, wire, sizes);
    assert_eq!(join_data(whole), join_data(chunked));
}

/// Limits to run hostile input under: the defaults, or tight ones (the
/// smallest control frame limit the spec allows, small header blocks).
fn limits() -> impl Strategy<Value = DecodeLimits> {
    prop_oneof![
        Just(DecodeLimits::default()),
        (256..4096usize, 1..64usize).prop_map(|(block, piece)| {
            DecodeLimits::default()
                .with_max_control_frame_len(0)
                .with_max_header_block_len(block)
                .with_data_piece_len(piece)
        }),
    ]
}

/// A stream of frame-shaped pieces for `version`: control headers with
/// random version/type/flags/length and random payloads (lengths that may
/// or may not match), DATA headers (stream 0 included), random bytes, and
/// valid frames (header blocks from one shared encoder, so some of them
/// inflate correctly). Random bytes alone rarely look like a control frame
/// of the right version; this reaches the per-type decoders.
fn frame_soup(version: Version) -> impl Strategy<Value = Vec<u8>> {
    let wire = version.wire_number();
    let control = (
        prop_oneof![4 => Just(wire), 1 => 0..=0x7fffu16],
        prop_oneof![8 => 0..=11u16, 1 => any::<u16>()],
        any::<u8>(),
        prop_oneof![6 => 0..48u32, 1 => 0..=0x00ff_ffffu32],
        vec(any::<u8>(), 0..48),
    )
        .prop_map(|(v, kind, flags, len, payload)| {
            let mut bytes = control_head(v, kind, flags, len).to_vec();
            bytes.extend_from_slice(&payload);
            Piece::Bytes(bytes)
        });
    let data = (
        prop_oneof![1 => Just(0u32), 4 => 1..=8u32, 1 => any::<u32>()],
        any::<u8>(),
        prop_oneof![6 => 0..48u32, 1 => 0..=0x00ff_ffffu32],
        vec(any::<u8>(), 0..48),
    )
        .prop_map(|(id, flags, len, payload)| {
            let mut bytes = data_head(id, flags, len).to_vec();
            bytes.extend_from_slice(&payload);
            Piece::Bytes(bytes)
        });
    let piece = prop_oneof![
        3 => control,
        2 => data,
        1 => vec(any::<u8>(), 0..16).prop_map(Piece::Bytes),
        3 => common::frame(version).prop_map(Piece::Frame),
    ];
    vec(piece, 0..24).prop_map(move |pieces| {
        let mut encoder = FrameEncoder::new(version);
        let mut out = BytesMut::new();
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => out.extend_from_slice(&bytes),
                Piece::Frame(frame) => encoder.encode(&frame, &mut out).unwrap(),
            }
        }
        out.truncate(4096);
        out.to_vec()
    })
}

#[derive(Debug, Clone)]
enum Piece {
    Bytes(Vec<u8>),
    Frame(Frame),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Random byte vectors of up to 4 KiB, fed whole and in random
    /// chunks to a decoder of each version: no panic; session errors are
    /// sticky; stream errors and DATA frames never name stream 0; whole and
    /// chunked feeding agree (see [`decode_checked`]).
    #[test]
    fn random_bytes_never_break_the_decoder(
        version in common::version(),
        limits in limits(),
        wire in vec(any::<u8>(), 0..4096),
        sizes in chunk_sizes(),
    ) {
        decode_whole_and_chunked(version, limits, &wire, &sizes);
    }

    /// (a) The same checks on frame-shaped random input, which gets past
    /// the frame header into every frame type's decoder and into header
    /// block inflation and parsing.
    #[test]
    fn random_frames_never_break_the_decoder(
        (version, wire) in common::version().prop_flat_map(|v| (Just(v), frame_soup(v))),
        limits in limits(),
        sizes in chunk_sizes(),
    ) {
        decode_whole_and_chunked(version, limits, &wire, &sizes);
    }
}

/// Valid frames with DATA payloads kept short, so that a stream of a few
/// frames stays small enough to try every prefix of.
fn short_frames() -> impl Strategy<Value = (Version, Vec<Frame>)> {
    common::versioned_frames(1..8).prop_map(|(version, frames)| {
        let frames = frames
            .into_iter()
            .map(|frame| match frame {
                Frame::Data(mut d) => {
                    d.data.truncate(40);
                    Frame::Data(d)
                }
                other => other,
            })
            .collect();
        (version, frames)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// (b) Every prefix of a valid multi-frame stream, given to a fresh
    /// decoder, decodes without error to exactly the frames wholly inside
    /// the prefix, plus what the decoder hands out before a frame is
    /// complete (the header of a skipped unknown frame; a DATA piece once
    /// `data_piece_len` payload bytes are there), then `Ok(None)`. The bytes
    /// left in the buffer are exactly the tail of the prefix the decoder
    /// still needs: all of an incomplete control frame, the unhanded payload
    /// of an incomplete DATA frame, nothing of a skipped frame.
    #[test]
    fn every_truncation_decodes_to_a_prefix(
        (version, frames) in short_frames(),
        piece_len in prop_oneof![Just(1usize), 2..16usize, Just(usize::MAX)],
    ) {
        let (wire, ends) = encode_all(version, &frames);
        let limits = big_limits().with_data_piece_len(piece_len);
        for cut in 0..=wire.len() {
            let complete = ends.iter().take_while(|&&end| end <= cut).count();
            let mut expected: Vec<Frame> = frames[..complete].to_vec();
            let start = if complete == 0 { 0 } else { ends[complete - 1] };
            let partial = cut - start;
            let mut leftover = partial;
            if partial >= 8 {
                match &frames[complete] {
                    Frame::Unknown(_) => {
                        expected.push(frames[complete].clone());
                        leftover = 0;
                    }
                    Frame::Data(d) => {
                        let have = partial - 8;
                        leftover = have;
                        if have >= piece_len {
                            expected.push(Frame::Data(spdy_proto::frame::Data::new(
                                d.stream_id,
                                d.data.slice(..have),
                                false,
                            )));
                            leftover = 0;
                        }
                    }
                    _ => {}
                }
            }
            let mut decoder = FrameDecoder::new(version, limits);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut decoded = Vec::new();
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => decoded.push(frame),
                    Ok(None) => break,
                    Err(e) => {
                        return Err(TestCaseError::fail(format!("cut at {cut}: error {e:?}")))
                    }
                }
            }
            prop_assert_eq!(&decoded, &expected, "cut at {}", cut);
            prop_assert_eq!(&buf[..], &wire[cut - leftover..cut], "cut at {}", cut);
            // The rest of the stream completes it.
            buf.extend_from_slice(&wire[cut..]);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                decoded.push(frame);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(
                common::join_data_frames(decoded),
                common::join_data_frames(frames.clone())
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// (c) A valid stream with one to four bytes changed (random positions,
    /// random non-zero XOR) never makes the decoder panic, and the checks of
    /// [`decode_checked`] hold, fed whole or in chunks.
    #[test]
    fn corrupted_streams_never_break_the_decoder(
        (version, frames) in common::versioned_frames(1..12),
        flips in vec((any::<prop::sample::Index>(), 1..=255u8), 1..=4),
        limits in limits(),
        sizes in chunk_sizes(),
    ) {
        let (mut wire, _) = encode_all(version, &frames);
        for (at, xor) in flips {
            let at = at.index(wire.len());
            wire[at] ^= xor;
        }
        decode_whole_and_chunked(version, limits, &wire, &sizes);
    }
}

/// A header name from a small alphabet that includes what the rules forbid
/// (upper case, NUL, empty), so that duplicates are common too.
fn any_name() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![Just(b'a'), Just(b'b'), Just(b'A'), Just(0u8)],
        0..3,
    )
}

/// A value with NULs anywhere, empty included.
fn any_value() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![3 => Just(b'v'), 1 => Just(0u8)], 0..5)
}

/// Whether a receiver of `version` accepts `block` (the spec's rules).
fn receivable(block: &HeaderBlock, version: Version) -> bool {
    let mut names = std::collections::BTreeSet::new();
    block.iter().all(|(name, value)| {
        let name_ok = !name.is_empty()
            && !name.contains(&0)
            && (version == Version::V2 || !name.iter().any(u8::is_ascii_uppercase));
        let value_ok = if value.is_empty() {
            version != Version::V2
        } else {
            value[0] != 0 && value[value.len() - 1] != 0 && !value.windows(2).any(|w| w == [0, 0])
        };
        name_ok && value_ok && names.insert(name.clone())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Header blocks that break the naming and NUL rules, correctly
    /// compressed in one shared stream: each bad block costs exactly its
    /// stream (a PROTOCOL_ERROR stream error on that frame's stream id) and
    /// every good block around it still decodes, because the compression
    /// context stays in step.
    #[test]
    fn invalid_header_blocks_cost_one_stream(
        version in common::version(),
        blocks in vec((0..3u8, 1..=MAX_31, vec((any_name(), any_value()), 0..4)), 1..12),
    ) {
        let frames: Vec<Frame> = blocks
            .into_iter()
            .map(|(kind, id, pairs)| {
                let headers: HeaderBlock = pairs.into_iter().collect();
                match kind {
                    0 => Frame::SynStream(SynStream::new(sid(id), headers)),
                    1 => Frame::SynReply(spdy_proto::frame::SynReply::new(sid(id), headers)),
                    _ => Frame::Headers(spdy_proto::frame::Headers::new(sid(id), headers)),
                }
            })
            .collect();
        let mut encoder = FrameEncoder::new(version);
        encoder.set_validate_headers(false);
        let mut wire = BytesMut::new();
        for frame in &frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        let outcomes = decode_checked(version, DecodeLimits::default(), &wire, &[wire.len()]);
        prop_assert_eq!(outcomes.len(), frames.len());
        for (frame, outcome) in frames.iter().zip(outcomes) {
            let headers = match frame {
                Frame::SynStream(f) => &f.headers,
                Frame::SynReply(f) => &f.headers,
                Frame::Headers(f) => &f.headers,
                _ => unreachable!(),
            };
            if receivable(headers, version) {
                prop_assert_eq!(outcome, Ok(frame.clone()));
            } else {
                match outcome {
                    Err(DecodeError::Stream { stream_id, status, cause: FrameError::HeaderBlock(_), .. }) => {
                        prop_assert_eq!(Some(stream_id), frame.stream_id());
                        prop_assert_eq!(status, RstStatus::ProtocolError);
                    }
                    other => {
                        return Err(TestCaseError::fail(format!("{frame:?} gave {other:?}")))
                    }
                }
            }
        }
    }
}

/// (d) A control frame header declaring 2^24 - 1 bytes, over the 64 KiB
/// default limit, is a session error (ControlFrameTooLarge) as soon as the
/// 8-byte header is there: nothing is reserved for the payload, and the
/// error stays. Checked for SETTINGS and the other defined types.
#[test]
fn oversized_control_frame_fails_at_once_without_buffering() {
    for version in Version::ALL {
        for kind in [4u16, 1, 2, 3, 6, 7, 8] {
            let mut buf = BytesMut::with_capacity(16);
            buf.put_slice(&control_head(version.wire_number(), kind, 0, 0x00ff_ffff));
            let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
            let (result, peak) = peak_during(|| decoder.decode(&mut buf));
            let expected = session_error(FrameError::ControlFrameTooLarge {
                length: 0x00ff_ffff,
                max: 64 * 1024,
            });
            assert_eq!(result, Err(expected.clone()), "{version} type {kind}");
            assert!(buf.capacity() <= 16, "buffer grew to {}", buf.capacity());
            assert!(peak < 4096, "{version} type {kind}: allocated {peak} bytes");
            buf.put_slice(&[0u8; 1024]);
            assert_eq!(decoder.decode(&mut buf), Err(expected));
        }
    }
}

/// (d) Within the limit, a control frame is buffered whole, but the buffer
/// reserved for it is bounded by the limit (plus the header), not by
/// anything larger the peer might claim.
#[test]
fn control_frame_at_the_limit_reserves_only_its_size() {
    let limit = 64 * 1024;
    let mut buf = BytesMut::new();
    buf.put_slice(&control_head(3, 4, 0, limit));
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let cap = buf.capacity();
    assert!(
        cap >= 8 + limit as usize && cap <= 2 * (8 + limit as usize),
        "{cap}"
    );
}

/// Bytes `offset..offset + len` (len at most 64 KiB) of an endless pattern
/// whose period, 251, is prime, so no power-of-two shift of it matches.
fn pattern(offset: usize, len: usize) -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let all = PATTERN.get_or_init(|| (0..251 + 64 * 1024).map(|i| (i % 251) as u8).collect());
    &all[offset % 251..offset % 251 + len]
}

/// (d) A DATA frame declaring 16 MiB - 1, fed 1 KiB at a time, is delivered
/// in pieces as it arrives: the read buffer never holds more than a piece
/// plus a chunk (its capacity stays under 64 KiB), the decoder's own
/// allocations stay small, the pieces join to the exact payload, only the
/// last one carries FIN, and the frame after it decodes.
#[test]
fn huge_data_frame_is_delivered_in_bounded_pieces() {
    const LEN: usize = 0x00ff_ffff;
    for version in Version::ALL {
        let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
        let mut buf = BytesMut::new();
        buf.put_slice(&data_head(5, 0x01, LEN as u32));
        let mut offset = 0;
        let mut received = 0;
        let mut pieces = 0;
        let mut fin_seen = false;
        let mut max_capacity = 0;
        let mut tail = ping_bytes(version, 9);
        let ((), peak) = peak_during(|| {
            while offset < LEN {
                let n = 1024.min(LEN - offset);
                buf.extend_from_slice(pattern(offset, n));
                offset += n;
                if offset == LEN {
                    // The next frame arrives in the same read as the end.
                    buf.extend_from_slice(&tail.split());
                }
                max_capacity = max_capacity.max(buf.capacity());
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    match frame {
                        Frame::Data(d) => {
                            assert!(!fin_seen, "a piece after the FIN piece");
                            assert_eq!(d.stream_id, sid(5));
                            assert!(!d.data.is_empty());
                            assert_eq!(&d.data[..], pattern(received, d.data.len()));
                            received += d.data.len();
                            pieces += 1;
                            fin_seen = d.fin;
                            assert_eq!(d.fin, received == LEN, "FIN on the last piece only");
                        }
                        Frame::Ping(p) => {
                            assert!(fin_seen);
                            assert_eq!(p, Ping::new(9));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        });
        assert!(fin_seen && received == LEN);
        assert!(buf.is_empty());
        assert!(pieces > 100, "only {pieces} pieces");
        assert!(
            max_capacity < 64 * 1024,
            "read buffer grew to {max_capacity}"
        );
        assert!(peak < 512 * 1024, "{version}: peak allocation {peak}");
    }
}

/// (d) Frames the decoder skips — an unknown type (0x00ff), a type the
/// version lacks, a control frame of another version, and a SYN_STREAM of
/// another version (refused with UNSUPPORTED_VERSION) — declaring 16 MiB - 1
/// bytes are reported as soon as their header is there and their payload is
/// discarded as it arrives, fed 1 KiB at a time: the buffer never holds
/// more than one chunk, and the frame after them decodes.
#[test]
fn huge_skipped_frames_are_not_buffered() {
    const LEN: u32 = 0x00ff_ffff;
    for version in Version::ALL {
        let wire = version.wire_number();
        let other = if version == Version::V2 { 3 } else { 2 };
        let lacking = if version == Version::V2 { 9 } else { 5 };
        let cases = [
            (
                control_head(wire, 0x00ff, 0, LEN),
                ControlType::Unknown(0x00ff),
                wire,
            ),
            (
                control_head(wire, lacking, 0, LEN),
                ControlType::from_u16(lacking),
                wire,
            ),
            (control_head(other, 6, 0, LEN), ControlType::Ping, other),
            (
                control_head(other, 1, 0, LEN),
                ControlType::SynStream,
                other,
            ),
        ];
        for (head, kind, frame_version) in cases {
            let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
            let mut buf = BytesMut::from(&head[..]);
            // SYN_STREAM's stream id is the first 4 payload bytes.
            buf.put_u32(0x8000_0007);
            let first = decoder.decode(&mut buf);
            if kind == ControlType::SynStream {
                assert_eq!(
                    first,
                    Err(DecodeError::Stream {
                        stream_id: sid(7),
                        status: RstStatus::UnsupportedVersion,
                        kind,
                        cause: FrameError::VersionMismatch {
                            found: other,
                            expected: version,
                        },
                    })
                );
            } else {
                assert_eq!(
                    first,
                    Ok(Some(Frame::Unknown(Unknown {
                        version: frame_version,
                        kind,
                        flags: 0,
                        length: LEN,
                    })))
                );
            }
            let mut left = LEN as usize - buf.len();
            assert_eq!(decoder.decode(&mut buf), Ok(None));
            assert!(buf.is_empty());
            let junk = [0x80u8; 1024];
            let mut max_capacity = 0;
            while left > 0 {
                let n = left.min(junk.len());
                buf.extend_from_slice(&junk[..n]);
                left -= n;
                if left == 0 {
                    buf.extend_from_slice(&ping_bytes(version, 11));
                }
                max_capacity = max_capacity.max(buf.capacity());
                if left > 0 {
                    assert_eq!(decoder.decode(&mut buf), Ok(None));
                    assert!(buf.is_empty());
                }
            }
            assert!(max_capacity <= 4096, "buffer grew to {max_capacity}");
            assert_eq!(
                decoder.decode(&mut buf),
                Ok(Some(Frame::Ping(Ping::new(11)))),
                "{version} {kind:?}"
            );
            assert!(buf.is_empty());
        }
    }
}

/// Compresses header blocks the way a peer would, with flate2 directly: one
/// zlib stream primed with the version's dictionary, SYNC_FLUSH after each
/// block. Independent of the crate's compressor, so the blocks can be
/// anything.
struct PeerCompressor {
    deflate: Compress,
}

impl PeerCompressor {
    fn new(version: Version) -> PeerCompressor {
        let mut deflate = Compress::new(Compression::default(), true);
        let dict = match version {
            Version::V2 => dictionary::V2,
            Version::V3 | Version::V3_1 => dictionary::V3,
        };
        deflate.set_dictionary(dict).unwrap();
        PeerCompressor { deflate }
    }

    fn compress(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() / 64 + 1024);
        let start = self.deflate.total_in();
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let consumed = (self.deflate.total_in() - start) as usize;
            self.deflate
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
                .unwrap();
            let all_in = (self.deflate.total_in() - start) as usize == plain.len();
            if all_in && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// An uncompressed header block holding `size` bytes of 'a' in values: one
/// pair in SPDY/3, pairs of at most 60 000 bytes in SPDY/2 (16-bit lengths).
fn big_plain_block(version: Version, size: usize) -> Vec<u8> {
    let chunk = if version == Version::V2 { 60_000 } else { size };
    let values: Vec<usize> = (0..size.div_ceil(chunk))
        .map(|i| chunk.min(size - i * chunk))
        .collect();
    let put = |out: &mut Vec<u8>, n: usize| {
        if version == Version::V2 {
            out.put_u16(n as u16);
        } else {
            out.put_u32(n as u32);
        }
    };
    let mut out = Vec::with_capacity(size + 16 * values.len() + 8);
    put(&mut out, values.len());
    for (i, &len) in values.iter().enumerate() {
        let name = format!("x-big-{i}");
        put(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        put(&mut out, len);
        out.resize(out.len() + len, b'a');
    }
    out
}

/// A SYN_STREAM frame (stream `id`) carrying an already compressed block.
fn syn_stream_with_block(version: Version, id: u32, block: &[u8]) -> Vec<u8> {
    let mut frame = control_head(version.wire_number(), 1, 0, 10 + block.len() as u32).to_vec();
    frame.put_u32(id);
    frame.put_u32(0);
    frame.put_u16(0);
    frame.extend_from_slice(block);
    frame
}

/// (d) A header block that inflates to 10 MB (10 MB of 'a' in values,
/// about 10 KB compressed, so the frame itself is well within limits) is a
/// decompression bomb: a session error (`HeaderBlockError::Bomb`, since it
/// inflates past four times the 64 KiB limit), reached without the decoder
/// ever holding anything near 10 MB.
#[test]
fn header_bomb_is_a_session_error_without_inflating_it_all() {
    const SIZE: usize = 10_000_000;
    for version in Version::ALL {
        let block = PeerCompressor::new(version).compress(&big_plain_block(version, SIZE));
        let frame = syn_stream_with_block(version, 1, &block);
        assert!(
            frame.len() < 64 * 1024,
            "bomb frame is {} bytes",
            frame.len()
        );
        let mut buf = BytesMut::from(&frame[..]);
        let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
        let (result, peak) = peak_during(|| decoder.decode(&mut buf));
        assert_eq!(
            result,
            Err(session_error(FrameError::HeaderBlock(
                HeaderBlockError::Bomb { limit: 64 * 1024 }
            ))),
            "{version}"
        );
        assert!(peak < 1024 * 1024, "{version}: {peak} bytes allocated");
        assert!(decoder.is_failed());
    }
}

/// (d) A header block that inflates past the limit but not to a bomb
/// (250 000 bytes against 64 KiB, under the 4 x 64 KiB bomb threshold) is
/// inflated to the end with the excess discarded: a stream error
/// FRAME_TOO_LARGE (INTERNAL_ERROR in SPDY/2, which lacks the code) on its
/// stream, allocating less than the inflated size, and the next block of
/// the same zlib stream still decodes.
#[test]
fn oversized_header_block_costs_one_stream() {
    const SIZE: usize = 250_000;
    for version in Version::ALL {
        let mut peer = PeerCompressor::new(version);
        let mut wire =
            syn_stream_with_block(version, 1, &peer.compress(&big_plain_block(version, SIZE)));
        let small = big_plain_block(version, 10);
        wire.extend_from_slice(&syn_stream_with_block(version, 3, &peer.compress(&small)));
        let mut buf = BytesMut::from(&wire[..]);
        let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
        let (result, peak) = peak_during(|| decoder.decode(&mut buf));
        assert_eq!(
            result,
            Err(DecodeError::Stream {
                stream_id: sid(1),
                status: RstStatus::FrameTooLarge.for_version(version),
                kind: ControlType::SynStream,
                cause: FrameError::HeaderBlock(HeaderBlockError::TooLarge { limit: 64 * 1024 }),
            }),
            "{version}"
        );
        assert!(peak < SIZE, "{version}: {peak} bytes allocated");
        let Some(Frame::SynStream(next)) = decoder.decode(&mut buf).unwrap() else {
            panic!("{version}: expected the next SYN_STREAM");
        };
        assert_eq!(next.stream_id, sid(3));
        assert_eq!(
            next.headers.get("x-big-0").map(|v| &v[..]),
            Some(&b"aaaaaaaaaa"[..])
        );
        assert!(buf.is_empty());
    }
}

/// (e) A SETTINGS frame whose entry count is far larger than its length
/// allows (0xffffffff entries in 12 bytes; 2^29 entries, whose byte size
/// wraps to 4 in 32-bit arithmetic, in 4 bytes) is a session error
/// SettingsCountMismatch, decided before anything is allocated for entries.
#[test]
fn settings_count_larger_than_frame_is_a_session_error() {
    for version in Version::ALL {
        for (count, entries) in [
            (0xffff_ffffu32, 1usize),
            (0x2000_0000, 0),
            (0xffff_ffff, 0),
            (2, 1),
        ] {
            let length = 4 + 8 * entries as u32;
            let mut buf = BytesMut::new();
            buf.put_slice(&control_head(version.wire_number(), 4, 0, length));
            buf.put_u32(count);
            buf.put_bytes(0x11, 8 * entries);
            let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
            let (result, peak) = peak_during(|| decoder.decode(&mut buf));
            assert_eq!(
                result,
                Err(session_error(FrameError::SettingsCountMismatch {
                    count,
                    length
                })),
                "{version}, count {count:#x}"
            );
            assert!(peak < 4096, "{version}: {peak} bytes allocated");
        }
    }
}

/// `DecodeLimits::with_max_header_block_len` accepts any size; a limit under
/// 255 bytes must still give a working decoder. A SYN_STREAM whose block
/// (about 30 bytes decompressed) fits a 100-byte limit decodes, and one
/// whose block exceeds it is refused with FRAME_TOO_LARGE, not a panic.
#[test]
fn small_header_block_limit_does_not_panic() {
    for version in Version::ALL {
        let limits = DecodeLimits::default().with_max_header_block_len(100);
        let mut fits = HeaderBlock::new();
        fits.push("x-small", "value");
        let mut too_big = HeaderBlock::new();
        too_big.push("x-big", "v".repeat(200));
        let frames = [
            Frame::SynStream(SynStream::new(sid(1), fits)),
            Frame::SynStream(SynStream::new(sid(3), too_big)),
        ];
        let (wire, _) = encode_all(version, &frames);
        let mut buf = wire.clone();
        let mut decoder = FrameDecoder::new(version, limits);
        let first =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode(&mut buf)));
        let first = first.unwrap_or_else(|_| {
            panic!(
                "{version}: decode panicked with max_header_block_len(100) on a {} byte frame",
                wire.len()
            )
        });
        assert_eq!(first, Ok(Some(frames[0].clone())));
        let second = decoder.decode(&mut buf);
        assert!(
            matches!(
                &second,
                Err(DecodeError::Stream {
                    cause: FrameError::HeaderBlock(HeaderBlockError::TooLarge { limit: 100 }),
                    ..
                })
            ),
            "{second:?}"
        );
    }
}

/// Sanity check of the allocation meter itself, so that the bounds above
/// mean something: allocating 1 MiB shows up as at least 1 MiB.
#[test]
fn allocation_meter_sees_allocations() {
    let (v, peak) = peak_during(|| vec![1u8; 1 << 20]);
    assert!(peak >= 1 << 20);
    drop(v);
    let (bytes, peak) = peak_during(|| Bytes::from(vec![0u8; 4096]));
    assert!(peak >= 4096);
    drop(bytes);
}
