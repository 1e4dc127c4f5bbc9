/// What is wrong with a name/value header block.
///
/// Decoding errors about the block's *content* (names, values, counts) are
/// stream errors: the compressed bytes were fully processed, so the shared
/// zlib context is intact and only the one stream is reset with
/// PROTOCOL_ERROR. Errors about the *compression* itself break the context
/// for every later frame and end the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderBlockError {
    /// The zlib stream is corrupt or uses the wrong dictionary. Session error.
    #[error("header block decompression failed: {0}")]
    Decompress(String),
    /// The compressor failed; its stream state is lost.
    #[error("header block compression failed: {0}")]
    Compress(String),
    /// The decompressed block is larger than the configured limit. The whole
    /// compressed block was still inflated (and the excess discarded) so the
    /// session goes on; the stream is refused with FRAME_TOO_LARGE.
    #[error("decompressed header block is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit on the decompressed size.
        limit: usize,
    },
    /// The block inflated past several times the limit: a decompression bomb.
    /// Inflating the rest just to keep the zlib context in step would cost
    /// unbounded CPU, so the session ends instead.
    #[error("header block inflates far beyond the limit of {limit} bytes")]
    Bomb {
        /// The configured limit on the decompressed size.
        limit: usize,
    },
    /// A count or length points past the end of the decompressed block.
    /// Session error (see [`breaks_session`](Self::breaks_session)).
    #[error("header block is truncated")]
    Truncated,
    /// Bytes remain after the last name/value pair the count announced.
    /// Session error (see [`breaks_session`](Self::breaks_session)).
    #[error("{0} bytes after the last name/value pair")]
    TrailingBytes(usize),
    /// "The length of each name must be greater than zero."
    #[error("header name is empty")]
    EmptyName,
    /// Names are octets "excluding 0".
    #[error("header name {0:?} contains a NUL byte")]
    NulInName(String),
    /// "Header names ... must be all lower case."
    #[error("header name {0:?} is not lower case")]
    UppercaseName(String),
    /// "Duplicate header names are not allowed."
    #[error("header name {0:?} appears twice")]
    DuplicateName(String),
    /// SPDY/2: "The length of each name and value must be greater than zero."
    #[error("value of header {0:?} is empty (SPDY/2 forbids empty values)")]
    EmptyValue(String),
    /// A value that starts or ends with NUL, or has two NULs in a row (values
    /// are NUL-separated lists of non-empty parts).
    #[error("value of header {0:?} has a misplaced NUL separator")]
    BadNul(String),
    /// SPDY/2 counts and lengths are 16 bits; this one does not fit.
    #[error("{what} of {len} does not fit the 16-bit SPDY/2 field")]
    TooLongForV2 {
        /// Which field.
        what: &'static str,
        /// The value that does not fit.
        len: usize,
    },
    /// A SPDY/3 count or length exceeds the 32-bit field.
    #[error("{what} of {len} does not fit a 32-bit field")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// The value that does not fit.
        len: usize,
    },
}

impl HeaderBlockError {
    /// Whether the error leaves the shared compression context unusable, so
    /// that the session, not just one stream, must end.
    ///
    /// A block whose counts and lengths do not match its bytes (`Truncated`,
    /// `TrailingBytes`) counts too: it is what a compression stream out of
    /// step with the peer's looks like, and every later block would be
    /// misread (SPDY/3 2.4.1: a session error is any error "which corrupts
    /// the session compression state"). Names and values that break the
    /// spec's rules in a well-formed block stay stream errors, as 2.6.10
    /// demands ("MUST issue a stream error").
    pub fn breaks_session(&self) -> bool {
        matches!(
            self,
            HeaderBlockError::Decompress(_)
                | HeaderBlockError::Compress(_)
                | HeaderBlockError::Bomb { .. }
                | HeaderBlockError::Truncated
                | HeaderBlockError::TrailingBytes(_)
        )
    }
}

/// A short printable form of a header name for error messages.
pub(crate) fn printable(name: &[u8]) -> String {
    const MAX: usize = 64;
    let mut s = String::from_utf8_lossy(&name[..name.len().min(MAX)]).into_owned();
    if name.len() > MAX {
        s.push('…');
    }
    s
}
