use std::fmt;

use super::stalls::Stall;
use crate::codec::DecodeError;
use crate::frame::{FrameError, GoAwayStatus, RstStatus, StreamId};

/// Which side started something (a reset, a session close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This endpoint: the application, or the session on its behalf.
    Local,
    /// The peer.
    Remote,
}

/// A rule of the specs the peer broke, found above the wire layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// 2.3.2: "0 is not a valid Stream-ID."
    #[error("SYN_STREAM on stream 0")]
    StreamIdZero,
    /// 2.3.2: clients open odd streams, servers even ones.
    #[error("peer opened stream {0} with our parity")]
    WrongParity(StreamId),
    /// 2.3.2: "If an endpoint receives a SYN_STREAM with a stream id which is
    /// less than any previously received SYN_STREAM, it MUST issue a session
    /// error".
    #[error("stream id {id} is not above the last one the peer opened ({last})")]
    StreamIdNotIncreasing {
        /// The id received.
        id: StreamId,
        /// The highest id seen before.
        last: StreamId,
    },
    /// 3.3.2: "If a client receives a server push stream with stream-id 0, it
    /// MUST issue a session error"; likewise a client may not push.
    #[error("push stream {0} is invalid (no association, or pushed by a client)")]
    InvalidPush(StreamId),
    /// 3.1 section 2.6.8: the session window may never exceed 2^31 - 1.
    #[error("session flow-control window overflow")]
    SessionWindowOverflow,
    /// The peer sent more DATA than the session window allowed.
    #[error("peer sent beyond the session flow-control window")]
    SessionWindowExceeded,
    /// A SETTINGS value outside its range (an initial window above 2^31 - 1).
    #[error("SETTINGS_INITIAL_WINDOW_SIZE of {0} exceeds 2^31 - 1")]
    BadInitialWindow(u32),
    /// A frame that only the other role may send.
    #[error("{0}")]
    WrongRole(&'static str),
    /// The peer's first frame carries a version we do not speak (or, for a
    /// session of fixed version, not the one we speak).
    #[error("first frame carries unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    /// The first frame on a connection whose version had to be detected was
    /// a DATA frame, which carries no version.
    #[error("connection starts with a DATA frame; cannot detect the version")]
    NoVersion,
}

/// A limit against abusive peers that was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flood {
    /// Too many streams cancelled by the peer before we answered them, or
    /// refused or reset by us because of the peer, in a period (rapid
    /// reset, CVE-2023-44487).
    Resets,
    /// Too many PINGs (CVE-2019-9512).
    Pings,
    /// Too many SETTINGS frames (CVE-2019-9515).
    Settings,
    /// Too many empty frames (CVE-2019-9518).
    EmptyFrames,
    /// Too many tiny DATA frames or WINDOW_UPDATEs (CVE-2019-9511).
    SmallFrames,
    /// The peer does not read the control frames we owe it
    /// (CVE-2019-9514, -9517).
    PendingControl,
    /// Too many frames we had to process and drop: for streams we reset,
    /// or new streams after our GOAWAY.
    IgnoredFrames,
    /// Too many header-block bytes inflated for frames we then dropped.
    IgnoredHeaderBytes,
}

impl fmt::Display for Flood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flood::Resets => "too many stream resets",
            Flood::Pings => "too many PING frames",
            Flood::Settings => "too many SETTINGS frames",
            Flood::EmptyFrames => "too many empty frames",
            Flood::SmallFrames => "too many tiny DATA or WINDOW_UPDATE frames",
            Flood::PendingControl => "peer does not read the control frames it is owed",
            Flood::IgnoredFrames => "too many frames for streams already reset",
            Flood::IgnoredHeaderBytes => "too many header bytes inflated for streams already reset",
        })
    }
}

/// Why a session ended in error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A frame could not be decoded (the wire layer's session errors).
    #[error("malformed input: {0}")]
    Frame(FrameError),
    /// The peer broke a rule of the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
    /// The peer exceeded one of our abuse limits.
    #[error("peer exceeded a limit: {0}")]
    Flood(Flood),
    /// The keepalive PING was not answered in time.
    #[error("keepalive PING unanswered")]
    KeepaliveTimeout,
    /// The peer stopped half-way (see [`Config::with_frame_timeout`] and
    /// [`Config::with_first_frame_timeout`]).
    ///
    /// [`Config::with_frame_timeout`]: super::Config::with_frame_timeout
    /// [`Config::with_first_frame_timeout`]: super::Config::with_first_frame_timeout
    #[error("peer stalled: {0}")]
    Stalled(Stall),
    /// Our own header compressor failed (its stream state is lost).
    #[error("header compression failed: {0}")]
    Compression(String),
}

impl SessionError {
    /// The GOAWAY status this error is reported with.
    pub fn goaway_status(&self) -> GoAwayStatus {
        match self {
            SessionError::Compression(_) => GoAwayStatus::InternalError,
            _ => GoAwayStatus::ProtocolError,
        }
    }

    pub(crate) fn from_decode(err: DecodeError) -> SessionError {
        SessionError::Frame(err.cause().clone())
    }
}

/// Why a stream ended without completing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Reset with RST_STREAM.
    #[error("stream reset by {} with {status}", if *.initiator == Initiator::Local { "us" } else { "the peer" })]
    Reset {
        /// The status sent or received.
        status: RstStatus,
        /// Who reset it.
        initiator: Initiator,
    },
    /// The peer did not process the stream: it answered REFUSED_STREAM, or
    /// its GOAWAY named a last good stream below this one, or our own queue
    /// was cut short by GOAWAY. Safe to retry on another session.
    #[error("stream refused by the peer before any processing (safe to retry)")]
    Refused,
    /// The session ended before the stream did.
    #[error("session closed before the stream finished")]
    SessionClosed,
    /// We had data to send on the stream and the peer's window for it
    /// (its stream window, or the SPDY/3.1 session window) stayed at zero
    /// with no WINDOW_UPDATE for
    /// [`Config::with_window_stall_timeout`](super::Config::with_window_stall_timeout).
    /// A peer that never sends one does no flow control (Kubernetes'
    /// spdystream), or speaks another version than we do (a SPDY/3.1-only
    /// server spoken to as SPDY/3). We reset the stream with CANCEL.
    #[error(
        "the peer opened no send window for {waited:?} while data waited: it may not do \
         flow control (try Config::with_peer_flow_control(false), the compatible mode) \
         or may not speak this SPDY version (try another one, e.g. 3.1)"
    )]
    WindowStalled {
        /// How long the window stayed shut.
        waited: std::time::Duration,
    },
}

impl StreamError {
    /// Whether the request can be retried without risk of doing it twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StreamError::Refused)
    }
}

/// A call the session cannot carry out. These are the caller's mistakes or
/// states it should have waited out, never the peer's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No such stream (never opened, or closed and forgotten).
    #[error("unknown stream {0}")]
    UnknownStream(StreamId),
    /// Our side of the stream is already closed (FIN sent, reset, or a
    /// unidirectional stream the peer opened).
    #[error("stream {0} is closed for sending")]
    SendClosed(StreamId),
    /// The send buffer cannot take this much; wait for
    /// [`Event::Writable`](super::Event::Writable).
    #[error("stream {0} send buffer is full")]
    BufferFull(StreamId),
    /// A reply to a stream we opened, or a second reply.
    #[error("stream {0} cannot be replied to")]
    CannotReply(StreamId),
    /// Only a server can push, onto an open stream the client opened.
    #[error("cannot push: {0}")]
    CannotPush(&'static str),
    /// The session is going away or closed; no new streams.
    #[error("session is closing")]
    Closing,
    /// All 2^31 stream ids of our parity are used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    /// Too many streams are already waiting for the peer's concurrency limit.
    #[error("too many streams waiting to open")]
    TooManyPending,
    /// The version is not known yet (a server still detecting it).
    #[error("SPDY version not yet known")]
    VersionUnknown,
    /// The headers break a rule of the version (see the wrapped error).
    #[error("invalid headers: {0}")]
    InvalidHeaders(crate::header_block::HeaderBlockError),
    /// Too many of our PINGs await an answer.
    #[error("too many PINGs outstanding")]
    TooManyPings,
    /// A priority outside the version's range.
    #[error("priority {0} is out of range")]
    BadPriority(u8),
}
