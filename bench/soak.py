#!/usr/bin/env python3
"""Soak: a million streams through one SPDY session, and through the
reverse tunnel, watching the servers' resident memory. Memory that grows
with the number of streams served (a map entry never removed, a buffer
never shrunk) shows up here long before it shows in a test.

    python3 bench/soak.py [--streams 1000000] [--every 100000]
                          [--warmup 100000] [--only session|tunnel]

One session: `spdy bench -c 1 -m 100 -n STREAMS` against `spdy serve`
(plain TCP, SPDY/3.1): one connection, one session, 100 streams in flight.

The tunnel: `spdy origin --dir` dials `spdy proxy`, whose public side runs
TLS (a throwaway self-signed certificate) so that `spdy bench -k` speaks
SPDY/3.1 to it end to end: one public session, one tunnel session. The
proxy admits 32 requests in flight per client address, so the tunnel run
keeps 24 in flight (--tunnel-in-flight).

RSS is VmRSS from /proc/PID/status: at start (listening, before the first
request), at every --every streams, and at the end (after the last
response). The stream count at each sample comes from the servers' own
request logs (one line per request on standard error, counted as they
come), so the samples are taken at those counts, not guessed from time.
Growth is measured from the sample at --warmup streams (allocator arenas,
the scheduler's maps and zlib states settle in the first streams): the end
and the largest later sample against it; the goal is < 5%.

Not a test, but it exits 1 if a run fails (a process dies, a request is
not answered 200) or memory grows past the goal. Builds `spdy` in release mode
first (--no-build to skip).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPDY = os.path.join(ROOT, "target", "release", "spdy")  # --bin changes it


def rss_kib(pid):
    """VmRSS of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def threads(pid):
    """Threads of `pid` (tokio's blocking pool grows and shrinks with
    file reads; each thread may hold its own malloc arena)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Threads for {pid}")


def hwm_kib(pid):
    """VmHWM (peak RSS) of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


class Sampler:
    """Counts request log lines on one process's stderr and samples the
    RSS of `watched` ({label: pid}) each time the count reaches a
    milestone."""

    def __init__(self, stream, is_request, watched, milestones):
        self.stream = stream
        self.is_request = is_request
        self.watched = watched
        self.milestones = sorted(set(milestones))
        self.count = 0
        self.samples = []  # (label, streams, {name: KiB}, {name: threads})
        self.other_lines = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, label):
        self.samples.append((label, self.count,
                             {n: rss_kib(p) for n, p in self.watched.items()},
                             {n: threads(p) for n, p in self.watched.items()}))

    def start(self):
        self.thread.start()

    def _run(self):
        next_i = 0
        for line in self.stream:
            if self.is_request(line):
                self.count += 1
                if next_i < len(self.milestones) and self.count >= self.milestones[next_i]:
                    self.sample(f"{self.milestones[next_i]:,}")
                    next_i += 1
            elif len(self.other_lines) < 50:
                self.other_lines.append(line.rstrip())

    def wait_for(self, n, timeout):
        """Waits until `n` request lines were counted (the log of the last
        responses may trail the client's exit a little)."""
        end = time.time() + timeout
        while self.count < n and time.time() < end:
            time.sleep(0.05)
        return self.count >= n


def read_until(stream, needle, timeout):
    """Reads lines from `stream` until one contains `needle`."""
    result = {}

    def scan():
        for line in stream:
            if needle in line:
                result["line"] = line
                return

    t = threading.Thread(target=scan, daemon=True)
    t.start()
    t.join(timeout)
    if "line" not in result:
        sys.exit(f"no {needle!r} within {timeout} s")
    return result["line"]


def bench(url, in_flight, streams, insecure):
    cmd = [SPDY, "bench", url, "-c", "1", "-m", str(in_flight), "-n", str(streams),
           "--json", "--timeout", "60"]
    if insecure:
        cmd.append("-k")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        print(out.stdout, out.stderr, file=sys.stderr)
        sys.exit(f"spdy bench failed ({out.returncode})")
    return json.loads(out.stdout)


def report(title, sampler, warmup_label, result, peaks):
    names = list(sampler.watched)
    print(f"\n== {title}")
    print(f"{'streams':>22} "
          + " ".join(f"{n + ' RSS KiB':>18} {'threads':>7}" for n in names))
    for label, count, rss, thr in sampler.samples:
        tag = label + (" (warm-up)" if label == warmup_label else "")
        print(f"{tag:>22} " + " ".join(f"{rss[n]:>18,} {thr[n]:>7}" for n in names))
    base = next((s for s in sampler.samples if s[0] == warmup_label), None)
    end = sampler.samples[-1]
    # VmHWM can trail VmRSS (the kernel syncs per-thread counters lazily).
    peaks = {n: max(peaks[n], *(s[2][n] for s in sampler.samples)) for n in names}
    ok = True
    if base is None:
        print("no warm-up sample (fewer streams than --warmup)")
        return False
    later = [s for s in sampler.samples if s[1] >= base[1]]
    for n in names:
        grow_end = (end[2][n] - base[2][n]) / base[2][n] * 100
        grow_max = (max(s[2][n] for s in later) - base[2][n]) / base[2][n] * 100
        verdict = "ok" if max(grow_end, grow_max) < 5 else "OVER the 5% goal"
        ok &= grow_end < 5 and grow_max < 5
        print(f"{n}: growth after warm-up: end {grow_end:+.1f}%, "
              f"largest sample {grow_max:+.1f}% ({verdict}); peak RSS (VmHWM) {peaks[n]:,} KiB")
        # The trend once the process has settled: the second half of the run.
        mid = min(later, key=lambda smp: abs(smp[1] - end[1] / 2))
        if mid is not end:
            print(f"{n}: second half ({mid[0]} streams to the end): "
                  f"{(end[2][n] - mid[2][n]) / mid[2][n] * 100:+.1f}%, "
                  f"threads {mid[3][n]} -> {end[3][n]}")
    statuses = result["statuses"]
    print(f"bench: {result['completed']:,} completed, {result['failed']:,} failed, "
          f"statuses {statuses}, {result['requests_per_second']:,.0f} requests/s over "
          f"{result['seconds']:.0f} s, latency p50 {result['latency_ms']['p50']} ms "
          f"p99 {result['latency_ms']['p99']} ms, version {result.get('version')}")
    if result["failed"] or set(statuses) != {"200"} or result["connection_errors"]:
        print(f"FAILED requests: {result['failures']} {result['connection_errors']}")
        ok = False
    return ok


def milestones(args):
    marks = list(range(args.every, args.streams + 1, args.every))
    return [args.warmup] + marks


def run_session(args, folder):
    serve = subprocess.Popen(
        [SPDY, "serve", folder, "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        addr = serve.stdout.readline().strip().split("://")[1]
        sampler = Sampler(serve.stderr, lambda line: " GET " in line,
                          {"serve": serve.pid}, milestones(args))
        sampler.sample("start")
        sampler.start()
        result = bench(f"http://{addr}/small.bin", args.in_flight, args.streams, False)
        if not sampler.wait_for(args.streams, 30):
            sys.exit(f"serve logged {sampler.count} of {args.streams} requests")
        sampler.sample("end")
        peaks = {"serve": hwm_kib(serve.pid)}
        if serve.poll() is not None:
            sys.exit(f"spdy serve died: {sampler.other_lines}")
    finally:
        serve.kill()
        serve.wait()
    title = (f"one session: spdy bench -c 1 -m {args.in_flight} -n {args.streams:,} -> "
             f"spdy serve (plain TCP, {args.body}-byte body)")
    return report(title, sampler, f"{args.warmup:,}", result, peaks)


def run_tunnel(args, folder):
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    env = dict(os.environ, SPDY_TUNNEL_TOKEN="soak")
    procs = []
    try:
        proxy = subprocess.Popen(
            [SPDY, "proxy", "--listen", "127.0.0.1:0", "--tunnels", "127.0.0.1:0",
             "--cert", cert, "--key", key],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proxy)
        public = proxy.stdout.readline().strip().split("://")[1]
        tunnels = proxy.stdout.readline().strip().split("://")[1]
        origin_log = open(os.path.join(folder, "origin.log"), "w")
        origin = subprocess.Popen(
            [SPDY, "origin", "--proxy", tunnels, "--name", "soak", "--dir", folder],
            stdout=subprocess.DEVNULL, stderr=origin_log, env=env)
        procs.append(origin)
        read_until(proxy.stderr, "origin soak connected", 30)
        # One line per public request: "PEER GET /small.bin -> ORIGIN: 200".
        sampler = Sampler(proxy.stderr, lambda line: " -> " in line,
                          {"proxy": proxy.pid, "origin": origin.pid}, milestones(args))
        sampler.sample("start")
        sampler.start()
        result = bench(f"https://{public}/small.bin", args.tunnel_in_flight, args.streams, True)
        if not sampler.wait_for(args.streams, 30):
            sys.exit(f"proxy logged {sampler.count} of {args.streams} requests")
        sampler.sample("end")
        peaks = {"proxy": hwm_kib(proxy.pid), "origin": hwm_kib(origin.pid)}
        for p in procs:
            if p.poll() is not None:
                sys.exit(f"{p.args[1]} died: {sampler.other_lines}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    title = (f"tunnel: spdy bench -k -c 1 -m {args.tunnel_in_flight} -n {args.streams:,} "
             f"(SPDY over TLS) -> spdy proxy -> tunnel -> spdy origin --dir "
             f"({args.body}-byte body)")
    return report(title, sampler, f"{args.warmup:,}", result, peaks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=100_000)
    ap.add_argument("--warmup", type=int, default=100_000)
    ap.add_argument("--in-flight", type=int, default=100)
    ap.add_argument("--tunnel-in-flight", type=int, default=24)
    ap.add_argument("--body", type=int, default=100, help="response body bytes")
    ap.add_argument("--only", choices=["session", "tunnel"])
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin", help="the spdy binary to run (implies --no-build)")
    args = ap.parse_args()
    if args.bin:
        global SPDY
        SPDY = os.path.abspath(args.bin)
        args.no_build = True
    if args.warmup > args.streams:
        sys.exit("--warmup is larger than --streams")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "spdy-cli"], cwd=ROOT, check=True)
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "small.bin"), "wb") as f:
            f.write(os.urandom(args.body))
        if args.only in (None, "session"):
            ok &= run_session(args, folder)
        if args.only in (None, "tunnel"):
            ok &= run_tunnel(args, folder)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
