//! Status codes of RST_STREAM and GOAWAY.
//!
//! Both are 32-bit fields on the wire. Codes no spec defines are kept as
//! `Unknown(n)` so that a frame decodes, re-encodes and is reported faithfully
//! instead of failing: deciding what an odd code means is the session's call.

use std::fmt;

use super::Version;

/// Why a stream was reset (RST_STREAM status code).
///
/// Codes 1 to 7 exist in every version; 8 to 11 were added by SPDY/3 (and 10,
/// INVALID_CREDENTIALS, is unused again in 3.1). 0 is not a valid status; a
/// frame carrying it decodes as `Unknown(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RstStatus {
    /// 1: generic error; use a more specific code when there is one.
    ProtocolError,
    /// 2: a frame arrived for a stream that is not active.
    InvalidStream,
    /// 3: the stream was refused before any processing; safe to retry.
    RefusedStream,
    /// 4: the recipient does not support the SPDY version of the stream.
    UnsupportedVersion,
    /// 5: the creator of the stream no longer needs it.
    Cancel,
    /// 6: the implementation failed, not because of the protocol.
    InternalError,
    /// 7: the peer violated flow control.
    FlowControlError,
    /// 8 (SPDY/3): a SYN_REPLY arrived for a stream already replied to.
    StreamInUse,
    /// 9 (SPDY/3): data or SYN_REPLY arrived for a half-closed stream.
    StreamAlreadyClosed,
    /// 10 (SPDY/3 only): the origin has no valid client certificate.
    InvalidCredentials,
    /// 11 (SPDY/3): the frame was larger than the implementation supports.
    FrameTooLarge,
    /// Any other value, including the invalid 0.
    Unknown(u32),
}

impl RstStatus {
    /// The code on the wire.
    pub const fn to_u32(self) -> u32 {
        match self {
            RstStatus::ProtocolError => 1,
            RstStatus::InvalidStream => 2,
            RstStatus::RefusedStream => 3,
            RstStatus::UnsupportedVersion => 4,
            RstStatus::Cancel => 5,
            RstStatus::InternalError => 6,
            RstStatus::FlowControlError => 7,
            RstStatus::StreamInUse => 8,
            RstStatus::StreamAlreadyClosed => 9,
            RstStatus::InvalidCredentials => 10,
            RstStatus::FrameTooLarge => 11,
            RstStatus::Unknown(n) => n,
        }
    }

    /// The status for a wire code.
    pub const fn from_u32(n: u32) -> RstStatus {
        match n {
            1 => RstStatus::ProtocolError,
            2 => RstStatus::InvalidStream,
            3 => RstStatus::RefusedStream,
            4 => RstStatus::UnsupportedVersion,
            5 => RstStatus::Cancel,
            6 => RstStatus::InternalError,
            7 => RstStatus::FlowControlError,
            8 => RstStatus::StreamInUse,
            9 => RstStatus::StreamAlreadyClosed,
            10 => RstStatus::InvalidCredentials,
            11 => RstStatus::FrameTooLarge,
            n => RstStatus::Unknown(n),
        }
    }

    /// The closest status that `version` defines.
    ///
    /// SPDY/2 knows only codes 1 to 7. Its spec answers a second SYN_REPLY or
    /// SYN_STREAM with PROTOCOL_ERROR, which is what STREAM_IN_USE and
    /// STREAM_ALREADY_CLOSED become; a frame too large or a credential problem
    /// is not the peer's protocol fault, so those become INTERNAL_ERROR.
    /// Unknown codes pass through unchanged.
    pub const fn for_version(self, version: Version) -> RstStatus {
        match (version, self) {
            (Version::V2, RstStatus::StreamInUse | RstStatus::StreamAlreadyClosed) => {
                RstStatus::ProtocolError
            }
            (Version::V2, RstStatus::InvalidCredentials | RstStatus::FrameTooLarge) => {
                RstStatus::InternalError
            }
            (_, status) => status,
        }
    }

    /// The spec's name for the code, e.g. `"REFUSED_STREAM"`.
    pub const fn name(self) -> &'static str {
        match self {
            RstStatus::ProtocolError => "PROTOCOL_ERROR",
            RstStatus::InvalidStream => "INVALID_STREAM",
            RstStatus::RefusedStream => "REFUSED_STREAM",
            RstStatus::UnsupportedVersion => "UNSUPPORTED_VERSION",
            RstStatus::Cancel => "CANCEL",
            RstStatus::InternalError => "INTERNAL_ERROR",
            RstStatus::FlowControlError => "FLOW_CONTROL_ERROR",
            RstStatus::StreamInUse => "STREAM_IN_USE",
            RstStatus::StreamAlreadyClosed => "STREAM_ALREADY_CLOSED",
            RstStatus::InvalidCredentials => "INVALID_CREDENTIALS",
            RstStatus::FrameTooLarge => "FRAME_TOO_LARGE",
            RstStatus::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RstStatus::Unknown(n) => write!(f, "unknown status {n}"),
            known => f.write_str(known.name()),
        }
    }
}

impl From<u32> for RstStatus {
    fn from(n: u32) -> RstStatus {
        RstStatus::from_u32(n)
    }
}

impl From<RstStatus> for u32 {
    fn from(status: RstStatus) -> u32 {
        status.to_u32()
    }
}

/// Why a session is going away (GOAWAY status code, SPDY/3 and 3.1).
///
/// SPDY/2's GOAWAY has no status field: it decodes as [`GoAwayStatus::Ok`]
/// and the status is not written when encoding for SPDY/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoAwayStatus {
    /// 0: a normal teardown.
    Ok,
    /// 1: generic protocol error.
    ProtocolError,
    /// 2: the implementation failed internally.
    InternalError,
    /// Any other value. (Some peers send codes the spec never defined, such as
    /// a flow-control code; they are kept, not rejected.)
    Unknown(u32),
}

impl GoAwayStatus {
    /// The code on the wire.
    pub const fn to_u32(self) -> u32 {
        match self {
            GoAwayStatus::Ok => 0,
            GoAwayStatus::ProtocolError => 1,
            GoAwayStatus::InternalError => 2,
            GoAwayStatus::Unknown(n) => n,
        }
    }

    /// The status for a wire code.
    pub const fn from_u32(n: u32) -> GoAwayStatus {
        match n {
            0 => GoAwayStatus::Ok,
            1 => GoAwayStatus::ProtocolError,
            2 => GoAwayStatus::InternalError,
            n => GoAwayStatus::Unknown(n),
        }
    }

    /// The spec's name for the code, e.g. `"PROTOCOL_ERROR"`.
    pub const fn name(self) -> &'static str {
        match self {
            GoAwayStatus::Ok => "OK",
            GoAwayStatus::ProtocolError => "PROTOCOL_ERROR",
            GoAwayStatus::InternalError => "INTERNAL_ERROR",
            GoAwayStatus::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for GoAwayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GoAwayStatus::Unknown(n) => write!(f, "unknown status {n}"),
            known => f.write_str(known.name()),
        }
    }
}

impl From<u32> for GoAwayStatus {
    fn from(n: u32) -> GoAwayStatus {
        GoAwayStatus::from_u32(n)
    }
}

impl From<GoAwayStatus> for u32 {
    fn from(status: GoAwayStatus) -> u32 {
        status.to_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for n in 0..64 {
            assert_eq!(RstStatus::from_u32(n).to_u32(), n);
            assert_eq!(GoAwayStatus::from_u32(n).to_u32(), n);
        }
        assert_eq!(RstStatus::from_u32(u32::MAX).to_u32(), u32::MAX);
    }

    #[test]
    fn v2_has_only_codes_one_to_seven() {
        for n in 1..=11 {
            let status = RstStatus::from_u32(n).for_version(Version::V2);
            assert!((1..=7).contains(&status.to_u32()), "{n} -> {status}");
            assert_eq!(RstStatus::from_u32(n).for_version(Version::V3).to_u32(), n);
        }
    }

    #[test]
    fn display_uses_spec_names() {
        assert_eq!(RstStatus::RefusedStream.to_string(), "REFUSED_STREAM");
        assert_eq!(RstStatus::Unknown(0).to_string(), "unknown status 0");
        assert_eq!(GoAwayStatus::Ok.to_string(), "OK");
    }
}
