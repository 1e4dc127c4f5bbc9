use bytes::BufMut;

use super::head::{ControlType, Head};
use super::{read_u32, FrameError, RstStatus, StreamId, Version};

/// RST_STREAM (type 3): ends a stream abnormally.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       3       |
/// +---------+-------+---------------+
/// | Flags(8)| 8 (length)            |
/// +-+-------+-----------------------+
/// |X|       Stream-ID (31)          |
/// +-+-------------------------------+
/// |          Status code            |
/// ```
///
/// Same layout in every version. RST_STREAM defines no flags (the spec says
/// they must be 0; non-zero bits are ignored). A status of 0 is invalid per
/// spec but decodes as [`RstStatus::Unknown(0)`](RstStatus::Unknown): the
/// session decides what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStream {
    /// The stream being reset.
    pub stream_id: StreamId,
    /// Why.
    pub status: RstStatus,
}

impl RstStream {
    /// A RST_STREAM frame.
    pub const fn new(stream_id: StreamId, status: RstStatus) -> RstStream {
        RstStream { stream_id, status }
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<RstStream, FrameError> {
        // "For RST_STREAM control frames, this value is always 8."
        match (read_u32(payload, 0), read_u32(payload, 4)) {
            (Some(id), Some(status)) if payload.len() == 8 => Ok(RstStream {
                stream_id: StreamId::from_wire(id),
                status: RstStatus::from_u32(status),
            }),
            _ => Err(FrameError::BadLength {
                kind: ControlType::RstStream,
                length: payload.len() as u32,
                expected: "8",
            }),
        }
    }

    pub(crate) fn encode<B: BufMut>(&self, version: Version, dst: &mut B) {
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::RstStream,
            flags: 0,
            length: 8,
        }
        .encode(dst);
        dst.put_u32(self.stream_id.value());
        dst.put_u32(self.status.to_u32());
    }
}
