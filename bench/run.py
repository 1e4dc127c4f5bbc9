#!/usr/bin/env python3
"""Moves the same workloads through every client/server pair and prints a
table with ratios. Not a test: it asserts nothing about time.

    python3 bench/run.py [--version 3.1] [--runs 3]

Pairs: our client -> our server, our client -> node-spdy server, node-spdy
client -> our server, node -> node, and a raw TCP copy on loopback (the
physical limit). Workloads: one 256 MiB download ("big"), 100 x 1 MiB in
parallel ("parallel"), 10,000 GETs of 100 bytes with 100 in flight
("small"). Each cell is the median of --runs runs. CPU is user + system
seconds of client and server together, per GiB moved (big and parallel)
or per 10,000 requests (small).

Needs `npm ci --prefix interop` (node-spdy) and builds the Rust programs in
release mode first.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "target", "release", "examples")
CLK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    """User + system CPU seconds used so far by a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def start_server(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"server {cmd} did not start: {line!r}")
    return proc, line.split()[-1]


def run_client(cmd):
    """Runs a client; returns (its JSON result, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        # node-spdy's client crashes now and then under load (inside its
        # own buffer code); report it and go on with the other runs.
        err = [l for l in out.stderr.splitlines() if l.strip() and not l.strip().startswith("at ")]
        print(f"note: client {' '.join(cmd[:2])} ... {cmd[-1]} failed: {' | '.join(err[-3:])}", file=sys.stderr)
        return None, 0.0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.stdout.strip().splitlines()[-1]), cpu


def measure(server_cmd, client_cmd, runs):
    server, addr = start_server(server_cmd)
    try:
        results = []
        for _ in range(runs):
            s0 = cpu_of(server.pid)
            res, client_cpu = run_client(client_cmd(addr))
            if res is None:
                continue
            res["cpu"] = client_cpu + cpu_of(server.pid) - s0
            results.append(res)
        return results
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="3.1")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    v = args.version
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "spdy",
                    "--example", "bench_server", "--example", "loadgen", "--example", "rawtcp"],
                   cwd=ROOT, check=True)
    ours_server = [os.path.join(EX, "bench_server"), "127.0.0.1:0"]
    node_server = ["node", "bench/node_server.js", "0"]
    ours_client = lambda w: (lambda addr: [os.path.join(EX, "loadgen"), addr, v, w])
    node_client = lambda w: (lambda addr: ["node", "bench/node_client.js", addr, v, w])
    pairs = [
        ("ours -> ours", ours_server, ours_client),
        ("ours -> node", node_server, ours_client),
        ("node -> ours", ours_server, node_client),
        ("node -> node", node_server, node_client),
    ]
    table = {}
    raw = measure([os.path.join(EX, "rawtcp"), "server", "127.0.0.1:0"],
                  lambda addr: [os.path.join(EX, "rawtcp"), "client", addr], args.runs)
    table[("raw TCP", "big")] = raw
    for name, server, client in pairs:
        for w in ("big", "parallel", "small"):
            table[(name, w)] = measure(server, client(w), args.runs)

    def med(results, key):
        # NaN (printed "nan") when every run of a cell failed.
        return statistics.median(key(r) for r in results) if results else float("nan")

    mib_s = lambda r: r["bytes"] / r["secs"] / (1 << 20)
    req_s = lambda r: r["requests"] / r["secs"]
    cpu_gib = lambda r: r["cpu"] / (r["bytes"] / (1 << 30))
    raw_big = med(raw, mib_s)
    print(f"SPDY/{v}, medians of {args.runs} runs; client (left) -> server (right), one connection\n")
    print(f"{'pair':<14} {'256 MiB MiB/s':>14} {'x raw':>6} {'CPU s/GiB':>10} "
          f"{'100x1MiB MiB/s':>15} {'x raw':>6} {'CPU s/GiB':>10} {'small req/s':>12} {'CPU s/10k':>10}")
    print(f"{'raw TCP':<14} {raw_big:>14.0f} {1.0:>6.2f} {med(raw, cpu_gib):>10.2f}")
    for name, _, _ in pairs:
        big, par, small = (table[(name, w)] for w in ("big", "parallel", "small"))
        print(f"{name:<14} {med(big, mib_s):>14.0f} {med(big, mib_s) / raw_big:>6.2f} {med(big, cpu_gib):>10.2f} "
              f"{med(par, mib_s):>15.0f} {med(par, mib_s) / raw_big:>6.2f} {med(par, cpu_gib):>10.2f} "
              f"{med(small, req_s):>12.0f} {med(small, lambda r: r['cpu']):>10.2f}")


if __name__ == "__main__":
    main()
