//! `spdy bench`: a load generator. It opens connections to one URL, keeps
//! a number of requests in flight on each (SPDY multiplexes them), reads
//! every body to its end, and reports requests per second, body bytes per
//! second, latency percentiles, statuses and failures.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{header, Method, Request};
use http_body_util::Empty;
use spdy::client::SendRequest;
use spdy::Error;

use crate::connect::{self, describe, ConnectArgs, Failure, Target, EXIT_FAILURE, EXIT_USAGE};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Latency is from sending a request to the end of its body. Runs for --duration \
(10 s) unless --requests is given, then waits for the requests in flight (each \
at most --timeout). Exit status: 0 when every request completed \
(whatever its status), 1 when a connection or a request failed, 2 bad usage.")]
pub(crate) struct Args {
    /// http://host[:port]/path or https://...: the URL every request asks
    /// for.
    url: String,
    /// How many connections (SPDY sessions) to open.
    #[arg(short = 'c', long, default_value_t = 1, value_name = "N")]
    connections: u32,
    /// How many requests to keep in flight on each connection.
    #[arg(short = 'm', long = "streams", default_value_t = 100, value_name = "N")]
    streams: u32,
    /// Send N requests in all, then stop.
    #[arg(short = 'n', long, value_name = "N", conflicts_with = "duration")]
    requests: Option<u64>,
    /// Send requests for SECONDS (fractions allowed), then wait for those
    /// in flight.
    #[arg(short = 'd', long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Give each request at most SECONDS (fractions allowed) to complete,
    /// body included; a request over it is a failure, its stream reset.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
    /// Send HEAD instead of GET.
    #[arg(short = 'I', long)]
    head: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// The most requests in flight on one connection: beyond the peer's
/// concurrency limit they wait in the session's bounded queue of opens
/// (1024), and more would be refused there.
const MAX_STREAMS: u32 = 1024;

/// When to stop sending.
enum Budget {
    Requests(AtomicU64),
    Until(Instant),
}

impl Budget {
    /// Takes one request from the budget, if any is left.
    fn take(&self) -> bool {
        match self {
            Budget::Requests(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            Budget::Until(end) => Instant::now() < *end,
        }
    }
}

/// What one stream slot (or, merged, the whole run) saw.
struct Tally {
    /// Microseconds from sending to the body's end, completed requests.
    latency: Histogram<u64>,
    completed: u64,
    body_bytes: u64,
    statuses: BTreeMap<u16, u64>,
    /// Failed requests by cause.
    failures: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // Three significant figures (always valid); grows as needed.
            latency: Histogram::new(3).expect("3 significant figures are in range"),
            completed: 0,
            body_bytes: 0,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    fn failed(&mut self, cause: String) {
        *self.failures.entry(cause).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        // Both auto-resize: adding cannot fail on range.
        let _ = self.latency.add(&other.latency);
        self.completed += other.completed;
        self.body_bytes += other.body_bytes;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (cause, n) in other.failures {
            *self.failures.entry(cause).or_default() += n;
        }
    }

    fn failed_count(&self) -> u64 {
        self.failures.values().sum()
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match bench(&args).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("spdy bench: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn bench(args: &Args) -> Result<ExitCode, Failure> {
    if args.connections == 0 || !(1..=MAX_STREAMS).contains(&args.streams) {
        return Err(Failure::new(
            EXIT_USAGE,
            format_args!("--connections must be at least 1, --streams from 1 to {MAX_STREAMS}"),
        ));
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(Failure::new(EXIT_USAGE, "--timeout must be above 0"));
    }
    let request_timeout = Duration::from_secs_f64(args.timeout.min(1e9));
    let duration = match (args.requests, args.duration) {
        (Some(_), _) => None,
        (None, Some(seconds)) if seconds.is_finite() && seconds > 0.0 => {
            Some(Duration::from_secs_f64(seconds.min(1e9)))
        }
        (None, Some(_)) => return Err(Failure::new(EXIT_USAGE, "--duration must be above 0")),
        (None, None) => Some(Duration::from_secs(10)),
    };
    let target = Target::parse(&args.url)?;
    let connector = connect::prepare(&target, &args.connect)?;
    let method = if args.head { Method::HEAD } else { Method::GET };

    // Every connection first, so that connecting is not measured.
    let mut sessions = Vec::new();
    for _ in 0..args.connections {
        sessions.push(connect::connect(&target, &args.connect, connector.as_ref(), false).await?);
    }
    let version = sessions
        .first()
        .map(|s| s.version())
        .map(|v| v.to_string())
        .unwrap_or_default();

    let start = Instant::now();
    let budget = Arc::new(match duration {
        Some(duration) => Budget::Until(start + duration),
        None => Budget::Requests(AtomicU64::new(args.requests.unwrap_or(0))),
    });
    let mut slots = tokio::task::JoinSet::new();
    let mut clients = Vec::new();
    for session in sessions {
        // A connection that fails stops its own slots, not the others.
        let dead = Arc::new(AtomicBool::new(false));
        for _ in 0..args.streams {
            let slot = Slot {
                timeout: request_timeout,
                send: session.as_send_request().clone(),
                method: method.clone(),
                uri: target.uri.clone(),
                budget: budget.clone(),
                dead: dead.clone(),
            };
            slots.spawn(slot.run());
        }
        clients.push(session);
    }
    let mut total = Tally::new();
    while let Some(tally) = slots.join_next().await {
        match tally {
            Ok(tally) => total.merge(tally),
            Err(e) => total.failed(format!("a request task failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    // Close politely: the connections end once nothing is open.
    let mut connection_errors = Vec::new();
    for client in clients {
        if let Ok(Err(e)) = tokio::time::timeout(connect::CLOSE_WAIT, client.shutdown()).await {
            connection_errors.push(describe(&e));
        }
    }
    let report = Report {
        url: &args.url,
        version: &version,
        connections: args.connections,
        streams: args.streams,
        elapsed,
        tally: &total,
        connection_errors: &connection_errors,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(
        match total.failed_count() == 0 && connection_errors.is_empty() {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(EXIT_FAILURE),
        },
    )
}

/// One request in flight at a time, over and over, on one connection.
struct Slot {
    timeout: Duration,
    send: SendRequest,
    method: Method,
    uri: http::Uri,
    budget: Arc<Budget>,
    dead: Arc<AtomicBool>,
}

impl Slot {
    async fn run(self) -> Tally {
        let mut tally = Tally::new();
        while !self.dead.load(Ordering::Relaxed) && self.budget.take() {
            let started = Instant::now();
            let Ok(done) = tokio::time::timeout(self.timeout, self.request()).await else {
                // Dropping the request reset its stream.
                tally.failed(format!("timed out after {:?}", self.timeout));
                continue;
            };
            match done {
                Ok((status, bytes)) => {
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = tally.latency.record(micros.max(1));
                    tally.completed += 1;
                    tally.body_bytes += bytes;
                    *tally.statuses.entry(status).or_default() += 1;
                }
                Err(e) => {
                    let connection_gone = e.is_connection_error();
                    tally.failed(describe(&e));
                    if connection_gone {
                        self.dead.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        tally
    }

    /// One request: its status and how many body bytes came (all of them:
    /// a body cut short is an error).
    async fn request(&self) -> Result<(u16, u64), Error> {
        let request = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .header(
                header::USER_AGENT,
                concat!("spdy-bench/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::Io(Arc::new(std::io::Error::other(e))))?;
        let response = self.send.send_request(request).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = 0;
        while let Some(chunk) = body.data().await {
            bytes += chunk?.len() as u64;
        }
        Ok((status, bytes))
    }
}

/// What the run measured.
struct Report<'a> {
    url: &'a str,
    version: &'a str,
    connections: u32,
    streams: u32,
    elapsed: Duration,
    tally: &'a Tally,
    connection_errors: &'a [String],
}

/// Latency percentiles reported.
const PERCENTILES: [(f64, &str); 5] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (100.0, "max"),
];

impl Report<'_> {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    fn requests_per_second(&self) -> f64 {
        self.tally.completed as f64 / self.seconds()
    }

    fn mib_per_second(&self) -> f64 {
        self.tally.body_bytes as f64 / (1024.0 * 1024.0) / self.seconds()
    }

    /// Latency at each reported percentile, in milliseconds.
    fn latencies(&self) -> Vec<(&'static str, f64)> {
        PERCENTILES
            .iter()
            .map(|&(q, name)| {
                let micros = match q >= 100.0 {
                    true => self.tally.latency.max(),
                    false => self.tally.latency.value_at_quantile(q / 100.0),
                };
                (name, micros as f64 / 1000.0)
            })
            .collect()
    }

    fn text(&self) -> String {
        let t = self.tally;
        let mut out = format!(
            "{}: {} connection(s) x {} stream(s), SPDY/{}, {:.2} s\n",
            self.url,
            self.connections,
            self.streams,
            self.version,
            self.seconds()
        );
        out.push_str(&format!(
            "requests:   {} completed, {} failed\n",
            t.completed,
            t.failed_count()
        ));
        out.push_str(&format!(
            "throughput: {:.1} requests/s, {:.2} MiB/s of body ({} bytes)\n",
            self.requests_per_second(),
            self.mib_per_second(),
            t.body_bytes
        ));
        if t.completed > 0 {
            let latencies: Vec<String> = self
                .latencies()
                .iter()
                .map(|(name, ms)| format!("{name} {ms:.3} ms"))
                .collect();
            out.push_str(&format!("latency:    {}\n", latencies.join(", ")));
        }
        let statuses: Vec<String> = t
            .statuses
            .iter()
            .map(|(status, n)| format!("{status} x {n}"))
            .collect();
        if !statuses.is_empty() {
            out.push_str(&format!("statuses:   {}\n", statuses.join(", ")));
        }
        for (cause, n) in &t.failures {
            out.push_str(&format!("failed:     {n} x {cause}\n"));
        }
        for error in self.connection_errors {
            out.push_str(&format!("connection: {error}\n"));
        }
        out
    }

    fn json(&self) -> String {
        let t = self.tally;
        let latency: serde_json::Map<String, serde_json::Value> = self
            .latencies()
            .into_iter()
            .map(|(name, ms)| (name.to_owned(), rounded(ms, 3)))
            .collect();
        let statuses: serde_json::Map<String, serde_json::Value> = t
            .statuses
            .iter()
            .map(|(status, n)| (status.to_string(), (*n).into()))
            .collect();
        serde_json::json!({
            "url": self.url,
            "version": self.version,
            "connections": self.connections,
            "streams": self.streams,
            "seconds": rounded(self.seconds(), 6),
            "completed": t.completed,
            "failed": t.failed_count(),
            "body_bytes": t.body_bytes,
            "requests_per_second": rounded(self.requests_per_second(), 3),
            "mib_per_second": rounded(self.mib_per_second(), 3),
            "latency_ms": latency,
            "statuses": statuses,
            "failures": t.failures,
            "connection_errors": self.connection_errors,
        })
        .to_string()
    }
}

/// `x` to `digits` decimals, as a JSON number.
fn rounded(x: f64, digits: i32) -> serde_json::Value {
    let scale = 10f64.powi(digits);
    serde_json::Value::from((x * scale).round() / scale)
}
