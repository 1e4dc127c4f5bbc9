use bytes::BytesMut;

use super::head::ControlType;
use super::{encode_with_block, read_u32, EncodeError, FrameError, StreamId, Version, FLAG_FIN};
use crate::header_block::{parse_block, HeaderBlock, HeaderCompressor, HeaderDecompressor};

/// SYN_REPLY (type 2): the recipient of a SYN_STREAM accepts the stream.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       2       |
/// +---------+-------+---------------+
/// | Flags(8)| Length (24)           |
/// +-+-------+-----------------------+
/// |X|       Stream-ID (31)          |
/// +-+---------------+---------------+
/// | Unused (16)     |               |   SPDY/2 only
/// +-----------------+               |
/// | Name/value header block ...     |
/// ```
///
/// Flags: FLAG_FIN (0x01); others are ignored. SPDY/2 has 16 unused bits
/// after the stream id, which SPDY/3 removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynReply {
    /// The stream being accepted.
    pub stream_id: StreamId,
    /// FLAG_FIN: the sender sends nothing after this frame.
    pub fin: bool,
    /// The headers.
    pub headers: HeaderBlock,
}

impl SynReply {
    /// A SYN_REPLY without FIN.
    pub fn new(stream_id: StreamId, headers: HeaderBlock) -> SynReply {
        SynReply {
            stream_id,
            fin: false,
            headers,
        }
    }

    pub(crate) fn decode(
        version: Version,
        flags: u8,
        payload: &[u8],
        headers: &mut HeaderDecompressor,
    ) -> Result<SynReply, FrameError> {
        let (stream_id, fin, headers) =
            decode_stream_block(ControlType::SynReply, version, flags, payload, headers)?;
        Ok(SynReply {
            stream_id,
            fin,
            headers,
        })
    }

    pub(crate) fn encode(
        &self,
        version: Version,
        compressor: &mut HeaderCompressor,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let kind = ControlType::SynReply;
        encode_stream_block(
            kind,
            version,
            self.stream_id,
            self.fin,
            &self.headers,
            compressor,
            dst,
        )
    }
}

/// Decodes the layout SYN_REPLY and HEADERS share: a stream id (plus
/// SPDY/2's 16 unused bits), FLAG_FIN, and a header block.
pub(crate) fn decode_stream_block(
    kind: ControlType,
    version: Version,
    flags: u8,
    payload: &[u8],
    headers: &mut HeaderDecompressor,
) -> Result<(StreamId, bool, HeaderBlock), FrameError> {
    let (stream_id, block) = split_stream_and_block(kind, version, payload)?;
    // Inflate first: the zlib stream must advance whatever the block holds.
    let plain = headers.decompress(block)?;
    Ok((
        stream_id,
        flags & FLAG_FIN != 0,
        parse_block(plain, version)?,
    ))
}

/// Encodes the layout SYN_REPLY and HEADERS share.
pub(crate) fn encode_stream_block(
    kind: ControlType,
    version: Version,
    stream_id: StreamId,
    fin: bool,
    headers: &HeaderBlock,
    compressor: &mut HeaderCompressor,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let flags = if fin { FLAG_FIN } else { 0 };
    let fixed = stream_fixed_part(stream_id);
    encode_with_block(
        version,
        kind,
        flags,
        fixed.as_slice(version),
        headers,
        compressor,
        dst,
    )
}

/// The fixed part shared by SYN_REPLY and HEADERS: the stream id, plus
/// SPDY/2's 16 unused bits.
pub(crate) struct StreamFixedPart([u8; 6]);

impl StreamFixedPart {
    pub(crate) fn as_slice(&self, version: Version) -> &[u8] {
        if version.is_v2() {
            &self.0
        } else {
            &self.0[..4]
        }
    }
}

pub(crate) fn stream_fixed_part(stream_id: StreamId) -> StreamFixedPart {
    let mut fixed = [0u8; 6];
    fixed[..4].copy_from_slice(&stream_id.value().to_be_bytes());
    StreamFixedPart(fixed)
}

/// Splits a SYN_REPLY or HEADERS payload into its stream id and compressed
/// block.
pub(crate) fn split_stream_and_block(
    kind: ControlType,
    version: Version,
    payload: &[u8],
) -> Result<(StreamId, &[u8]), FrameError> {
    let fixed = if version.is_v2() { 6 } else { 4 };
    match read_u32(payload, 0) {
        Some(id) if payload.len() >= fixed => Ok((StreamId::from_wire(id), &payload[fixed..])),
        _ => Err(FrameError::BadLength {
            kind,
            length: payload.len() as u32,
            expected: if version.is_v2() {
                "at least 6"
            } else {
                "at least 4"
            },
        }),
    }
}
