use std::io;
use std::sync::Arc;

use spdy_proto::session::{SessionError, StreamError, UserError};

/// Everything that can go wrong on a SPDY connection or one of its streams.
///
/// It says precisely what happened: a reset (with its status and who sent
/// it), a stream the peer did not process (safe to retry), a protocol error
/// that ended the session, or the connection itself failing.
#[derive(Debug, Clone, thiserror::Error)]
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

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}
