use bytes::Bytes;

use super::head::{Head, HEAD_LEN, MAX_PAYLOAD_LEN};
use super::{EncodeError, StreamId, FLAG_FIN};

/// A DATA frame: a piece of a stream's body.
///
/// ```text
/// +-+-------------------------------+
/// |0|       Stream-ID (31)          |
/// +-+-------+-----------------------+
/// | Flags(8)|  Length (24)          |
/// +---------+-----------------------+
/// |               Data              |
/// ```
///
/// The only flag in every version is FLAG_FIN (0x01); other bits are ignored.
/// A zero-length DATA frame is valid (it is how a stream is ended without a
/// payload). The payload is a `Bytes` slice of the read buffer: decoding does
/// not copy it.
///
/// The [`FrameDecoder`](crate::FrameDecoder) may deliver one large DATA frame
/// as several `Data` values (only the last carries `fin`), so that it never
/// has to hold a whole 16 MiB frame in memory. Flow control counts payload
/// bytes, not frames, so the split is invisible to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The stream the data belongs to (never 0).
    pub stream_id: StreamId,
    /// FLAG_FIN: this is the last frame the sender sends on the stream.
    pub fin: bool,
    /// The payload.
    pub data: Bytes,
}

impl Data {
    /// A DATA frame.
    pub fn new(stream_id: StreamId, data: impl Into<Bytes>, fin: bool) -> Data {
        Data {
            stream_id,
            fin,
            data: data.into(),
        }
    }

    /// The 8-byte frame header for this frame. Written before the payload
    /// (for instance in one vectored write) it forms the whole frame.
    pub fn head(&self) -> Result<[u8; HEAD_LEN], EncodeError> {
        let length = u32::try_from(self.data.len())
            .ok()
            .filter(|&n| n <= MAX_PAYLOAD_LEN)
            .ok_or(EncodeError::PayloadTooLarge {
                length: self.data.len(),
            })?;
        let mut head = [0u8; HEAD_LEN];
        Head::Data {
            stream_id: self.stream_id,
            flags: if self.fin { FLAG_FIN } else { 0 },
            length,
        }
        .encode(&mut &mut head[..]);
        Ok(head)
    }
}
