use bytes::BytesMut;

use super::head::ControlType;
use super::{encode_with_block, read_u32, EncodeError, FrameError, StreamId, Version, FLAG_FIN};
use crate::header_block::{parse_block, HeaderBlock, HeaderCompressor, HeaderDecompressor};

/// SYN_STREAM's FLAG_UNIDIRECTIONAL: the recipient starts half-closed and
/// never sends on the stream (used for server push).
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// SYN_STREAM (type 1): opens a stream.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       1       |
/// +---------+-------+---------------+
/// | Flags(8)| Length (24)           |
/// +-+-------+-----------------------+
/// |X|       Stream-ID (31)          |
/// +-+-------------------------------+
/// |X| Associated-To-Stream-ID (31)  |
/// +---+-----+--------+--------------+
/// |Pri| Unused | Slot |             |   SPDY/3: Pri 3 bits, Unused 5, Slot 8
/// +---+--------------+              |   SPDY/2: Pri 2 bits, Unused 14
/// | Name/value header block ...     |
/// ```
///
/// Flags: FLAG_FIN (0x01), FLAG_UNIDIRECTIONAL (0x02); others are ignored.
///
/// `priority` is the raw wire value: 0..=3 in SPDY/2, 0..=7 in SPDY/3 and
/// 3.1. SPDY/3 defines 0 as the highest priority. The SPDY/2 draft says 0 is
/// the *lowest*, but deployed SPDY/2 implementations (Chromium, node-spdy)
/// treat 0 as the highest in both versions; this type keeps the number and
/// leaves its meaning to the scheduler.
///
/// `slot` is SPDY/3's CREDENTIAL slot (0 = none); SPDY/3.1 leaves the byte
/// unused and SPDY/2 has no such field (it decodes as 0 and is not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynStream {
    /// The new stream's id.
    pub stream_id: StreamId,
    /// The stream this one is associated to (server push), or 0.
    pub associated_to: StreamId,
    /// Wire priority (see the type's docs for the range and direction).
    pub priority: u8,
    /// CREDENTIAL slot (SPDY/3 only).
    pub slot: u8,
    /// FLAG_FIN: the sender sends nothing after this frame.
    pub fin: bool,
    /// FLAG_UNIDIRECTIONAL: the recipient will not send on this stream.
    pub unidirectional: bool,
    /// The headers.
    pub headers: HeaderBlock,
}

impl SynStream {
    /// A SYN_STREAM with no association, priority 0, slot 0 and no flags.
    pub fn new(stream_id: StreamId, headers: HeaderBlock) -> SynStream {
        SynStream {
            stream_id,
            associated_to: StreamId::ZERO,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers,
        }
    }

    /// Highest priority number valid in `version` (3 in SPDY/2, 7 later).
    pub const fn lowest_priority(version: Version) -> u8 {
        if version.is_v2() {
            3
        } else {
            7
        }
    }

    pub(crate) fn decode(
        version: Version,
        flags: u8,
        payload: &[u8],
        headers: &mut HeaderDecompressor,
    ) -> Result<SynStream, FrameError> {
        let (Some(id), Some(assoc), Some(&pri_byte), Some(&slot_byte)) = (
            read_u32(payload, 0),
            read_u32(payload, 4),
            payload.get(8),
            payload.get(9),
        ) else {
            // The fixed part is 10 bytes; the block adds at least a few more.
            return Err(FrameError::BadLength {
                kind: ControlType::SynStream,
                length: payload.len() as u32,
                expected: "at least 10",
            });
        };
        // Inflate before looking at the block: the zlib stream must advance
        // whatever the block turns out to hold.
        let plain = headers.decompress(&payload[10..])?;
        let headers = parse_block(plain, version)?;
        let (priority, slot) = if version.is_v2() {
            (pri_byte >> 6, 0)
        } else {
            (pri_byte >> 5, slot_byte)
        };
        Ok(SynStream {
            stream_id: StreamId::from_wire(id),
            associated_to: StreamId::from_wire(assoc),
            priority,
            slot,
            fin: flags & FLAG_FIN != 0,
            unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
            headers,
        })
    }

    pub(crate) fn encode(
        &self,
        version: Version,
        compressor: &mut HeaderCompressor,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.priority > Self::lowest_priority(version) {
            return Err(EncodeError::PriorityOutOfRange {
                priority: self.priority,
                version,
            });
        }
        let mut fixed = [0u8; 10];
        fixed[..4].copy_from_slice(&self.stream_id.value().to_be_bytes());
        fixed[4..8].copy_from_slice(&self.associated_to.value().to_be_bytes());
        if version.is_v2() {
            fixed[8] = self.priority << 6;
        } else {
            fixed[8] = self.priority << 5;
            fixed[9] = self.slot;
        }
        let mut flags = 0;
        if self.fin {
            flags |= FLAG_FIN;
        }
        if self.unidirectional {
            flags |= FLAG_UNIDIRECTIONAL;
        }
        encode_with_block(
            version,
            ControlType::SynStream,
            flags,
            &fixed,
            &self.headers,
            compressor,
            dst,
        )
    }
}
