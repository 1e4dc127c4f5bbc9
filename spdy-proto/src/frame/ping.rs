use bytes::BufMut;

use super::head::{ControlType, Head};
use super::{read_u32, FrameError, Version};

/// PING (type 6): measures round-trip time and shows the peer is alive.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       6       |
/// +---------+-------+---------------+
/// | 0 flags | 4 (length)            |
/// +---------+-----------------------+
/// |            32-bit ID            |
/// ```
///
/// The receiver answers with an identical frame. Clients use odd ids and
/// servers even ids, so that a PING is never mistaken for the echo of one's
/// own: the spec says to ignore a PING of one's own parity that one did not
/// send. Those rules belong to the session; this type only carries the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// The ping id.
    pub id: u32,
}

impl Ping {
    /// A PING with this id.
    pub const fn new(id: u32) -> Ping {
        Ping { id }
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Ping, FrameError> {
        // "Length: This frame is always 4 bytes long."
        match read_u32(payload, 0) {
            Some(id) if payload.len() == 4 => Ok(Ping { id }),
            _ => Err(FrameError::BadLength {
                kind: ControlType::Ping,
                length: payload.len() as u32,
                expected: "4",
            }),
        }
    }

    pub(crate) fn encode<B: BufMut>(&self, version: Version, dst: &mut B) {
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::Ping,
            flags: 0,
            length: 4,
        }
        .encode(dst);
        dst.put_u32(self.id);
    }
}
