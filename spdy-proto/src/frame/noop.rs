use bytes::BufMut;

use super::head::{ControlType, Head};
use super::{FrameError, Version};

/// NOOP (type 5, SPDY/2 only): a frame the receiver ignores.
///
/// ```text
/// +-+---------------+---------------+
/// |1| 2             |       5       |
/// +---------+-------+---------------+
/// | 0 flags | 0 (length)            |
/// ```
///
/// SPDY/3 removed it; in a v3 session type 5 is an unknown type (and some v3
/// peers treat it as fatal, so a v3 session must never send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Noop;

impl Noop {
    pub(crate) fn decode(payload: &[u8]) -> Result<Noop, FrameError> {
        // "This frame carries no data, so the length is always 0."
        if payload.is_empty() {
            Ok(Noop)
        } else {
            Err(FrameError::BadLength {
                kind: ControlType::Noop,
                length: payload.len() as u32,
                expected: "0",
            })
        }
    }

    pub(crate) fn encode<B: BufMut>(&self, version: Version, dst: &mut B) {
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::Noop,
            flags: 0,
            length: 0,
        }
        .encode(dst);
    }
}
