//! Feeds arbitrary bytes to one `FrameDecoder`, in chunks of varying sizes,
//! and checks the decoder's documented contract.
//!
//! Input layout: byte 0 selects the version (bits 0-1), the chunking pattern
//! (bits 2-4) and the DATA piece length (bits 5-6); the rest is the wire.

use bytes::BytesMut;
use spdy_proto::frame::head::HEAD_LEN;
use spdy_proto::frame::{Data, GoAwayStatus};
use spdy_proto::{DecodeError, DecodeLimits, Frame, FrameDecoder, FrameEncoder, Version};

const MAX_CONTROL_FRAME_LEN: u32 = 16 * 1024;
const MAX_HEADER_BLOCK_LEN: usize = 16 * 1024;

/// Chunk sizes: fixed ones, plus two patterns that vary per chunk.
fn chunk_len(pattern: u8, index: usize) -> usize {
    const FIB: [usize; 10] = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89];
    match pattern {
        0 => usize::MAX, // everything at once
        1 => 1,
        2 => 7,
        3 => HEAD_LEN,
        4 => 100,
        5 => FIB[index % FIB.len()],
        // A small xorshift sequence: 1..=64.
        6 => {
            let mut x = (index as u32).wrapping_mul(0x9e37_79b9) | 1;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 64) as usize + 1
        }
        _ => 4096,
    }
}

/// The largest chunk `chunk_len` returns for `pattern`, for `len` input bytes.
fn max_chunk(pattern: u8, len: usize) -> usize {
    let max = match pattern {
        0 => usize::MAX,
        1 => 1,
        2 => 7,
        3 => HEAD_LEN,
        4 => 100,
        5 => 89,
        6 => 64,
        _ => 4096,
    };
    max.min(len)
}

/// One fuzz input; panics when the contract is broken.
pub fn run(input: &[u8]) {
    let Some((&selector, wire)) = input.split_first() else {
        return;
    };
    let version = match selector & 0b11 {
        0 => Version::V2,
        1 => Version::V3,
        _ => Version::V3_1,
    };
    let pattern = (selector >> 2) & 0b111;
    let data_piece_len = [1, 7, 512, 16 * 1024][usize::from((selector >> 5) & 0b11)];
    let limits = DecodeLimits::default()
        .with_max_control_frame_len(MAX_CONTROL_FRAME_LEN)
        .with_max_header_block_len(MAX_HEADER_BLOCK_LEN)
        .with_data_piece_len(data_piece_len);
    let mut decoder = FrameDecoder::new(version, limits);
    assert_eq!(decoder.version(), version);
    assert_eq!(decoder.limits(), &limits);

    // What the decoder really promises about the read buffer: when it returns
    // Ok(None) it has taken everything it can, and what is left is less than
    // one whole control frame (at most max_control_frame_len + 8, checked
    // before anything is buffered) or, inside a DATA frame, less than one
    // piece. Capacity is not promised: the decoder only ever reserves up to
    // one whole control frame (after the length check), but `BytesMut` and
    // `Vec` grow by doubling and keep consumed space at the front, so with
    // every reservation asking for at most `max_buffered + chunk` bytes in
    // all, the capacity stays under about 4 times that. It is checked against
    // 8 times: enough to catch a reservation driven by an unchecked 24-bit
    // length field (16 MiB), without asserting the allocator's policy.
    let max_buffered = (HEAD_LEN + MAX_CONTROL_FRAME_LEN as usize).max(data_piece_len);
    let max_capacity = 8 * (max_buffered + max_chunk(pattern, wire.len()));

    // Re-encoding decoded frames: an encoder of the same version, and a
    // decoder paired with it (so the two zlib contexts stay in step).
    let mut encoder = FrameEncoder::new(version);
    let mut redecoder = FrameDecoder::new(
        version,
        DecodeLimits::default()
            .with_max_control_frame_len(u32::MAX)
            .with_max_header_block_len(usize::MAX),
    );
    let mut reencoded = BytesMut::new();

    let mut buf = BytesMut::new();
    let mut session_error: Option<DecodeError> = None;
    let mut rest = wire;
    let mut index = 0;
    while !rest.is_empty() {
        let n = chunk_len(pattern, index).min(rest.len());
        index += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if let Some(first) = &session_error {
            // "every later call returns the same error", whatever it is fed
            // (a caller would close the connection; `buf` is left alone).
            let result = decoder.decode(&mut BytesMut::from(chunk));
            assert_eq!(result.as_ref(), Err(first), "decoder recovered");
            assert!(decoder.is_failed());
            continue;
        }
        buf.extend_from_slice(chunk);

        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(None) => {
                    assert!(!decoder.is_failed());
                    assert!(
                        buf.len() < max_buffered,
                        "Ok(None) with {} bytes left (limit {max_buffered})",
                        buf.len()
                    );
                    break;
                }
                Ok(Some(frame)) => {
                    assert!(!decoder.is_failed());
                    // Every frame takes at least one byte, so the loop ends.
                    assert!(buf.len() < before, "frame without progress: {frame:?}");
                    check_frame(&frame, &mut encoder, &mut redecoder, &mut reencoded);
                }
                Err(err @ DecodeError::Stream { .. }) => {
                    assert!(!decoder.is_failed());
                    assert!(buf.len() < before, "stream error without progress: {err}");
                    let DecodeError::Stream { stream_id, .. } = &err else {
                        unreachable!()
                    };
                    assert!(!stream_id.is_zero(), "stream error on stream 0: {err:?}");
                }
                Err(err @ DecodeError::Session { .. }) => {
                    assert!(decoder.is_failed());
                    assert_eq!(decoder.decode(&mut buf).as_ref(), Err(&err));
                    session_error = Some(err);
                    break;
                }
            }
        }
        assert!(
            buf.capacity() <= max_capacity,
            "buffer capacity {} over {max_capacity}",
            buf.capacity()
        );
    }
    if let Some(first) = session_error {
        // Still failed after more input, and after an empty buffer.
        let mut more = BytesMut::from(&b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
        assert_eq!(decoder.decode(&mut more), Err(first.clone()));
        assert_eq!(decoder.decode(&mut BytesMut::new()), Err(first));
    }
}

fn check_frame(
    frame: &Frame,
    encoder: &mut FrameEncoder,
    redecoder: &mut FrameDecoder,
    reencoded: &mut BytesMut,
) {
    match frame {
        Frame::Data(Data { stream_id, .. }) => {
            assert!(!stream_id.is_zero(), "DATA on stream 0");
        }
        Frame::Unknown(_) => {}
        _ => {
            // Must not panic; may refuse (e.g. an upper-case SPDY/2 name).
            reencoded.clear();
            if encoder.encode(frame, reencoded).is_ok() {
                // What the encoder wrote, its peer reads back as the same
                // frame, except for what the version cannot carry: a SPDY/2
                // GOAWAY has no status (the decoder reads one from an 8-byte
                // v2 GOAWAY, the encoder documents that it leaves it out).
                let mut expected = frame.clone();
                if let (Version::V2, Frame::GoAway(f)) = (encoder.version(), &mut expected) {
                    f.status = GoAwayStatus::Ok;
                }
                let back = redecoder.decode(reencoded);
                assert_eq!(back.as_ref(), Ok(&Some(expected)), "re-encoded {frame:?}");
                assert!(reencoded.is_empty(), "re-encoded frame left bytes");
            }
        }
    }
}
