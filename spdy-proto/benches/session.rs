//! Session benchmarks: two sessions back to back in memory moving 1 GiB over
//! one stream and over 100 streams, plus allocation counts (allocations per
//! DATA frame, memory per open idle stream) printed before the timings.
//!
//! Run with `cargo bench -p spdy-proto --bench session`. The allocation
//! figures come from `allocation-counter`, which is the global allocator of
//! this benchmark (its counting adds a little to every allocation, so the
//! timings are slightly pessimistic).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use spdy_proto::frame::{StreamId, Version};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Config, Event, OpenOptions, Recv, Role, Session, Transmit};

const GIB: usize = 1 << 30;
/// What the sending application hands the session per call.
const WRITE: usize = 256 * 1024;

fn config() -> Config {
    Config::default()
        .with_initial_window(8 << 20)
        .with_session_window(64 << 20)
        .with_max_send_buffer(1 << 20)
        .with_max_concurrent_streams(20_000)
}

fn request(path: &str) -> HeaderBlock {
    [
        (":method", "GET".to_owned()),
        (":path", path.to_owned()),
        (":version", "HTTP/1.1".to_owned()),
        (":host", "bench".to_owned()),
        (":scheme", "http".to_owned()),
    ]
    .into_iter()
    .collect()
}

/// Moves what `from` sends into `wire`, the way a socket would (one copy).
/// Returns (bytes, DATA frames).
fn pump(now: Instant, from: &mut Session, wire: &mut BytesMut) -> (usize, usize) {
    let (mut bytes, mut frames) = (0, 0);
    while let Some(mut t) = from.poll_transmit(now) {
        frames += usize::from(matches!(t, Transmit::Data(_)));
        bytes += t.remaining();
        if wire.capacity() - wire.len() < t.remaining() {
            wire.reserve(4 << 20);
        }
        while t.has_remaining() {
            let chunk = t.chunk();
            wire.extend_from_slice(chunk);
            let n = chunk.len();
            t.advance(n);
        }
    }
    (bytes, frames)
}

/// A client and a server with `streams` streams open from client to server;
/// the server has accepted them.
struct Bench {
    client: Session,
    server: Session,
    ids: Vec<StreamId>,
    wire_up: BytesMut,
    wire_down: BytesMut,
    now: Instant,
    payload: Bytes,
}

impl Bench {
    fn new(streams: usize) -> Bench {
        let now = Instant::now();
        let mut b = Bench {
            client: Session::new(Role::Client, Version::V3_1, config()),
            server: Session::new(Role::Server, Version::V3_1, config()),
            ids: Vec::new(),
            wire_up: BytesMut::with_capacity(4 << 20),
            wire_down: BytesMut::with_capacity(1 << 20),
            now,
            payload: Bytes::from(vec![0x5a; WRITE]),
        };
        for i in 0..streams {
            let id = b
                .client
                .open_stream(request(&format!("/{i}")), OpenOptions::default())
                .expect("open");
            b.ids.push(id);
        }
        b.exchange();
        while let Some(event) = b.server.poll_event() {
            if let Event::StreamOpened { id, .. } = event {
                b.server.reply(id, request("/"), false).expect("reply");
            }
        }
        b.exchange();
        while b.client.poll_event().is_some() {}
        b
    }

    fn exchange(&mut self) -> usize {
        let (_, up) = pump(self.now, &mut self.client, &mut self.wire_up);
        self.server.handle_input(self.now, &mut self.wire_up);
        pump(self.now, &mut self.server, &mut self.wire_down);
        self.client.handle_input(self.now, &mut self.wire_down);
        up
    }

    /// Sends `total` bytes spread over all streams, reading and releasing on
    /// the server as it arrives. Returns the DATA frames sent.
    fn transfer(&mut self, total: usize) -> usize {
        let mut sent = 0;
        let mut received = 0;
        let mut frames = 0;
        let mut turn = 0;
        while received < total {
            // Fill send buffers round robin.
            for _ in 0..self.ids.len() {
                if sent >= total {
                    break;
                }
                let id = self.ids[turn % self.ids.len()];
                turn += 1;
                let room = self.client.send_capacity(id).expect("open stream");
                if room >= WRITE {
                    let n = WRITE.min(total - sent);
                    self.client
                        .send_data(id, self.payload.slice(..n), false)
                        .expect("capacity checked");
                    sent += n;
                }
            }
            frames += self.exchange();
            while let Some(event) = self.server.poll_event() {
                if let Event::Readable { id } = event {
                    while let Recv::Data(chunk) = self.server.recv(id, usize::MAX).expect("stream")
                    {
                        received += chunk.len();
                        self.server
                            .release_capacity(id, chunk.len())
                            .expect("stream");
                        black_box(chunk);
                    }
                }
            }
            while self.client.poll_event().is_some() {}
        }
        frames
    }
}

/// Prints allocation figures: allocations per DATA frame in steady state,
/// and session memory per open idle stream.
fn report_allocations() {
    for streams in [1usize, 100] {
        let mut bench = Bench::new(streams);
        bench.transfer(64 << 20); // warm up buffers
        let mut frames = 0;
        let info = allocation_counter::measure(|| {
            frames = bench.transfer(256 << 20);
        });
        println!(
            "allocations: {streams} stream(s), 256 MiB in {frames} DATA frames: {} allocations = {:.3} per DATA frame ({} bytes allocated in all)",
            info.count_total,
            info.count_total as f64 / frames as f64,
            info.bytes_total
        );
    }
    let n = 10_000;
    let (empty_client, empty_server) = idle_session_memory(0);
    let (client, server) = idle_session_memory(n);
    println!(
        "memory per open idle stream over {n} streams: client session {:.0} bytes, server session {:.0} bytes (heap freed on drop, minus a session without streams)",
        (client - empty_client) as f64 / n as f64,
        (server - empty_server) as f64 / n as f64,
    );
}

/// Heap bytes held by a client and a server session with `n` open, idle,
/// replied streams, measured as what dropping each session frees.
fn idle_session_memory(n: usize) -> (i64, i64) {
    let mut bench = Bench::new(0);
    for i in 0..n {
        let id = bench
            .client
            .open_stream(request(&format!("/{i}")), OpenOptions::default())
            .expect("open");
        bench.ids.push(id);
    }
    bench.exchange();
    while let Some(event) = bench.server.poll_event() {
        if let Event::StreamOpened { id, .. } = event {
            bench.server.reply(id, request("/"), false).expect("reply");
        }
    }
    bench.exchange();
    while bench.client.poll_event().is_some() {}
    assert_eq!(bench.client.active_streams(), (n, 0));
    assert_eq!(bench.server.active_streams(), (0, n));
    let Bench { client, server, .. } = bench;
    let freed_client = allocation_counter::measure(|| drop(client)).bytes_current;
    let freed_server = allocation_counter::measure(|| drop(server)).bytes_current;
    (-freed_client, -freed_server)
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_1GiB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(GIB as u64));
    for streams in [1usize, 100] {
        group.bench_with_input(BenchmarkId::new("streams", streams), &streams, |b, &n| {
            b.iter_batched(
                || Bench::new(n),
                |mut bench| bench.transfer(GIB),
                criterion::BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn main() {
    report_allocations();
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion);
    criterion.final_summary();
}
