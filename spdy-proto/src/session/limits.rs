//! Counters behind the abuse limits of [`Config`](super::Config).

use std::time::Instant;

use super::config::RateLimit;

/// Counts events in fixed windows of `limit.per`; reports when more than
/// `limit.max` happen in one window.
#[derive(Debug, Clone)]
pub(crate) struct RateCounter {
    limit: RateLimit,
    window_start: Option<Instant>,
    count: u32,
    /// Every event recorded, for limits kept across sessions.
    total: u64,
}

impl RateCounter {
    pub(crate) fn new(limit: RateLimit) -> RateCounter {
        RateCounter {
            limit,
            window_start: None,
            count: 0,
            total: 0,
        }
    }

    /// Events recorded since the start.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Records one event at `now`; false if the limit is exceeded.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        self.allow_n(now, 1)
    }

    /// Records `n` units (bytes, say) at `now`; false if the limit is
    /// exceeded.
    pub(crate) fn allow_n(&mut self, now: Instant, n: u32) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < self.limit.per => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(n);
        self.total = self.total.saturating_add(u64::from(n));
        self.count <= self.limit.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_max_per_window_then_resets() {
        let t0 = Instant::now();
        let mut c = RateCounter::new(RateLimit::new(3, Duration::from_secs(1)));
        assert!(c.allow(t0));
        assert!(c.allow(t0));
        assert!(c.allow(t0 + Duration::from_millis(500)));
        assert!(!c.allow(t0 + Duration::from_millis(999)));
        assert!(c.allow(t0 + Duration::from_secs(1)));
    }
}
