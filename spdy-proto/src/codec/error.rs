use crate::frame::{ControlType, FrameError, GoAwayStatus, RstStatus, StreamId};

/// A frame that could not be decoded, with what the spec says to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A stream error: send RST_STREAM with `status` on `stream_id` and go on.
    /// The frame has been consumed and the header compression context is
    /// intact, so decoding can continue with the next frame.
    #[error("stream {stream_id}: {cause} (RST_STREAM {status})")]
    Stream {
        /// The stream to reset (never 0).
        stream_id: StreamId,
        /// The status to send (already mapped to one the version defines).
        status: RstStatus,
        /// The frame type that carried the error.
        kind: ControlType,
        /// What was wrong.
        cause: FrameError,
    },
    /// A session error: send GOAWAY with `status` and close the connection.
    /// The decoder stays failed; later calls return the same error.
    #[error("session: {cause} (GOAWAY {status})")]
    Session {
        /// The status to send (SPDY/2's GOAWAY has no status field).
        status: GoAwayStatus,
        /// What was wrong.
        cause: FrameError,
    },
}

impl DecodeError {
    /// What was wrong.
    pub fn cause(&self) -> &FrameError {
        match self {
            DecodeError::Stream { cause, .. } | DecodeError::Session { cause, .. } => cause,
        }
    }

    /// Whether the whole session must end.
    pub fn is_session_error(&self) -> bool {
        matches!(self, DecodeError::Session { .. })
    }
}
