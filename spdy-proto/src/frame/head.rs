//! The 8-byte header that starts every SPDY frame.
//!
//! ```text
//! control frame                        data frame
//! +-+---------------+---------------+  +-+-------------------------------+
//! |1| Version (15)  | Type (16)     |  |0| Stream-ID (31)                |
//! +---------+-------+---------------+  +---------+---------------------+
//! | Flags(8)| Length (24)           |  | Flags(8)| Length (24)           |
//! +---------+-----------------------+  +---------+-----------------------+
//! ```
//!
//! The layout is the same in SPDY/2, 3 and 3.1. Length counts the bytes after
//! the header, so a frame is at most 8 + 2^24 - 1 bytes.

use bytes::BufMut;

use super::StreamId;

/// Size of the common frame header in bytes.
pub const HEAD_LEN: usize = 8;

/// The largest value the 24-bit length field can hold.
pub const MAX_PAYLOAD_LEN: u32 = 0x00ff_ffff;

const CONTROL_BIT: u8 = 0x80;

/// The type field of a control frame.
///
/// Types a version does not define are kept as [`ControlType::Unknown`] with
/// their number, because the specs tell a receiver to ignore them, not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// 1: opens a stream.
    SynStream,
    /// 2: accepts a stream.
    SynReply,
    /// 3: resets a stream.
    RstStream,
    /// 4: session settings.
    Settings,
    /// 5: no operation (SPDY/2 only).
    Noop,
    /// 6: ping.
    Ping,
    /// 7: stop creating streams.
    GoAway,
    /// 8: extra headers on a stream.
    Headers,
    /// 9: flow-control credit (SPDY/3 and later).
    WindowUpdate,
    /// 10: client certificate (SPDY/3).
    Credential,
    /// Any other type number.
    Unknown(u16),
}

impl ControlType {
    /// The type number on the wire.
    pub const fn to_u16(self) -> u16 {
        match self {
            ControlType::SynStream => 1,
            ControlType::SynReply => 2,
            ControlType::RstStream => 3,
            ControlType::Settings => 4,
            ControlType::Noop => 5,
            ControlType::Ping => 6,
            ControlType::GoAway => 7,
            ControlType::Headers => 8,
            ControlType::WindowUpdate => 9,
            ControlType::Credential => 10,
            ControlType::Unknown(n) => n,
        }
    }

    /// The type for a wire number. Numbers outside 1..=10 become `Unknown`;
    /// whether a known number is defined in a given version is decided by the
    /// codec.
    pub const fn from_u16(n: u16) -> ControlType {
        match n {
            1 => ControlType::SynStream,
            2 => ControlType::SynReply,
            3 => ControlType::RstStream,
            4 => ControlType::Settings,
            5 => ControlType::Noop,
            6 => ControlType::Ping,
            7 => ControlType::GoAway,
            8 => ControlType::Headers,
            9 => ControlType::WindowUpdate,
            10 => ControlType::Credential,
            n => ControlType::Unknown(n),
        }
    }
}

/// A parsed common frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Control bit set: a control frame.
    Control {
        /// The 15-bit version field.
        version: u16,
        /// The 16-bit type field.
        kind: ControlType,
        /// The flags byte; which bits mean what depends on the type.
        flags: u8,
        /// Bytes after the header.
        length: u32,
    },
    /// Control bit clear: a DATA frame.
    Data {
        /// The 31-bit stream id.
        stream_id: StreamId,
        /// The flags byte (only FLAG_FIN is defined).
        flags: u8,
        /// Bytes of payload after the header.
        length: u32,
    },
}

impl Head {
    /// Parses the first 8 bytes of a frame. Every bit pattern is a valid
    /// header, so this cannot fail; whether the values make sense is checked
    /// by the caller.
    pub fn parse(bytes: &[u8; HEAD_LEN]) -> Head {
        let flags = bytes[4];
        let length = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]);
        if bytes[0] & CONTROL_BIT != 0 {
            Head::Control {
                version: u16::from_be_bytes([bytes[0] & !CONTROL_BIT, bytes[1]]),
                kind: ControlType::from_u16(u16::from_be_bytes([bytes[2], bytes[3]])),
                flags,
                length,
            }
        } else {
            Head::Data {
                stream_id: StreamId::from_wire(u32::from_be_bytes([
                    bytes[0], bytes[1], bytes[2], bytes[3],
                ])),
                flags,
                length,
            }
        }
    }

    /// The length field: payload bytes after the header.
    pub fn length(&self) -> u32 {
        match *self {
            Head::Control { length, .. } | Head::Data { length, .. } => length,
        }
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        match *self {
            Head::Control { flags, .. } | Head::Data { flags, .. } => flags,
        }
    }

    /// Writes the header. The length is truncated to 24 bits and the version
    /// to 15: encoders check their lengths before they get here.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let (first, flags, length) = match *self {
            Head::Control {
                version,
                kind,
                flags,
                length,
            } => {
                let word = (u32::from(version & 0x7fff) << 16) | u32::from(kind.to_u16());
                (word | (u32::from(CONTROL_BIT) << 24), flags, length)
            }
            Head::Data {
                stream_id,
                flags,
                length,
            } => (stream_id.value(), flags, length),
        };
        dst.put_u32(first);
        dst.put_u32((u32::from(flags) << 24) | (length & MAX_PAYLOAD_LEN));
    }
}

/// The version field of the control frame at the start of `buf`.
///
/// Returns `None` when fewer than 2 bytes are available, and `Some(None)` when
/// the first frame is a DATA frame (which carries no version). A server that
/// accepts every version on a plain connection uses this on the first bytes
/// it receives to pick the version of the session.
pub fn peek_version(buf: &[u8]) -> Option<Option<u16>> {
    match buf {
        [first, second, ..] if first & CONTROL_BIT != 0 => {
            Some(Some(u16::from_be_bytes([first & !CONTROL_BIT, *second])))
        }
        [_, _, ..] => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_head_known_answer() {
        // SYN_STREAM, version 3, flags FIN, length 0x0102 03.
        let bytes = [0x80, 0x03, 0x00, 0x01, 0x01, 0x01, 0x02, 0x03];
        let head = Head::parse(&bytes);
        assert_eq!(
            head,
            Head::Control {
                version: 3,
                kind: ControlType::SynStream,
                flags: 0x01,
                length: 0x010203
            }
        );
        let mut out = Vec::new();
        head.encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn data_head_known_answer_ignores_nothing_but_control_bit() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let head = Head::parse(&bytes);
        assert_eq!(
            head,
            Head::Data {
                stream_id: StreamId::MAX,
                flags: 0xff,
                length: MAX_PAYLOAD_LEN
            }
        );
        let mut out = Vec::new();
        head.encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn unknown_type_keeps_its_number() {
        let head = Head::parse(&[0x80, 0x03, 0xab, 0xcd, 0, 0, 0, 0]);
        assert!(matches!(
            head,
            Head::Control {
                kind: ControlType::Unknown(0xabcd),
                ..
            }
        ));
        for n in 0..=12u16 {
            assert_eq!(ControlType::from_u16(n).to_u16(), n);
        }
    }

    #[test]
    fn peek_version_needs_two_bytes() {
        assert_eq!(peek_version(&[0x80]), None);
        assert_eq!(peek_version(&[0x80, 0x02]), Some(Some(2)));
        assert_eq!(peek_version(&[0x00, 0x00, 0x00, 0x01]), Some(None));
    }
}
