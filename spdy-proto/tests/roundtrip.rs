//! Round trips: every valid frame of every version, written by one
//! [`FrameEncoder`] and read back by one [`FrameDecoder`], comes back equal,
//! however the bytes are cut on the way.

mod common;

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use spdy_proto::frame::{Frame, Headers, SynReply, SynStream, Version};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};

use common::{
    big_limits, chunk_sizes, data, decode_available, decode_chunked, encode_all, header_name,
    header_value, join_data, join_data_frames, nonzero_stream_id, versioned_frames,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property A: a run of 1 to 19 random valid frames, encoded with one
    /// encoder into one buffer (so header blocks share one compression
    /// context), decodes with one decoder to exactly the same frames in the
    /// same order, consuming every byte.
    #[test]
    fn frames_round_trip_through_one_buffer((version, frames) in versioned_frames(1..20)) {
        let (mut wire, _) = encode_all(version, &frames);
        let mut decoder = FrameDecoder::new(version, big_limits());
        let decoded = decode_available(&mut decoder, &mut wire);
        prop_assert_eq!(&decoded, &frames);
        prop_assert!(wire.is_empty(), "{} bytes left over", wire.len());
        prop_assert!(!decoder.is_failed());
    }

    /// Property B: the same byte stream fed in random-sized chunks (one byte
    /// at a time included) gives the same frames. DATA frames may come out
    /// in several pieces (the piece size is random too); once consecutive
    /// pieces are joined, payloads and FIN flags are those sent (the next
    /// test checks the piece boundaries themselves). Nothing is left over.
    #[test]
    fn frames_round_trip_in_random_chunks(
        (version, frames) in versioned_frames(1..20),
        sizes in chunk_sizes(),
        piece_len in prop_oneof![Just(1usize), 1..64usize, Just(usize::MAX)],
    ) {
        let (wire, _) = encode_all(version, &frames);
        let limits = big_limits().with_data_piece_len(piece_len);
        let (outcomes, left) = decode_chunked(version, limits, &wire, &sizes);
        prop_assert!(left.is_empty(), "{} bytes left over", left.len());
        let mut decoded = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(frame) => decoded.push(frame),
                Err(e) => return Err(TestCaseError::fail(format!("decode error: {e:?}"))),
            }
        }
        let pieces = decoded.iter().filter(|f| matches!(f, Frame::Data(_))).count();
        let sent = frames.iter().filter(|f| matches!(f, Frame::Data(_))).count();
        prop_assert!(pieces >= sent);
        if piece_len == usize::MAX {
            // Never split: the frames themselves come back.
            prop_assert_eq!(&decoded, &frames);
        }
        prop_assert_eq!(join_data_frames(decoded), join_data_frames(frames));
    }

    /// Property B, strict form for DATA: with DATA frames alone, each on its
    /// own stream, the pieces of frame i are exactly the next run of pieces
    /// on its stream; all but the last are non-empty and FIN-less, and their
    /// payloads concatenate to the frame's payload.
    #[test]
    fn data_pieces_concatenate_to_their_frame(
        version in common::version(),
        payloads in vec((common::payload(), any::<bool>()), 1..8),
        sizes in chunk_sizes(),
        piece_len in 1..512usize,
    ) {
        // Distinct consecutive stream ids, so pieces cannot be confused.
        let frames: Vec<Frame> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, (payload, fin))| {
                Frame::Data(spdy_proto::frame::Data::new(common::sid(i as u32 + 1), payload, fin))
            })
            .collect();
        let (wire, _) = encode_all(version, &frames);
        let limits = DecodeLimits::default().with_data_piece_len(piece_len);
        let (outcomes, left) = decode_chunked(version, limits, &wire, &sizes);
        prop_assert!(left.is_empty());
        let mut pieces = outcomes.into_iter().map(|o| match o {
            Ok(Frame::Data(d)) => d,
            other => panic!("expected only DATA, got {other:?}"),
        });
        for frame in &frames {
            let Frame::Data(sent) = frame else { unreachable!() };
            let mut joined = Vec::new();
            loop {
                let piece = pieces.next().expect("a piece for every frame");
                prop_assert_eq!(piece.stream_id, sent.stream_id);
                joined.extend_from_slice(&piece.data);
                if joined.len() == sent.data.len() {
                    prop_assert_eq!(piece.fin, sent.fin);
                    break;
                }
                prop_assert!(!piece.fin, "FIN on a piece that is not the last");
                prop_assert!(!piece.data.is_empty(), "empty piece in the middle of a frame");
            }
            prop_assert_eq!(&joined[..], &sent.data[..]);
        }
        prop_assert!(pieces.next().is_none());
    }
}

/// Header names, each with the values frames may give it.
type Pool = Vec<(Vec<u8>, Vec<Vec<u8>>)>;

/// A pool of header pairs that frames draw from, so that blocks overlap and
/// the shared compression context really is reused across frames.
fn header_pool(version: Version) -> impl Strategy<Value = Pool> {
    vec((header_name(), vec(header_value(version), 1..3)), 3..14).prop_map(|pool| {
        let mut seen = std::collections::BTreeSet::new();
        pool.into_iter()
            .filter(|(name, _)| seen.insert(name.clone()))
            .collect()
    })
}

/// 50 header-carrying frames: kind (0 SYN_STREAM, 1 SYN_REPLY, 2 HEADERS),
/// stream id, FIN, which pool entries to include, which value of each.
fn header_frames(version: Version) -> impl Strategy<Value = (Pool, Vec<Frame>)> {
    let spec = (
        0..3u8,
        nonzero_stream_id(),
        any::<bool>(),
        any::<u16>(),
        any::<u64>(),
        0..=SynStream::lowest_priority(version),
    );
    (header_pool(version), vec(spec, 50)).prop_map(move |(pool, specs)| {
        let frames = specs
            .into_iter()
            .map(|(kind, stream_id, fin, mask, choice, priority)| {
                let mut headers = HeaderBlock::new();
                for (i, (name, values)) in pool.iter().enumerate() {
                    if mask & (1 << (i % 16)) != 0 {
                        let value = &values[(choice >> (i * 4 % 64)) as usize % values.len()];
                        headers.push(name.clone(), value.clone());
                    }
                }
                match kind {
                    0 => {
                        let mut f = SynStream::new(stream_id, headers);
                        f.fin = fin;
                        f.priority = priority;
                        Frame::SynStream(f)
                    }
                    1 => Frame::SynReply(SynReply {
                        stream_id,
                        fin,
                        headers,
                    }),
                    _ => Frame::Headers(Headers {
                        stream_id,
                        fin,
                        headers,
                    }),
                }
            })
            .collect();
        (pool, frames)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Property C: 50 SYN_STREAM / SYN_REPLY / HEADERS frames with
    /// overlapping header sets, all compressed through the sender's one zlib
    /// stream, decode through the receiver's one zlib stream to the same
    /// frames, whether the bytes arrive whole or in chunks. A block sent
    /// twice in a row is smaller the second time: it continues the first
    /// block's zlib stream (no new zlib header) instead of starting afresh.
    #[test]
    fn many_header_blocks_share_one_compression_context(
        (version, (_pool, frames)) in common::version()
            .prop_flat_map(|v| (Just(v), header_frames(v))),
        sizes in chunk_sizes(),
    ) {
        let (mut wire, _) = encode_all(version, &frames);
        let (outcomes, left) = decode_chunked(version, big_limits(), &wire, &sizes);
        prop_assert!(left.is_empty());
        let chunked: Vec<Frame> = outcomes.into_iter().map(|o| o.unwrap()).collect();
        prop_assert_eq!(&chunked, &frames);

        let mut decoder = FrameDecoder::new(version, big_limits());
        prop_assert_eq!(&decode_available(&mut decoder, &mut wire), &frames);

        let twice = [frames[0].clone(), frames[0].clone()];
        let (_, ends) = encode_all(version, &twice);
        prop_assert!(ends[1] - ends[0] < ends[0], "{:?}", ends);
    }
}

/// Checks that `encoded` (an [`EncodedData`](spdy_proto::EncodedData),
/// possibly partly advanced already) holds exactly `expected`, through every
/// `Buf` method a writer may use, advancing in steps of `steps` (cycled).
fn check_encoded_data(mut encoded: spdy_proto::EncodedData, expected: &[u8], steps: &[usize]) {
    assert_eq!(encoded.remaining(), expected.len());

    // chunks_vectored with room for more slices than needed yields both
    // parts (or what is left of them) in order.
    let mut slots = [IoSlice::new(&[]); 4];
    let n = encoded.chunks_vectored(&mut slots);
    assert!(n <= 2);
    let joined: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(joined, expected, "chunks_vectored, 4 slots");
    assert!(slots[..n].iter().all(|s| !s.is_empty()), "empty IoSlice");
    // With one slot: the current chunk.
    let mut one = [IoSlice::new(&[])];
    let n = encoded.chunks_vectored(&mut one);
    if expected.is_empty() {
        assert_eq!(n, 0);
    } else {
        assert_eq!(n, 1);
        assert_eq!(&*one[0], encoded.chunk());
    }
    assert_eq!(encoded.chunks_vectored(&mut []), 0);

    // chunk/advance in steps of the given sizes.
    let mut read = Vec::new();
    let mut steps = steps.iter().cycle();
    while encoded.has_remaining() {
        let chunk = encoded.chunk();
        assert!(!chunk.is_empty(), "empty chunk with bytes remaining");
        let take = (*steps.next().unwrap()).clamp(1, chunk.len());
        read.extend_from_slice(&chunk[..take]);
        encoded.advance(take);
        assert_eq!(encoded.remaining(), expected.len() - read.len());
        // The vectored view agrees with the sequential one at every point.
        let mut slots = [IoSlice::new(&[]); 2];
        let n = encoded.chunks_vectored(&mut slots);
        let rest: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(&rest[..], &expected[read.len()..]);
    }
    assert_eq!(read, expected, "chunk/advance");
    assert!(encoded.chunk().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `encode_data` writes exactly the bytes `encode(&Frame::Data)` writes,
    /// read through `chunk`/`advance`, `chunks_vectored` (at every offset)
    /// and `copy_to_bytes`, and its `head`/`payload` split the frame at the
    /// 8-byte header. The payload is not copied.
    #[test]
    fn encode_data_matches_encode(
        version in common::version(),
        data in data(),
        skip in 0..4200usize,
        steps in vec(1..40usize, 1..6),
    ) {
        let mut encoder = FrameEncoder::new(version);
        let mut wire = BytesMut::new();
        encoder.encode(&Frame::Data(data.clone()), &mut wire).unwrap();

        let encoded = encoder.encode_data(data.clone()).unwrap();
        prop_assert_eq!(&encoded.head()[..], &wire[..8]);
        prop_assert_eq!(&encoded.payload()[..], &wire[8..]);
        // Same allocation: the payload is shared, not copied.
        prop_assert_eq!(encoded.payload().as_ptr(), data.data.as_ptr());

        check_encoded_data(encoded.clone(), &wire, &steps);

        let skip = skip.min(wire.len());
        let mut advanced = encoded.clone();
        advanced.advance(skip);
        check_encoded_data(advanced, &wire[skip..], &steps);

        let mut whole = encoded;
        let bytes: Bytes = whole.copy_to_bytes(wire.len());
        prop_assert_eq!(&bytes[..], &wire[..]);
        prop_assert_eq!(whole.remaining(), 0);

        // And it decodes back to the frame.
        let mut decoder = FrameDecoder::new(version, big_limits());
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Frame::Data(data)));
    }
}

/// A fixed, session-like sequence: a SYN_STREAM, then DATA of growing size
/// on stream 1 interleaved with HEADERS on stream 3 (one compression
/// context), decoded 1 byte, a few bytes and 4 KiB at a time with 64-byte
/// DATA pieces, gives the frames sent once pieces are joined. (A fixed
/// example of property B, so a failure here reads without shrinking.)
#[test]
fn fixed_session_round_trips_in_chunks() {
    for version in Version::ALL {
        let mut get = HeaderBlock::new();
        get.push(":method", "GET");
        get.push(":path", "/");
        get.push("accept", "text/html\0text/plain");
        let mut frames = vec![Frame::SynStream(SynStream::new(
            common::sid(1),
            get.clone(),
        ))];
        for i in 0..20u32 {
            frames.push(Frame::Data(spdy_proto::frame::Data::new(
                common::sid(1),
                vec![i as u8; 100 * i as usize],
                i == 19,
            )));
            let mut more = get.clone();
            more.push("x-i", i.to_string());
            frames.push(Frame::Headers(Headers::new(common::sid(3), more)));
        }
        let (wire, _) = encode_all(version, &frames);
        for sizes in [vec![1], vec![7, 300, 2], vec![4096]] {
            let limits = DecodeLimits::default().with_data_piece_len(64);
            let (outcomes, left) = decode_chunked(version, limits, &wire, &sizes);
            assert!(left.is_empty());
            let joined = join_data(outcomes);
            let expected = join_data(frames.iter().cloned().map(Ok));
            assert_eq!(joined, expected, "{version}, chunks {sizes:?}");
        }
    }
}
