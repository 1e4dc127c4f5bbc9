//! Deadlines on a peer that stops half-way: before its first frame, in the
//! middle of a frame, or with nothing open for too long.
//!
//! Each costs us a connection (a socket, buffers, a task) and nothing to the
//! peer, so a server facing strangers must not keep them forever. The
//! session has no clock: the times come from the calls that carry `now`,
//! and the clock starts at the first of them.

use std::time::{Duration, Instant};

/// Which wait on the peer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stall {
    /// A server got no complete first frame in time.
    FirstFrame,
    /// A frame was left half-received: its header, or part of its payload,
    /// arrived and the rest did not.
    PartialFrame,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stall::FirstFrame => "no first frame in time",
            Stall::PartialFrame => "a frame was left half-received",
        })
    }
}

/// What a passing deadline calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The peer stalled: the session ends with an error.
    Stalled(Stall),
    /// Nothing open for the idle timeout: a graceful GOAWAY.
    Idle,
}

/// The clocks of [`Stall`] and of the idle timeout.
#[derive(Debug)]
pub(crate) struct Stalls {
    first_frame: Option<Duration>,
    frame: Option<Duration>,
    idle: Option<Duration>,
    /// When the session first saw the time.
    started: Option<Instant>,
    /// When the frame now half-received began (or last made progress).
    partial_since: Option<Instant>,
    /// Since when no stream has been open.
    idle_since: Option<Instant>,
    /// The idle timeout fired already (its GOAWAY is out).
    idle_fired: bool,
}

impl Stalls {
    pub(crate) fn new(
        first_frame: Option<Duration>,
        frame: Option<Duration>,
        idle: Option<Duration>,
    ) -> Stalls {
        Stalls {
            first_frame,
            frame,
            idle,
            started: None,
            partial_since: None,
            idle_since: None,
            idle_fired: false,
        }
    }

    /// Starts the clock at the first time the session is given.
    pub(crate) fn start(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// After input: whether a frame is left half-received, and whether any
    /// frame (or DATA piece) was completed by this input. Progress restarts
    /// the frame clock, so a large DATA frame arriving slowly is not cut;
    /// a control frame is delivered whole, so it must arrive within one
    /// timeout.
    pub(crate) fn on_input(&mut self, now: Instant, partial: bool, progress: bool) {
        self.partial_since = match (partial, progress, self.partial_since) {
            (false, _, _) => None,
            (true, true, _) | (true, false, None) => Some(now),
            (true, false, Some(since)) => Some(since),
        };
    }

    /// The session holds no stream (`true`) or some (`false`).
    pub(crate) fn set_idle(&mut self, now: Instant, idle: bool) {
        if idle {
            self.idle_since.get_or_insert(now);
        } else {
            self.idle_since = None;
        }
    }

    /// The earliest deadline, given whether the first frame is still
    /// awaited (servers only) and whether the session is going away
    /// already (then idleness is no longer ours to end).
    pub(crate) fn next_deadline(&self, awaiting_first: bool, going_away: bool) -> Option<Instant> {
        let first = match (awaiting_first, self.started, self.first_frame) {
            (true, Some(at), Some(limit)) => at.checked_add(limit),
            _ => None,
        };
        let partial = match (self.partial_since, self.frame) {
            (Some(at), Some(limit)) => at.checked_add(limit),
            _ => None,
        };
        let idle = match (self.idle_since, self.idle) {
            (Some(at), Some(limit)) if !going_away && !self.idle_fired => at.checked_add(limit),
            _ => None,
        };
        [first, partial, idle].into_iter().flatten().min()
    }

    /// What is due at `now`, the most serious first.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        awaiting_first: bool,
        going_away: bool,
    ) -> Option<Expired> {
        let due = |at: Option<Instant>, limit: Option<Duration>| matches!((at, limit), (Some(at), Some(limit)) if at.checked_add(limit).is_some_and(|d| d <= now));
        if awaiting_first && due(self.started, self.first_frame) {
            return Some(Expired::Stalled(Stall::FirstFrame));
        }
        if due(self.partial_since, self.frame) {
            return Some(Expired::Stalled(Stall::PartialFrame));
        }
        if !going_away && !self.idle_fired && due(self.idle_since, self.idle) {
            self.idle_fired = true;
            return Some(Expired::Idle);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_frame_counts_from_the_first_time_seen() {
        let t0 = Instant::now();
        let mut s = Stalls::new(Some(10 * S), None, None);
        assert_eq!(s.next_deadline(true, false), None);
        s.start(t0);
        s.start(t0 + S);
        assert_eq!(s.next_deadline(true, false), Some(t0 + 10 * S));
        assert_eq!(s.on_timeout(t0 + 9 * S, true, false), None);
        assert_eq!(
            s.on_timeout(t0 + 10 * S, true, false),
            Some(Expired::Stalled(Stall::FirstFrame))
        );
        // Once the first frame is in, that clock is gone.
        assert_eq!(s.next_deadline(false, false), None);
    }

    #[test]
    fn progress_restarts_the_frame_clock() {
        let t0 = Instant::now();
        let mut s = Stalls::new(None, Some(5 * S), None);
        s.on_input(t0, true, false);
        s.on_input(t0 + 3 * S, true, false);
        assert_eq!(s.next_deadline(false, false), Some(t0 + 5 * S));
        s.on_input(t0 + 4 * S, true, true);
        assert_eq!(s.next_deadline(false, false), Some(t0 + 9 * S));
        s.on_input(t0 + 6 * S, false, true);
        assert_eq!(s.next_deadline(false, false), None);
        s.on_input(t0 + 7 * S, true, false);
        assert_eq!(
            s.on_timeout(t0 + 12 * S, false, false),
            Some(Expired::Stalled(Stall::PartialFrame))
        );
    }

    #[test]
    fn idle_fires_once_and_not_while_going_away() {
        let t0 = Instant::now();
        let mut s = Stalls::new(None, None, Some(75 * S));
        s.set_idle(t0, true);
        s.set_idle(t0 + S, true);
        assert_eq!(s.next_deadline(false, true), None);
        assert_eq!(s.next_deadline(false, false), Some(t0 + 75 * S));
        s.set_idle(t0 + 2 * S, false);
        assert_eq!(s.next_deadline(false, false), None);
        s.set_idle(t0 + 3 * S, true);
        assert_eq!(s.on_timeout(t0 + 77 * S, false, false), None);
        assert_eq!(s.on_timeout(t0 + 78 * S, false, false), Some(Expired::Idle));
        assert_eq!(s.on_timeout(t0 + 99 * S, false, false), None);
        assert_eq!(s.next_deadline(false, false), None);
    }
}
