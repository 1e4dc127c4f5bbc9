use std::io;
use std::sync::Arc;

use spdy_proto::frame::{GoAwayStatus, RstStatus};
use spdy_proto::session::{Initiator, SessionError, StreamError, UserError};

/// Everything that can go wrong on a SPDY connection or one of its streams.
///
/// It says precisely what happened: a reset (with its status and who sent
/// it), a stream the peer did not process (safe to retry), a protocol error
/// that ended the session, or the connection itself failing.
///
/// New kinds may be added: match with a wildcard arm, or better, ask the
/// predicates ([`is_timeout`](Self::is_timeout),
/// [`reset_status`](Self::reset_status), ...), which keep their meaning.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream ended abnormally.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The session ended because of a protocol error (ours to report or
    /// the peer's).
    #[error("session failed: {0}")]
    Session(#[from] SessionError),
    /// A call the session refused.
    #[error(transparent)]
    User(#[from] UserError),
    /// Reading or writing the connection failed.
    #[error("connection I/O failed: {0}")]
    Io(Arc<io::Error>),
    /// The connection closed (the peer hung up, or the session finished)
    /// before the operation completed.
    #[error("connection closed")]
    ConnectionClosed,
    /// Headers that do not map to an HTTP message.
    #[error("bad headers: {0}")]
    Headers(#[from] crate::headers::HeaderError),
    /// A request body whose length differs from its Content-Length (the
    /// server "MUST return a 400").
    #[error("body of {received} bytes does not match content-length {expected}")]
    ContentLength {
        /// The Content-Length header.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// A body read into memory was larger than the limit the caller gave.
    #[error("body larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body the application gave failed while being sent.
    #[error("body failed: {0}")]
    Body(Arc<dyn std::error::Error + Send + Sync>),
    /// The peer took none of a body's data for the send timeout (a reader
    /// that stopped): the stream was reset with CANCEL.
    #[error("the peer accepted no data for {0:?}")]
    SendTimeout(std::time::Duration),
    /// The peer sent none of a body's data for the receive timeout while it
    /// was being read: the stream was reset with CANCEL.
    #[error("the peer sent no data for {0:?}")]
    RecvTimeout(std::time::Duration),
    /// The TLS handshake failed: a certificate not trusted
    /// (`rustls::Error::InvalidCertificate`), an alert from the peer, no
    /// TLS version or cipher suite in common.
    #[error("TLS failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS peer agreed by ALPN to none of the protocols offered: a
    /// server without SPDY, or one that ignores ALPN (NPN, the older
    /// negotiation, is not supported).
    #[error(
        "the TLS peer agreed to none of our protocols by ALPN ({})",
        .negotiated.as_deref().map_or("it selected none".to_owned(), |p| format!("it selected {p:?}"))
    )]
    NoSpdyProtocol {
        /// The protocol the peer selected instead, if any (lossy UTF-8).
        negotiated: Option<String>,
    },
}

impl Error {
    /// Whether the request can safely be sent again on a new connection:
    /// the peer said it did not process the stream.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Stream(e) => e.is_retryable(),
            // Refused before anything was sent: the session was going away.
            Error::User(UserError::Closing) => true,
            _ => false,
        }
    }
}

impl Error {
    /// The RST_STREAM status, if the stream was reset (by either side).
    pub fn reset_status(&self) -> Option<RstStatus> {
        match self {
            Error::Stream(StreamError::Reset { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// Whether the stream was reset, by either side.
    pub fn is_reset(&self) -> bool {
        self.reset_status().is_some()
    }

    /// Whether the peer did it: reset the stream, or broke off the
    /// session (a stream cut by the session's end counts too).
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Error::Stream(StreamError::Reset {
                initiator: Initiator::Remote,
                ..
            }) | Error::Stream(StreamError::SessionClosed)
                | Error::ConnectionClosed
        )
    }

    /// Whether a wait on the peer ran out: a body it stopped reading or
    /// sending, a frame or first frame it never finished, an unanswered
    /// keepalive PING, or an I/O timeout.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::SendTimeout(_) | Error::RecvTimeout(_) => true,
            Error::Session(SessionError::Stalled(_) | SessionError::KeepaliveTimeout) => true,
            Error::Io(e) => e.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// The GOAWAY status, if the session ended in error: the peer broke a
    /// rule or exceeded a limit (the status is what we sent it).
    pub fn go_away_status(&self) -> Option<GoAwayStatus> {
        match self {
            Error::Session(e) => Some(e.goaway_status()),
            _ => None,
        }
    }

    /// Whether the whole connection is gone (so every other stream of it
    /// too), not just this stream.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Session(_)
                | Error::Io(_)
                | Error::ConnectionClosed
                | Error::Stream(StreamError::SessionClosed)
                | Error::Tls(_)
                | Error::NoSpdyProtocol { .. }
        )
    }

    /// Whether this was our caller's mistake (a call the session refused,
    /// a body too large for the limit given, a body that failed), not the
    /// peer's doing.
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Error::User(_) | Error::BodyTooLarge { .. } | Error::Body(_)
        )
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spdy_proto::session::Stall;
    use std::time::Duration;

    #[test]
    fn predicates() {
        let reset = Error::Stream(StreamError::Reset {
            status: RstStatus::Cancel,
            initiator: Initiator::Remote,
        });
        assert_eq!(reset.reset_status(), Some(RstStatus::Cancel));
        assert!(reset.is_reset() && reset.is_remote() && !reset.is_connection_error());
        let ours = Error::Stream(StreamError::Reset {
            status: RstStatus::InternalError,
            initiator: Initiator::Local,
        });
        assert!(ours.is_reset() && !ours.is_remote());

        let stalled = Error::Session(SessionError::Stalled(Stall::PartialFrame));
        assert!(stalled.is_timeout() && stalled.is_connection_error());
        assert_eq!(stalled.go_away_status(), Some(GoAwayStatus::ProtocolError));
        assert!(Error::SendTimeout(Duration::from_secs(1)).is_timeout());
        assert!(Error::from(io::Error::from(io::ErrorKind::TimedOut)).is_timeout());
        assert!(!Error::ConnectionClosed.is_timeout());
        assert_eq!(Error::ConnectionClosed.go_away_status(), None);

        assert!(Error::Stream(StreamError::Refused).is_retryable());
        assert!(Error::User(UserError::Closing).is_user());
        assert!(Error::BodyTooLarge { limit: 1 }.is_user());
        assert!(!reset.is_user());
    }
}
