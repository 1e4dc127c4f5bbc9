use bytes::BytesMut;

use super::head::ControlType;
use super::syn_reply::{decode_stream_block, encode_stream_block};
use super::{EncodeError, FrameError, StreamId, Version};
use crate::header_block::{HeaderBlock, HeaderCompressor, HeaderDecompressor};

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
        let (stream_id, fin, headers) =
            decode_stream_block(ControlType::Headers, version, flags, payload, headers)?;
        Ok(Headers {
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
        let kind = ControlType::Headers;
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
