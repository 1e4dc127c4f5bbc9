use std::fmt;

/// A 31-bit stream identifier.
///
/// The top bit of every stream-id field on the wire is reserved ("X" in the
/// diagrams); the specs say to ignore it, so [`StreamId::from_wire`] masks it
/// off. Streams opened by a client are odd, by a server even; 0 means "no
/// stream" (an unassociated SYN_STREAM, or the session in a SPDY/3.1
/// WINDOW_UPDATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StreamId(u32);

impl StreamId {
    /// Stream 0: no stream, or the whole session.
    pub const ZERO: StreamId = StreamId(0);
    /// The largest stream id, 2^31 - 1.
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// A stream id, or `None` if `id` does not fit in 31 bits.
    pub const fn new(id: u32) -> Option<StreamId> {
        if id <= StreamId::MAX.0 {
            Some(StreamId(id))
        } else {
            None
        }
    }

    /// The stream id in a wire field, ignoring the reserved top bit.
    pub const fn from_wire(word: u32) -> StreamId {
        StreamId(word & StreamId::MAX.0)
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Whether this is stream 0.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether a client opened this stream (odd ids).
    pub const fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }

    /// Whether a server opened this stream (even, non-zero ids).
    pub const fn is_server_initiated(self) -> bool {
        self.0 != 0 && self.0 % 2 == 0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<StreamId> for u32 {
    fn from(id: StreamId) -> u32 {
        id.0
    }
}

impl TryFrom<u32> for StreamId {
    type Error = StreamIdTooLarge;

    fn try_from(id: u32) -> Result<StreamId, StreamIdTooLarge> {
        StreamId::new(id).ok_or(StreamIdTooLarge(id))
    }
}

/// The error for a stream id that needs more than 31 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream id {0} does not fit in 31 bits")]
pub struct StreamIdTooLarge(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bit_is_ignored_on_the_wire() {
        assert_eq!(StreamId::from_wire(0x8000_0005), StreamId::new(5).unwrap());
        assert_eq!(StreamId::new(0x8000_0000), None);
        assert!(StreamId::try_from(0xffff_ffff).is_err());
    }

    #[test]
    fn parity() {
        let one = StreamId::new(1).unwrap();
        let two = StreamId::new(2).unwrap();
        assert!(one.is_client_initiated() && !one.is_server_initiated());
        assert!(two.is_server_initiated() && !two.is_client_initiated());
        assert!(!StreamId::ZERO.is_client_initiated() && !StreamId::ZERO.is_server_initiated());
    }
}
