#!/usr/bin/env python3
"""The reverse tunnel's cost: the same downloads from a local HTTP/1.1
server, once directly and once through `spdy proxy` -> tunnel ->
`spdy origin --forward`, side by side in one run. Not a test: it asserts
nothing about time.

    python3 bench/tunnel.py [--runs 3] [--size-mib 256] [--parallel 16]

Workloads: one download of SIZE MiB, and PARALLEL downloads of SIZE /
PARALLEL MiB at once (each its own HTTP/1.1 connection to the proxy, all
down one tunnel). The local server is Python's http.server (threaded,
sendfile). Prints MiB/s for each path (median of --runs) and the ratio.
Downloads with curl; builds `spdy` in release mode first.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPDY = os.path.join(ROOT, "target", "release", "spdy")


def first_lines(proc, n):
    lines = []
    for _ in range(n):
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"{proc.args} ended early")
        lines.append(line.strip())
    return lines


def wait_for_stderr(proc, needle, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stderr.readline()
        if needle in line:
            return
    sys.exit(f"{proc.args}: no {needle!r} in time")


def download(addr, path, host):
    """Bytes of one download with curl (a Python client would be the
    bottleneck)."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
         "-H", f"Host: {host}", f"http://{addr}{path}"],
        capture_output=True, text=True, timeout=300)
    status, size = out.stdout.split()
    if out.returncode != 0 or status != "200":
        sys.exit(f"GET {path} via {addr}: {status} {out.stderr}")
    return int(size)


def timed(addr, path, host, parallel):
    """MiB/s of `parallel` downloads of `path` at once."""
    sizes = [0] * parallel

    def one(i):
        sizes[i] = download(addr, path, host)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    return sum(sizes) / secs / (1 << 20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--parallel", type=int, default=16)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "spdy-cli"], cwd=ROOT, check=True)
    procs = []
    with tempfile.TemporaryDirectory() as folder:
        size = args.size_mib << 20
        with open(os.path.join(folder, "one.bin"), "wb") as f:
            f.write(os.urandom(size))
        with open(os.path.join(folder, "part.bin"), "wb") as f:
            f.write(os.urandom(size // args.parallel))
        try:
            local = subprocess.Popen(
                [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", folder],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(local)
            # "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
            port = first_lines(local, 1)[0].split(" port ")[1].split()[0]
            local_addr = f"127.0.0.1:{port}"
            env = dict(os.environ, SPDY_TUNNEL_TOKEN="bench")
            proxy = subprocess.Popen(
                [SPDY, "proxy", "--listen", "127.0.0.1:0", "--tunnels", "127.0.0.1:0", "--quiet"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            procs.append(proxy)
            public, tunnels = (line.split("://")[1] for line in first_lines(proxy, 2))
            origin = subprocess.Popen(
                [SPDY, "origin", "--proxy", tunnels, "--name", "bench",
                 "--forward", f"http://{local_addr}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            procs.append(origin)
            wait_for_stderr(proxy, "origin bench connected")

            rows = []
            for label, path, parallel in [(f"1 x {args.size_mib} MiB", "/one.bin", 1),
                                          (f"{args.parallel} x {args.size_mib // args.parallel} MiB",
                                           "/part.bin", args.parallel)]:
                direct = [timed(local_addr, path, local_addr, parallel) for _ in range(args.runs)]
                tunnel = [timed(public, path, "bench.example", parallel) for _ in range(args.runs)]
                rows.append((label, statistics.median(direct), statistics.median(tunnel)))
            print(f"medians of {args.runs} runs, MiB/s of body, loopback\n")
            print(f"{'workload':<16} {'direct':>10} {'tunnel':>10} {'ratio':>7}")
            for label, direct, tunnel in rows:
                print(f"{label:<16} {direct:>10.0f} {tunnel:>10.0f} {tunnel / direct:>7.2f}")
        finally:
            for p in procs:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
