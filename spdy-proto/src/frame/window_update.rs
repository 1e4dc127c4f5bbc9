use bytes::BufMut;

use super::head::{ControlType, Head};
use super::{read_u32, EncodeError, FrameError, StreamId, Version};

/// WINDOW_UPDATE (type 9, SPDY/3 and 3.1): flow-control credit.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       9       |
/// +---------+-------+---------------+
/// | 0 flags | 8 (length)            |
/// +-+-------+-----------------------+
/// |X|     Stream-ID (31)            |
/// +-+-------------------------------+
/// |X|  Delta-Window-Size (31)       |
/// ```
///
/// The receiver may send `delta` more bytes of DATA on the stream. In SPDY/3.1
/// stream 0 means the session-wide window. "The legal range for this field is
/// 1 to 2^31 - 1": a delta of 0 is rejected when decoding. SPDY/2 defines no
/// flow control; its type 9 is an unknown frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUpdate {
    /// The stream, or 0 for the session window (SPDY/3.1).
    pub stream_id: StreamId,
    /// Additional bytes the receiver may send (1 to 2^31 - 1).
    pub delta: u32,
}

impl WindowUpdate {
    /// A WINDOW_UPDATE frame.
    pub const fn new(stream_id: StreamId, delta: u32) -> WindowUpdate {
        WindowUpdate { stream_id, delta }
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<WindowUpdate, FrameError> {
        // "The length field is always 8 for this frame."
        let (Some(id), Some(delta)) = (read_u32(payload, 0), read_u32(payload, 4)) else {
            return Err(bad_length(payload));
        };
        if payload.len() != 8 {
            return Err(bad_length(payload));
        }
        let delta = delta & 0x7fff_ffff;
        if delta == 0 {
            return Err(FrameError::ZeroWindowDelta);
        }
        Ok(WindowUpdate {
            stream_id: StreamId::from_wire(id),
            delta,
        })
    }

    pub(crate) fn encode<B: BufMut>(
        &self,
        version: Version,
        dst: &mut B,
    ) -> Result<(), EncodeError> {
        if self.delta == 0 || self.delta > 0x7fff_ffff {
            return Err(EncodeError::WindowDeltaOutOfRange(self.delta));
        }
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::WindowUpdate,
            flags: 0,
            length: 8,
        }
        .encode(dst);
        dst.put_u32(self.stream_id.value());
        dst.put_u32(self.delta);
        Ok(())
    }
}

fn bad_length(payload: &[u8]) -> FrameError {
    FrameError::BadLength {
        kind: ControlType::WindowUpdate,
        length: payload.len() as u32,
        expected: "8",
    }
}
