//! Bytes to frames and back, with the session's two header compression
//! streams.
//!
//! [`FrameDecoder`] reads frames out of a growing buffer and classifies every
//! malformed input as a stream error or a session error ([`DecodeError`]).
//! [`FrameEncoder`] writes frames; DATA payloads can be handed out without a
//! copy ([`EncodedData`]).

mod decoder;
mod encoder;
mod error;

pub use crate::frame::EncodeError;
pub use decoder::{DecodeLimits, FrameDecoder, MIN_CONTROL_FRAME_LEN};
pub use encoder::{EncodedData, FrameEncoder};
pub use error::DecodeError;
