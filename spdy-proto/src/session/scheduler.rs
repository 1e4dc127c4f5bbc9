//! The order in which streams get to send DATA.
//!
//! SPDY/3 section 2.3.3: "The sender and recipient SHOULD use best-effort to
//! process streams in the order of highest priority to lowest priority."
//! Streams with something to send wait in one FIFO per priority level; the
//! sender always serves the highest non-empty level and, within a level,
//! sends one bounded DATA frame per stream in turn (round robin). Because
//! frames are bounded, a stream that becomes ready at a higher priority is
//! served after at most one frame of a bulk transfer.

use std::collections::VecDeque;

use crate::frame::StreamId;

/// Priority levels: SPDY/3's 3-bit field (SPDY/2's 2-bit one uses 0..=3).
pub(crate) const LEVELS: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    levels: [VecDeque<StreamId>; LEVELS],
    len: usize,
}

impl Scheduler {
    /// Queues a stream at the back of its level. The caller tracks whether
    /// a stream is already queued.
    pub(crate) fn push_back(&mut self, id: StreamId, priority: u8) {
        self.levels[usize::from(priority).min(LEVELS - 1)].push_back(id);
        self.len += 1;
    }

    /// Puts a stream back at the front of its level (it could not send for a
    /// reason that is not its own, such as the session window).
    pub(crate) fn push_front(&mut self, id: StreamId, priority: u8) {
        self.levels[usize::from(priority).min(LEVELS - 1)].push_front(id);
        self.len += 1;
    }

    /// The next stream to serve: the front of the highest-priority level.
    pub(crate) fn pop(&mut self) -> Option<StreamId> {
        let id = self.levels.iter_mut().find_map(VecDeque::pop_front)?;
        self.len -= 1;
        Some(id)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u32) -> StreamId {
        StreamId::new(n).unwrap()
    }

    #[test]
    fn highest_priority_first_round_robin_within_a_level() {
        let mut s = Scheduler::default();
        s.push_back(sid(1), 3);
        s.push_back(sid(3), 3);
        s.push_back(sid(5), 0);
        assert_eq!(s.pop(), Some(sid(5)));
        assert_eq!(s.pop(), Some(sid(1)));
        s.push_back(sid(1), 3);
        assert_eq!(s.pop(), Some(sid(3)));
        assert_eq!(s.pop(), Some(sid(1)));
        assert!(s.is_empty());
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn out_of_range_priority_goes_to_the_lowest_level() {
        let mut s = Scheduler::default();
        s.push_back(sid(1), 200);
        s.push_back(sid(3), 7);
        assert_eq!(s.pop(), Some(sid(1)));
    }
}
