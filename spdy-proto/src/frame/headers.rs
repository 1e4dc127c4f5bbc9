use bytes::BytesMut;

use super::head::ControlType;
use super::syn_reply::{split_stream_and_block, stream_fixed_part};
use super::{encode_with_block, EncodeError, FrameError, StreamId, Version, FLAG_FIN};
use crate::header_block::{parse_block, HeaderBlock, HeaderCompressor, HeaderDecompressor};

/// HEADERS (type 8): more headers for an open stream, in either direction
/// (trailers, or Kubernetes-style late metadata).
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       8       |
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
/// SPDY/3 defines FLAG_FIN (0x01) on HEADERS. SPDY/2 defines no flags for it;
/// the bit is still read and written here, and a SPDY/2 session should end a
/// stream with an empty DATA frame instead of relying on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// The stream the headers belong to.
    pub stream_id: StreamId,
    /// FLAG_FIN: the sender sends nothing after this frame.
    pub fin: bool,
    /// The headers.
    pub headers: HeaderBlock,
}

impl Headers {
    /// A HEADERS frame without FIN.
    pub fn new(stream_id: StreamId, headers: HeaderBlock) -> Headers {
        Headers {
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
    ) -> Result<Headers, FrameError> {
        let (stream_id, block) = split_stream_and_block(ControlType::Headers, version, payload)?;
        let plain = headers.decompress(block)?;
        Ok(Headers {
            stream_id,
            fin: flags & FLAG_FIN != 0,
            headers: parse_block(plain, version)?,
        })
    }

    pub(crate) fn encode(
        &self,
        version: Version,
        compressor: &mut HeaderCompressor,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let flags = if self.fin { FLAG_FIN } else { 0 };
        let fixed = stream_fixed_part(self.stream_id);
        encode_with_block(
            version,
            ControlType::Headers,
            flags,
            fixed.as_slice(version),
            &self.headers,
            compressor,
            dst,
        )
    }
}
