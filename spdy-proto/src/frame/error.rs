use super::{ControlType, Version};
use crate::header_block::HeaderBlockError;

/// What is wrong with a frame that could not be decoded.
///
/// This says *what* is wrong; whether the answer is a RST_STREAM or a GOAWAY
/// is decided in one place, [`FrameDecoder`](crate::FrameDecoder), and
/// reported as a [`DecodeError`](crate::DecodeError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A control frame's length does not fit its type.
    #[error("{kind:?} frame with length {length}, expected {expected}")]
    BadLength {
        /// The frame type.
        kind: ControlType,
        /// The length field.
        length: u32,
        /// What the spec allows, in words.
        expected: &'static str,
    },
    /// A control frame is longer than this decoder accepts. (The specs let an
    /// implementation limit this, but require at least 8192 bytes.)
    #[error("control frame of {length} bytes is larger than the limit of {max}")]
    ControlFrameTooLarge {
        /// The length field.
        length: u32,
        /// The configured limit.
        max: u32,
    },
    /// A control frame carries a different version from the session's.
    #[error("control frame has version {found}, but the session speaks SPDY/{expected}")]
    VersionMismatch {
        /// The version field of the frame.
        found: u16,
        /// The session's version.
        expected: Version,
    },
    /// A DATA frame names stream 0, which no stream ever has.
    #[error("DATA frame on stream 0")]
    DataOnStreamZero,
    /// A WINDOW_UPDATE's delta is 0; SPDY/3 allows 1 to 2^31 - 1.
    #[error("WINDOW_UPDATE with a delta of 0")]
    ZeroWindowDelta,
    /// A SETTINGS frame's entry count does not match its length.
    #[error("SETTINGS frame says {count} entries but its length is {length}")]
    SettingsCountMismatch {
        /// The number-of-entries field.
        count: u32,
        /// The length field.
        length: u32,
    },
    /// A CREDENTIAL frame whose proof or certificates run past its end.
    #[error("malformed CREDENTIAL frame")]
    BadCredential,
    /// The name/value header block is malformed.
    #[error(transparent)]
    HeaderBlock(#[from] HeaderBlockError),
    /// An earlier session error broke the decoder (typically the shared zlib
    /// context); the session must end.
    #[error("decoder unusable after an earlier session error")]
    Poisoned,
}

/// Why a frame could not be encoded.
///
/// Only values the wire cannot carry (or that the spec forbids in a header
/// block) fail; the encoder does not judge stream states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The payload does not fit the 24-bit length field.
    #[error("frame payload of {length} bytes exceeds the 24-bit length field")]
    PayloadTooLarge {
        /// Bytes the payload would need.
        length: usize,
    },
    /// The frame type does not exist in the encoder's version.
    #[error("{kind:?} frames do not exist in SPDY/{version}")]
    NotInVersion {
        /// The frame type.
        kind: ControlType,
        /// The encoder's version.
        version: Version,
    },
    /// A priority beyond the version's range (0..=3 in SPDY/2, 0..=7 later).
    #[error("priority {priority} is out of range for SPDY/{version}")]
    PriorityOutOfRange {
        /// The priority given.
        priority: u8,
        /// The encoder's version.
        version: Version,
    },
    /// A SETTINGS id needs more than 24 bits.
    #[error("SETTINGS id {0} does not fit in 24 bits")]
    SettingIdTooLarge(u32),
    /// A delta of 0 or above 2^31 - 1 in a WINDOW_UPDATE.
    #[error("WINDOW_UPDATE delta {0} is outside 1..=2^31-1")]
    WindowDeltaOutOfRange(u32),
    /// The header block is invalid, or the compressor failed.
    #[error(transparent)]
    HeaderBlock(#[from] HeaderBlockError),
}
