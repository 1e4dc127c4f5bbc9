//! The waits a server puts on its clients, as command-line flags shared by
//! `spdy serve` and the public side of `spdy proxy`.
//!
//! Each bounds how long a client that stops half-way (or never starts)
//! holds a connection; the defaults are those of `spdy::server`, no looser
//! than nginx's.

use std::time::Duration;

use spdy::server;

/// Parses `500ms`, `30s`, `2m`; `0` or `0s` turns a wait off.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m)"))
}

/// `None` for a zero duration: the wait is off.
fn on(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Timeouts {
    /// How long a client may take over the TLS handshake.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    handshake_timeout: Duration,
    /// How long a new connection may take to send its first SPDY frame.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    first_frame_timeout: Duration,
    /// How long a frame may stay half-received without progress.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    frame_timeout: Duration,
    /// How long a session with no request open is kept (GOAWAY, then
    /// close); 0 keeps it.
    #[arg(long, value_name = "DURATION", default_value = "75s", value_parser = duration)]
    idle_timeout: Duration,
    /// PING a client silent for this long, and drop it if the answer does
    /// not come within 20 s; 0 turns keepalive off.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    keepalive: Duration,
    /// Reset a response the client accepts no bytes of for this long; 0
    /// waits forever.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    send_timeout: Duration,
    /// Reset a request whose body the client stops sending for this long;
    /// 0 waits forever.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    recv_timeout: Duration,
}

impl Timeouts {
    /// The SPDY server settings with these waits.
    pub(crate) fn server(&self) -> server::Builder {
        let mut config = server::default_config()
            .with_first_frame_timeout(on(self.first_frame_timeout))
            .with_frame_timeout(on(self.frame_timeout))
            .with_idle_timeout(on(self.idle_timeout));
        config = match on(self.keepalive) {
            Some(idle) => config.with_keepalive(idle, server::DEFAULT_KEEPALIVE_TIMEOUT),
            None => config.without_keepalive(),
        };
        server::Builder::new()
            .config(config)
            .send_timeout(on(self.send_timeout))
            .recv_timeout(on(self.recv_timeout))
    }

    /// The TLS handshake's limit.
    pub(crate) fn handshake(&self) -> Duration {
        // A zero limit would refuse everyone: "off" means a day here.
        on(self.handshake_timeout).unwrap_or(Duration::from_secs(24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("75s"), Ok(Duration::from_secs(75)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert!(duration("soon").is_err());
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "5", "s", "-1s", "99999999999999999h"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(on(Duration::ZERO), None);
    }
}
