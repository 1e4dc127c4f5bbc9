use bytes::BufMut;

use super::head::{ControlType, Head};
use super::{read_u32, FrameError, GoAwayStatus, StreamId, Version};

/// GOAWAY (type 7): the sender will accept no new streams on this session.
///
/// ```text
/// SPDY/2 (length 4)                   SPDY/3 and 3.1 (length 8)
/// +-+-----------------------------+   +-+-----------------------------+
/// |X| Last-good-stream-ID (31)    |   |X| Last-good-stream-ID (31)    |
/// +-+-----------------------------+   +-+-----------------------------+
///                                     |          Status code          |
///                                     +-------------------------------+
/// ```
///
/// Streams the receiver opened with ids above `last_good_stream_id` were not
/// processed and may be retried on a new session.
///
/// SPDY/2 has no status field: a v2 GOAWAY decodes with
/// [`GoAwayStatus::Ok`], and encoding for v2 leaves the status out, whatever
/// it is. Some v2 implementations wrote the 8-byte v3 layout; a v2 frame of
/// length 8 is accepted and its status read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway {
    /// The highest stream id opened by the receiver that the sender accepted.
    pub last_good_stream_id: StreamId,
    /// Why the session ends (SPDY/3 and later).
    pub status: GoAwayStatus,
}

impl GoAway {
    /// A GOAWAY frame.
    pub const fn new(last_good_stream_id: StreamId, status: GoAwayStatus) -> GoAway {
        GoAway {
            last_good_stream_id,
            status,
        }
    }

    pub(crate) fn decode(version: Version, payload: &[u8]) -> Result<GoAway, FrameError> {
        let bad_length = || FrameError::BadLength {
            kind: ControlType::GoAway,
            length: payload.len() as u32,
            expected: if version.is_v2() { "4 (or 8)" } else { "8" },
        };
        let last_good = read_u32(payload, 0).ok_or_else(bad_length)?;
        let status = match (version, payload.len()) {
            (Version::V2, 4) => GoAwayStatus::Ok,
            (_, 8) => GoAwayStatus::from_u32(read_u32(payload, 4).ok_or_else(bad_length)?),
            _ => return Err(bad_length()),
        };
        Ok(GoAway {
            last_good_stream_id: StreamId::from_wire(last_good),
            status,
        })
    }

    pub(crate) fn encode<B: BufMut>(&self, version: Version, dst: &mut B) {
        let v2 = version.is_v2();
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::GoAway,
            flags: 0,
            length: if v2 { 4 } else { 8 },
        }
        .encode(dst);
        dst.put_u32(self.last_good_stream_id.value());
        if !v2 {
            dst.put_u32(self.status.to_u32());
        }
    }
}
