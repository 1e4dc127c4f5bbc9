use std::fmt;
use std::str::FromStr;

/// The SPDY protocol version of a session.
///
/// SPDY/3 and SPDY/3.1 share the version number 3 on the wire and the same
/// frame layouts; 3.1 only adds session-wide flow control (WINDOW_UPDATE on
/// stream 0) and drops CREDENTIAL. Which of the two a session speaks is agreed
/// out of band (ALPN `spdy/3.1`, an `Upgrade: SPDY/3.1` header, or
/// configuration), never by the frames themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// SPDY draft 2.
    V2,
    /// SPDY draft 3.
    V3,
    /// SPDY draft 3.1.
    V3_1,
}

impl Version {
    /// All versions, oldest first.
    pub const ALL: [Version; 3] = [Version::V2, Version::V3, Version::V3_1];

    /// The number written in the version field of control frames.
    pub const fn wire_number(self) -> u16 {
        match self {
            Version::V2 => 2,
            Version::V3 | Version::V3_1 => 3,
        }
    }

    /// Whether the name/value header block uses 16-bit counts and lengths
    /// (SPDY/2) rather than 32-bit ones (SPDY/3 and 3.1).
    pub(crate) const fn is_v2(self) -> bool {
        matches!(self, Version::V2)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V2 => "2",
            Version::V3 => "3",
            Version::V3_1 => "3.1",
        })
    }
}

/// The error from parsing a [`Version`] out of a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SPDY version {0:?} (expected 2, 3 or 3.1)")]
pub struct ParseVersionError(String);

impl FromStr for Version {
    type Err = ParseVersionError;

    /// Accepts `2`, `3` and `3.1`, optionally prefixed with `spdy/` (the ALPN
    /// spelling) in any case.
    fn from_str(s: &str) -> Result<Version, ParseVersionError> {
        let lower = s.to_ascii_lowercase();
        let bare = lower.strip_prefix("spdy/").unwrap_or(&lower);
        match bare {
            "2" => Ok(Version::V2),
            "3" => Ok(Version::V3),
            "3.1" => Ok(Version::V3_1),
            _ => Err(ParseVersionError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for v in Version::ALL {
            assert_eq!(v.to_string().parse::<Version>(), Ok(v));
        }
        assert_eq!("spdy/3.1".parse::<Version>(), Ok(Version::V3_1));
        assert_eq!("SPDY/2".parse::<Version>(), Ok(Version::V2));
        assert!("4".parse::<Version>().is_err());
    }

    #[test]
    fn v3_and_v3_1_share_a_wire_number() {
        assert_eq!(Version::V2.wire_number(), 2);
        assert_eq!(Version::V3.wire_number(), 3);
        assert_eq!(Version::V3_1.wire_number(), 3);
    }
}
