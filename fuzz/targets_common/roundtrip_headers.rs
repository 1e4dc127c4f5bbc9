//! Builds SYN_STREAM and HEADERS frames from fuzz bytes, encodes them with
//! one `FrameEncoder` and decodes them with its paired `FrameDecoder` (one
//! shared zlib context per direction). Whenever encoding succeeds, decoding
//! must give back the same frame; when it fails, the output is untouched.

use bytes::{Bytes, BytesMut};
use spdy_proto::frame::{Headers, SynStream};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeLimits, Frame, FrameDecoder, FrameEncoder, StreamId, Version};

/// Reads fuzz bytes; past the end it yields zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// A value: short ones are taken from the input; length byte 0xff makes a
/// long run of one byte (up to 128 KiB, past SPDY/2's 16-bit fields).
fn value(input: &mut Input<'_>) -> Vec<u8> {
    match input.u8() {
        0xff => {
            let len = usize::from(input.u16()) * 2;
            vec![input.u8(); len]
        }
        n => input.bytes(usize::from(n)).to_vec(),
    }
}

fn block(input: &mut Input<'_>, sanitize: bool) -> HeaderBlock {
    let count = input.u8() % 32;
    let mut block = HeaderBlock::new();
    for _ in 0..count {
        let len = usize::from(input.u8() % 64);
        let mut name = input.bytes(len).to_vec();
        let mut value = value(input);
        if sanitize {
            // Mostly valid blocks: lower-case names without NUL, and values
            // without NUL, so that more frames get through validation.
            for b in &mut name {
                *b = if *b == 0 {
                    b'x'
                } else {
                    b.to_ascii_lowercase()
                };
            }
            for b in &mut value {
                if *b == 0 {
                    *b = b'-';
                }
            }
        }
        block.push(Bytes::from(name), Bytes::from(value));
    }
    block
}

/// One fuzz input; panics when the contract is broken.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let selector = input.u8();
    let version = match selector & 0b11 {
        0 => Version::V2,
        1 => Version::V3,
        _ => Version::V3_1,
    };
    let sanitize = selector & 0b100 != 0;
    let mut encoder = FrameEncoder::new(version);
    let mut decoder = FrameDecoder::new(
        version,
        DecodeLimits::default()
            .with_max_control_frame_len(u32::MAX)
            .with_max_header_block_len(usize::MAX),
    );

    for _ in 0..16 {
        if input.is_empty() {
            break;
        }
        let flags = input.u8();
        let stream_id = StreamId::from_wire(input.u32());
        let frame = if flags & 1 == 0 {
            let associated_to = StreamId::from_wire(input.u32());
            let priority = input.u8() % 9; // 8 is out of range everywhere
            let slot = input.u8();
            Frame::SynStream(SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                fin: flags & 2 != 0,
                unidirectional: flags & 4 != 0,
                headers: block(&mut input, sanitize),
            })
        } else {
            Frame::Headers(Headers {
                stream_id,
                fin: flags & 2 != 0,
                headers: block(&mut input, sanitize),
            })
        };
        let split = usize::from(input.u16());

        let mut wire = BytesMut::from(&b"prefix"[..]);
        if encoder.encode(&frame, &mut wire).is_err() {
            assert_eq!(&wire[..], b"prefix", "failed encode touched the buffer");
            continue;
        }
        let mut wire = wire.split_off(6);

        // SPDY/2's SYN_STREAM has no slot: it is not written, and reads as 0.
        let mut expected = frame;
        if let (Version::V2, Frame::SynStream(f)) = (version, &mut expected) {
            f.slot = 0;
        }

        // Feed a strict prefix first: the decoder must wait for the rest.
        let split = split % wire.len();
        let rest = wire.split_off(split);
        assert_eq!(
            decoder.decode(&mut wire),
            Ok(None),
            "prefix of {split} bytes"
        );
        wire.unsplit(rest);
        assert_eq!(decoder.decode(&mut wire), Ok(Some(expected)));
        assert!(wire.is_empty(), "{} bytes left after the frame", wire.len());
    }
}
