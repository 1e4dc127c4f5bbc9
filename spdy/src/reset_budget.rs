//! A rapid-reset limit shared by several connections.
//!
//! Each session counts the streams its peer cancels, or makes it reset,
//! against its own limit (`Config::with_peer_reset_rate`). A client that
//! spreads its resets over many connections stays under every one of them;
//! a [`ResetBudget`] shared by all connections of one client address sees
//! the sum. [`ResetBudgets`] hands out one per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use spdy_proto::session::RateLimit;
use tokio::time::Instant;

/// A leaky bucket: `level` resets, draining at `limit.max` per
/// `limit.per`. Unlike fixed windows, it never lets twice the limit through
/// around a window's edge.
#[derive(Debug)]
struct Window {
    limit: RateLimit,
    last: Option<Instant>,
    level: f64,
}

/// A count of peer resets shared by the connections that hold a clone:
/// about `limit.max` per `limit.per`, summed over all of them (a bucket of
/// `limit.max` that drains at that rate). A connection that finds the
/// budget spent ends its session with GOAWAY PROTOCOL_ERROR
/// (`Flood::Resets`).
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
                last: None,
                level: 0.0,
            })),
        }
    }

    /// Records `n` resets at `now`; false once the budget is spent.
    pub(crate) fn charge(&self, n: u64, now: Instant) -> bool {
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let max = f64::from(w.limit.max);
        let per = w.limit.per.as_secs_f64();
        if let Some(last) = w.last {
            let drained = if per > 0.0 {
                now.saturating_duration_since(last).as_secs_f64() * max / per
            } else {
                f64::INFINITY
            };
            w.level = (w.level - drained).max(0.0);
        }
        w.last = Some(now);
        w.level += n as f64;
        w.level <= max
    }
}

/// One [`ResetBudget`] per client address, made when first asked for and
/// kept while a connection holds it or until it has drained: a client that
/// closes its connections between bursts finds its budget as it left it.
/// Entries that are neither are forgotten now and then, so the map holds
/// the addresses of the last period's connections.
#[derive(Debug, Clone)]
pub struct ResetBudgets {
    limit: RateLimit,
    by_address: Arc<Mutex<HashMap<IpAddr, Arc<Mutex<Window>>>>>,
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
        self.for_address_at(address, Instant::now())
    }

    fn for_address_at(&self, address: IpAddr, now: Instant) -> ResetBudget {
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(window) = map.get(&address) {
            return ResetBudget {
                window: window.clone(),
            };
        }
        // Now and then (each time the map doubles), forget the addresses
        // that hold no connection and whose bucket has drained.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| Arc::strong_count(w) > 1 || !drained(w, now));
        }
        let budget = ResetBudget::new(self.limit);
        map.insert(address, budget.window.clone());
        budget
    }

    /// Addresses remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.by_address.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the bucket is empty at `now`.
fn drained(window: &Mutex<Window>, now: Instant) -> bool {
    let w = window
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(last) = w.last else {
        return true;
    };
    let per = w.limit.per.as_secs_f64();
    let rate = if per > 0.0 {
        f64::from(w.limit.max) / per
    } else {
        f64::INFINITY
    };
    w.level <= now.saturating_duration_since(last).as_secs_f64() * rate
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
        // Half a window later, half the limit has drained.
        assert!(
            !a2.charge(5, now + Duration::from_secs(5)),
            "11 - 5 + 5 = 11"
        );
        assert!(b1.charge(10, now), "another address has its own");
        // Five seconds more: 11 drained to 6.
        let later = now + Duration::from_secs(10);
        assert!(a1.charge(4, later), "10 in the bucket: at the limit");
        assert!(!a1.charge(1, later), "11: over it");
        assert_eq!(budgets.len(), 2);
        // Closing every connection does not refill the bucket: the next
        // connection of `a` finds it as it was.
        drop((a1, a2));
        assert!(!budgets.for_address_at(a, later).charge(1, later));
    }

    #[test]
    fn drained_budgets_of_gone_addresses_are_forgotten() {
        let budgets = ResetBudgets::new(RateLimit::new(10, Duration::from_secs(10)));
        let now = Instant::now();
        let kept = budgets.for_address_at("192.0.2.1".parse().unwrap(), now);
        let full = budgets.for_address_at("192.0.2.2".parse().unwrap(), now);
        assert!(full.charge(10, now));
        drop(full);
        for i in 0..62u8 {
            let b = budgets.for_address_at(IpAddr::from([198, 51, 100, i]), now);
            assert!(b.charge(1, now));
        }
        assert_eq!(budgets.len(), 64);
        // A second later: the 62 buckets of one reset have drained, the
        // full one has not, and one address still has a connection.
        let later = now + Duration::from_secs(1);
        let _new = budgets.for_address_at("203.0.113.1".parse().unwrap(), later);
        assert_eq!(budgets.len(), 3);
        drop(kept);
    }
}
