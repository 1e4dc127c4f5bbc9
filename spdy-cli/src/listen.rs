//! A listener with connection caps: at most N connections in all and M
//! per client address, for every port the programs accept strangers on
//! (`spdy serve`, both ports of `spdy proxy`).
//!
//! At a cap a new connection is accepted and closed at once rather than
//! left in the kernel's backlog: the client learns in one round trip, and
//! the backlog stays free for when room comes back. Connections already
//! established are not touched. Each accepted connection carries a
//! [`Guard`]; its task holds it, so the count goes down however the task
//! ends (done, error, panic, shutdown).
//!
//! Accept errors other than a connection that died in the backlog (out of
//! file descriptors, out of buffers) pause accepting, 100 ms doubling to
//! 1 s, as nginx and hyper do: spinning on EMFILE would burn a core and
//! log a line per attempt.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// The first pause after a failed accept, and the longest.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often a listener at its cap says so (a flood must not flood the log).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// File descriptors kept back from the connection caps, at least: files
/// being served, TLS, the listeners, standard streams.
const FD_RESERVE_MIN: u64 = 64;

/// The connection-cap flags, shared by `spdy serve` and `spdy proxy`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CapArgs {
    /// Connections open at once on a port; more are closed as soon as
    /// they are accepted. Clamped under the file-descriptor limit.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = at_least_one())]
    pub(crate) max_connections: usize,
    /// Connections open at once from one client address (one /64 for
    /// IPv6) on a port.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = at_least_one())]
    pub(crate) max_connections_per_ip: usize,
}

/// A cap of 0 would refuse every connection: a usage error instead.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// The caps in force on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) total: usize,
    pub(crate) per_ip: usize,
}

impl CapArgs {
    /// The caps for each of `listeners` ports of one process: the soft
    /// file-descriptor limit is raised to the hard one first, and the
    /// total cap clamped so that all the ports' connections together stay
    /// under it with a margin (said on standard error, prefixed `what`).
    pub(crate) fn caps(&self, what: &str, listeners: usize) -> Caps {
        let requested = Caps {
            total: self.max_connections,
            per_ip: self.max_connections_per_ip,
        };
        match raise_fd_limit() {
            Ok(limit) => {
                let caps = clamp_to_fd_limit(requested, limit, listeners);
                if caps.total < requested.total {
                    eprintln!(
                        "{what}: --max-connections {} is more than {limit} file descriptors \
                         allow; using {} per port",
                        requested.total, caps.total
                    );
                }
                caps
            }
            Err(e) => {
                eprintln!("{what}: cannot read the file-descriptor limit ({e}); caps as given");
                requested
            }
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; the soft limit now.
fn raise_fd_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// `requested` with its total lowered so that `listeners` ports at their
/// cap leave a quarter of `fd_limit` (at least [`FD_RESERVE_MIN`]) free.
fn clamp_to_fd_limit(requested: Caps, fd_limit: u64, listeners: usize) -> Caps {
    let reserve = (fd_limit / 4).max(FD_RESERVE_MIN);
    let per_listener = fd_limit.saturating_sub(reserve) / (listeners.max(1) as u64);
    let allowed = usize::try_from(per_listener).unwrap_or(usize::MAX).max(1);
    Caps {
        total: requested.total.min(allowed),
        per_ip: requested.per_ip,
    }
}

/// What a connection counts against: its address, or its /64 for IPv6
/// (one host usually holds a whole /64, so counting single IPv6 addresses
/// would be no cap at all). IPv4-mapped addresses count as IPv4.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    PerIp,
}

/// The connections open on one listener, in all and by client.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    caps: Caps,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One open connection, counted until it is dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    counts: Arc<Mutex<Counts>>,
    key: IpAddr,
}

impl Tracker {
    pub(crate) fn new(caps: Caps) -> Tracker {
        Tracker {
            caps,
            counts: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, unless that would pass a cap.
    pub(crate) fn try_acquire(&self, ip: IpAddr) -> Result<Guard, Refusal> {
        let key = client_key(ip);
        // A poisoned lock only means a panic elsewhere while counting; the
        // counts themselves are still whole.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.caps.total {
            return Err(Refusal::Total);
        }
        let of_client = counts.by_client.entry(key).or_default();
        if *of_client >= self.caps.per_ip {
            if *of_client == 0 {
                counts.by_client.remove(&key);
            }
            return Err(Refusal::PerIp);
        }
        *of_client += 1;
        counts.total += 1;
        Ok(Guard {
            counts: self.counts.clone(),
            key,
        })
    }

    /// Connections open now: in all, and from `ip`'s client.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> (usize, usize) {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let of_client = counts.by_client.get(&client_key(ip)).copied();
        (counts.total, of_client.unwrap_or(0))
    }

    /// Clients with a connection open now (entries of the map).
    #[cfg(test)]
    fn clients(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.by_client.len()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(of_client) = counts.by_client.get_mut(&self.key) {
            *of_client -= 1;
            if *of_client == 0 {
                // An address that left costs nothing: the map holds only
                // clients with a connection open.
                counts.by_client.remove(&self.key);
            }
        }
    }
}

/// A TCP listener that applies [`Caps`] and backs off on accept errors.
pub(crate) struct Listener {
    inner: TcpListener,
    tracker: Tracker,
    /// Prefix of its lines on standard error (`spdy serve`, ...).
    what: &'static str,
    /// The pause after the next failed accept; `None` while accepts work.
    backoff: Option<Duration>,
    failures: u64,
    refused: u64,
    refusal_logged: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(inner: TcpListener, caps: Caps, what: &'static str) -> Listener {
        Listener {
            inner,
            tracker: Tracker::new(caps),
            what,
            backoff: None,
            failures: 0,
            refused: 0,
            refusal_logged: None,
        }
    }

    /// The next connection within the caps, with its guard; connections
    /// beyond them are closed here. Cancel-safe (for `select!`): nothing
    /// accepted is held across an await.
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr, Guard) {
        loop {
            let (tcp, peer) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) if died_in_backlog(&e) => continue,
                Err(e) => {
                    self.pause(&e).await;
                    continue;
                }
            };
            if self.backoff.take().is_some() {
                eprintln!(
                    "{}: accepting again after {} failed accept(s)",
                    self.what, self.failures
                );
                self.failures = 0;
            }
            match self.tracker.try_acquire(peer.ip()) {
                Ok(guard) => return (tcp, peer, guard),
                Err(why) => {
                    drop(tcp);
                    self.log_refusal(why, peer);
                }
            }
        }
    }

    /// Waits after a failed accept, longer each time in a row; says so
    /// once per run of failures.
    async fn pause(&mut self, e: &io::Error) {
        let pause = match self.backoff {
            None => {
                eprintln!(
                    "{}: accept failed: {e}; pausing accepts (up to {BACKOFF_MAX:?} at a time)",
                    self.what
                );
                BACKOFF_START
            }
            Some(last) => (last * 2).min(BACKOFF_MAX),
        };
        self.backoff = Some(pause);
        self.failures += 1;
        tokio::time::sleep(pause).await;
    }

    fn log_refusal(&mut self, why: Refusal, peer: SocketAddr) {
        self.refused += 1;
        let now = Instant::now();
        if self
            .refusal_logged
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        let cap = match why {
            Refusal::Total => format!("{} connections in all", self.tracker.caps.total),
            Refusal::PerIp => format!(
                "{} connections from {}",
                self.tracker.caps.per_ip,
                client_key(peer.ip())
            ),
        };
        eprintln!(
            "{}: at the cap of {cap}: closed {} new connection(s)",
            self.what, self.refused
        );
        self.refused = 0;
        self.refusal_logged = Some(now);
    }
}

/// A connection that was reset or aborted before we took it: nothing is
/// wrong with the listener.
fn died_in_backlog(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_cap() {
        let tracker = Tracker::new(Caps {
            total: 100,
            per_ip: 3,
        });
        let a = ip("192.0.2.1");
        let guards: Vec<Guard> = (0..3).map(|_| tracker.try_acquire(a).unwrap()).collect();
        assert_eq!(tracker.try_acquire(a).unwrap_err(), Refusal::PerIp);
        // Another address has its own count.
        let b = tracker.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(tracker.open(a), (4, 3));
        drop(guards);
        assert_eq!(tracker.open(a), (1, 0));
        drop(b);
        assert_eq!(tracker.clients(), 0);
    }

    #[test]
    fn total_cap() {
        let tracker = Tracker::new(Caps {
            total: 4,
            per_ip: 3,
        });
        let mut guards: Vec<Guard> = (1..=4)
            .map(|i| tracker.try_acquire(ip(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(
            tracker.try_acquire(ip("198.51.100.9")).unwrap_err(),
            Refusal::Total
        );
        // A refused address leaves no entry behind.
        assert_eq!(tracker.clients(), 4);
        guards.pop();
        assert!(tracker.try_acquire(ip("198.51.100.9")).is_ok());
    }

    #[test]
    fn released_when_the_holder_ends_however_it_ends() {
        let tracker = Tracker::new(Caps {
            total: 2,
            per_ip: 2,
        });
        let a = ip("203.0.113.5");
        let guard = tracker.try_acquire(a).unwrap();
        // A task that panics while holding its guard still releases it.
        let joined = std::thread::spawn(move || {
            let _guard = guard;
            panic!("connection task failed");
        })
        .join();
        assert!(joined.is_err());
        assert_eq!(tracker.open(a), (0, 0));
        let guards = [
            tracker.try_acquire(a).unwrap(),
            tracker.try_acquire(a).unwrap(),
        ];
        assert_eq!(tracker.open(a), (2, 2));
        drop(guards);
        assert_eq!(tracker.open(a), (0, 0));
        assert_eq!(tracker.clients(), 0);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let tracker = Tracker::new(Caps {
            total: 10,
            per_ip: 2,
        });
        let _one = tracker.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _two = tracker.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            tracker.try_acquire(ip("2001:db8:1:2::77")).unwrap_err(),
            Refusal::PerIp
        );
        assert!(tracker.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = tracker.try_acquire(ip("192.0.2.1")).unwrap();
        let _mapped = tracker.try_acquire(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(tracker.open(ip("192.0.2.1")).1, 2);
        assert_eq!(
            tracker.try_acquire(ip("192.0.2.1")).unwrap_err(),
            Refusal::PerIp
        );
    }

    #[test]
    fn clamped_under_the_descriptor_limit() {
        let asked = Caps {
            total: 10_000,
            per_ip: 256,
        };
        // Plenty of descriptors: as asked.
        assert_eq!(clamp_to_fd_limit(asked, 1 << 20, 2), asked);
        // 1024: a quarter kept back, the rest shared by the ports.
        assert_eq!(clamp_to_fd_limit(asked, 1024, 1).total, 768);
        assert_eq!(clamp_to_fd_limit(asked, 1024, 2).total, 384);
        // The reserve is at least FD_RESERVE_MIN, and a cap at least 1.
        assert_eq!(clamp_to_fd_limit(asked, 100, 1).total, 36);
        assert_eq!(clamp_to_fd_limit(asked, 10, 1).total, 1);
        assert_eq!(clamp_to_fd_limit(asked, 1024, 1).per_ip, 256);
    }

    #[tokio::test]
    async fn at_the_cap_a_connection_is_closed_at_once() {
        use tokio::io::AsyncReadExt;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = Listener::new(
            inner,
            Caps {
                total: 1,
                per_ip: 1,
            },
            "test",
        );
        let first = TcpStream::connect(addr).await.unwrap();
        let (_served, _, guard) = listener.accept().await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        // The next accept closes the second connection and waits on; the
        // second client sees end of stream.
        let accepting = tokio::spawn(async move {
            let (tcp, _, guard) = listener.accept().await;
            (tcp, guard)
        });
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "refused connection not closed: {read:?}"
        );
        // Room again once the first connection's guard is gone.
        drop(guard);
        drop(first);
        let third = TcpStream::connect(addr).await.unwrap();
        let (tcp, _guard) = tokio::time::timeout(Duration::from_secs(10), accepting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), third.local_addr().unwrap());
    }
}
