//! The reverse tunnel's conventions, shared by `spdy proxy` and
//! `spdy origin`.
//!
//! An origin (a home or media server behind NAT) dials the proxy's tunnel
//! port and sends an HTTP/1.1 upgrade to SPDY/3.1 for [`TUNNEL_PATH`], with
//! its name in [`NAME_HEADER`] and the shared secret as
//! `Authorization: Bearer TOKEN`. After the 101 the roles are reversed
//! from who dialed: the proxy is the SPDY client and sends the public
//! clients' requests down the tunnel; the origin is the SPDY server and
//! answers them. Many requests share the tunnel, each a SPDY stream with
//! its own flow control, and a public client that goes away resets its
//! stream (RST_STREAM CANCEL) so that the origin stops sending.

use std::time::Duration;

use http::header::{self, HeaderName};

/// The target of the origin's upgrade request.
pub(crate) const TUNNEL_PATH: &str = "/.spdy-tunnel";
/// The header naming the origin.
pub(crate) const NAME_HEADER: &str = "x-spdy-tunnel-name";
/// The environment variable both commands read the secret from.
pub(crate) const TOKEN_ENV: &str = "SPDY_TUNNEL_TOKEN";
/// The name of an origin that gives none.
pub(crate) const DEFAULT_NAME: &str = "default";

/// The first wait before an origin dials again, doubled at each failure
/// up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Streams the proxy may have open on one tunnel: public requests in
/// flight (each client address is held to far fewer, so that one cannot
/// take them all).
pub(crate) const MAX_STREAMS: u32 = 256;
/// Each stream's receive window: what a response may have in flight
/// before its client reads (512 KiB keeps a video stream going over a
/// link of 50 ms round trip at about 10 MB/s).
pub(crate) const STREAM_WINDOW: u32 = 512 * 1024;
/// The session's receive window covers every stream's at once: a client
/// that stops reading holds its stream's window, and with a smaller
/// session window a few such clients would stall every other stream of
/// the tunnel. It is also the memory bound of a tunnel's responses at the
/// proxy (128 MiB).
pub(crate) const SESSION_WINDOW: u32 = MAX_STREAMS * STREAM_WINDOW;
/// A silent tunnel is pinged after this, and dropped if the ping is not
/// answered in [`KEEPALIVE_TIMEOUT`]: NAT boxes forget idle connections
/// without a word, and neither end would notice otherwise.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// A tunnel that lived this long has worked: the next failure starts the
/// backoff again from [`MIN_BACKOFF`].
pub(crate) const STABLE: Duration = Duration::from_secs(10);

/// The session settings of both ends of a tunnel.
pub(crate) fn session_config() -> spdy::Config {
    spdy::Config::default()
        .with_max_concurrent_streams(MAX_STREAMS)
        .with_initial_window(STREAM_WINDOW)
        .with_session_window(SESSION_WINDOW)
        .with_keepalive(KEEPALIVE_IDLE, KEEPALIVE_TIMEOUT)
}

/// Resets the origin accepts from the proxy before it calls them abuse:
/// ten times the library's default (1,000 per 10 s).
///
/// The rapid-reset limit guards a server against a client that opens and
/// resets streams to make it start work beyond MAX_CONCURRENT_STREAMS. On
/// a tunnel the client is the proxy, an authenticated peer that honours
/// the stream limit and resets a stream only when a public client leaves
/// (and admits each client address to a bounded share of the streams):
/// its resets are its users' cancels, at a rate bounded by how fast
/// users can start requests, and a tunnel closed for them would cut every
/// other user's transfer. A runaway proxy still meets a limit.
pub(crate) const ORIGIN_PEER_RESETS: spdy::proto::session::RateLimit =
    spdy::proto::session::RateLimit::new(10_000, Duration::from_secs(10));

/// The origin's end of a tunnel: [`session_config`] with the higher reset
/// limit of [`ORIGIN_PEER_RESETS`].
pub(crate) fn origin_session_config() -> spdy::Config {
    session_config().with_peer_reset_rate(ORIGIN_PEER_RESETS)
}

/// Removes the headers that belong to one HTTP/1.1 hop: those `Connection`
/// names, and RFC 9110's list (7.6.1). `Trailer` stays: it announces
/// trailers end to end.
pub(crate) fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Origin names are DNS labels (the proxy routes by the first label of
/// `Host`): 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with
/// `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `presented` is the expected secret, compared in constant time
/// (no early exit at the first difference).
pub(crate) fn token_matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        difference |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["default", "media", "a", "home-1", &"x".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Media", "-a", "a-", "a.b", "a b", &"x".repeat(64), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-secret"),
            ("x-secret", "s"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x-checksum"),
            ("x-kept", "k"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["trailer", "x-kept"]);
    }

    #[test]
    fn tokens() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secret", "secreT"));
        assert!(!token_matches("secret", "secret2"));
        assert!(!token_matches("secret", "secre"));
        assert!(!token_matches("secret", ""));
        assert!(token_matches("", ""));
    }
}
