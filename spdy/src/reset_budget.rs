//! A rapid-reset limit shared by several connections.
//!
//! Each session counts the streams its peer cancels, or makes it reset,
//! against its own limit (`Config::with_peer_reset_rate`). A client that
//! spreads its resets over many connections stays under every one of them;
//! a [`ResetBudget`] shared by all connections of one client address sees
//! the sum. [`ResetBudgets`] hands out one per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use spdy_proto::session::RateLimit;
use tokio::time::Instant;

#[derive(Debug)]
struct Window {
    limit: RateLimit,
    start: Option<Instant>,
    count: u64,
}

/// A count of peer resets shared by the connections that hold a clone:
/// at most `limit.max` in any `limit.per` window, summed over all of them.
/// A connection that finds the budget spent ends its session with GOAWAY
/// PROTOCOL_ERROR (`Flood::Resets`).
#[derive(Debug, Clone)]
pub struct ResetBudget {
    window: Arc<Mutex<Window>>,
}

impl ResetBudget {
    /// A budget of `limit` resets.
    pub fn new(limit: RateLimit) -> ResetBudget {
        ResetBudget {
            window: Arc::new(Mutex::new(Window {
                limit,
                start: None,
                count: 0,
            })),
        }
    }

    /// Records `n` resets at `now`; false once the budget is spent.
    pub(crate) fn charge(&self, n: u64, now: Instant) -> bool {
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match w.start {
            Some(start) if now.saturating_duration_since(start) < w.limit.per => {}
            _ => {
                w.start = Some(now);
                w.count = 0;
            }
        }
        w.count = w.count.saturating_add(n);
        w.count <= u64::from(w.limit.max)
    }
}

/// One [`ResetBudget`] per client address, made when first asked for and
/// forgotten once no connection holds it: the map is bounded by the
/// connections alive.
#[derive(Debug, Clone)]
pub struct ResetBudgets {
    limit: RateLimit,
    by_address: Arc<Mutex<HashMap<IpAddr, Weak<Mutex<Window>>>>>,
}

impl ResetBudgets {
    /// Budgets of `limit` resets per address.
    pub fn new(limit: RateLimit) -> ResetBudgets {
        ResetBudgets {
            limit,
            by_address: Arc::default(),
        }
    }

    /// The budget of `address`, shared with its other connections.
    pub fn for_address(&self, address: IpAddr) -> ResetBudget {
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(window) = map.get(&address).and_then(Weak::upgrade) {
            return ResetBudget { window };
        }
        // Forget addresses with no connection left, now and then: the map
        // stays within twice the addresses alive.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let budget = ResetBudget::new(self.limit);
        map.insert(address, Arc::downgrade(&budget.window));
        budget
    }

    /// Addresses remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.by_address
            .lock()
            .map(|m| m.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// Whether no address holds a budget.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_of_one_address_share_the_budget() {
        let budgets = ResetBudgets::new(RateLimit::new(10, Duration::from_secs(10)));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (a1, a2, b1) = (
            budgets.for_address(a),
            budgets.for_address(a),
            budgets.for_address(b),
        );
        let now = Instant::now();
        assert!(a1.charge(6, now));
        assert!(!a2.charge(5, now), "11 resets from one address");
        assert!(b1.charge(10, now), "another address has its own");
        assert!(a1.charge(1, now + Duration::from_secs(10)), "a new window");
        assert_eq!(budgets.len(), 2);
        drop((a1, a2));
        assert_eq!(budgets.len(), 1);
        // A budget made anew starts empty.
        assert!(budgets.for_address(a).charge(10, now));
    }
}
