//! PING bookkeeping: our outstanding pings, round-trip times, keepalive.
//!
//! SPDY/3 section 2.6.5: a client's pings are odd, a server's even. "If a
//! server receives an even numbered PING which it did not initiate, it must
//! ignore the PING. If a client receives an odd numbered PING which it did
//! not initiate, it must ignore the PING." A ping of the peer's parity is
//! echoed back unchanged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Role;

/// Pings of ours that may await an answer at once.
const MAX_OUTSTANDING: usize = 64;

#[derive(Debug)]
pub(crate) struct PingState {
    parity: u32,
    next_id: u32,
    outstanding: VecDeque<(u32, Instant)>,
    keepalive: Option<(Duration, Duration)>,
    last_activity: Option<Instant>,
    keepalive_sent: Option<Instant>,
}

/// What a timer expiry calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    None,
    SendPing(u32),
    Dead,
}

impl PingState {
    pub(crate) fn new(role: Role, keepalive: Option<(Duration, Duration)>) -> PingState {
        let parity = match role {
            Role::Client => 1,
            Role::Server => 0,
        };
        PingState {
            parity,
            next_id: if parity == 1 { 1 } else { 2 },
            outstanding: VecDeque::new(),
            keepalive,
            last_activity: None,
            keepalive_sent: None,
        }
    }

    /// Whether `id` has our parity (so it is an answer, or to be ignored).
    pub(crate) fn is_ours(&self, id: u32) -> bool {
        id % 2 == self.parity
    }

    /// Allocates an id for a new ping sent at `now`, or `None` if too many
    /// await an answer. Ids wrap, as the spec allows once all are used.
    pub(crate) fn start(&mut self, now: Instant) -> Option<u32> {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(2);
        if self.next_id == 0 || self.next_id % 2 != self.parity {
            self.next_id = if self.parity == 1 { 1 } else { 2 };
        }
        self.outstanding.push_back((id, now));
        Some(id)
    }

    /// An answer to one of ours: its round-trip time, or `None` if we did
    /// not send it (to be ignored).
    pub(crate) fn on_pong(&mut self, id: u32, now: Instant) -> Option<Duration> {
        let at = self.outstanding.iter().position(|&(i, _)| i == id)?;
        let (_, sent) = self.outstanding.remove(at)?;
        Some(now.saturating_duration_since(sent))
    }

    /// Anything arrived from the peer: the connection is alive.
    pub(crate) fn on_activity(&mut self, now: Instant) {
        self.last_activity = Some(now);
        self.keepalive_sent = None;
    }

    /// Starts the idle clock if nothing has yet.
    pub(crate) fn touch(&mut self, now: Instant) {
        if self.last_activity.is_none() {
            self.last_activity = Some(now);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let (idle, timeout) = self.keepalive?;
        // A deadline too far to represent is no deadline.
        match self.keepalive_sent {
            Some(sent) => sent.checked_add(timeout),
            None => self.last_activity?.checked_add(idle),
        }
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Timeout {
        let Some(deadline) = self.next_deadline() else {
            return Timeout::None;
        };
        if now < deadline {
            return Timeout::None;
        }
        if self.keepalive_sent.is_some() {
            return Timeout::Dead;
        }
        self.keepalive_sent = Some(now);
        // The keepalive ping always goes: make room if the application has
        // many of its own outstanding.
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        match self.start(now) {
            Some(id) => Timeout::SendPing(id),
            None => Timeout::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_role_parity_and_wrap() {
        let now = Instant::now();
        let mut client = PingState::new(Role::Client, None);
        let mut server = PingState::new(Role::Server, None);
        assert_eq!(client.start(now), Some(1));
        assert_eq!(client.start(now), Some(3));
        assert_eq!(server.start(now), Some(2));
        assert!(client.is_ours(5) && !client.is_ours(4));
        assert!(server.is_ours(4) && !server.is_ours(5));
        client.next_id = u32::MAX;
        assert_eq!(client.start(now), Some(u32::MAX));
        assert_eq!(client.start(now), Some(1));
    }

    #[test]
    fn pong_reports_rtt_once() {
        let t0 = Instant::now();
        let mut p = PingState::new(Role::Client, None);
        let id = p.start(t0).unwrap();
        assert_eq!(
            p.on_pong(id, t0 + Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert_eq!(p.on_pong(id, t0), None);
        assert_eq!(p.on_pong(99, t0), None);
    }

    #[test]
    fn keepalive_pings_when_idle_then_gives_up() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(10);
        let timeout = Duration::from_secs(5);
        let mut p = PingState::new(Role::Server, Some((idle, timeout)));
        assert_eq!(p.next_deadline(), None);
        p.touch(t0);
        assert_eq!(p.next_deadline(), Some(t0 + idle));
        assert_eq!(p.on_timeout(t0 + Duration::from_secs(9)), Timeout::None);
        assert_eq!(p.on_timeout(t0 + idle), Timeout::SendPing(2));
        assert_eq!(p.next_deadline(), Some(t0 + idle + timeout));
        assert_eq!(p.on_timeout(t0 + idle + timeout), Timeout::Dead);
        // An answer (any traffic) in time re-arms the idle clock instead.
        p.on_activity(t0 + idle + timeout);
        assert_eq!(p.next_deadline(), Some(t0 + idle + timeout + idle));
    }
}
