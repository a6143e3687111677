#!/usr/bin/env python3
"""Overload run (issue 16): measure yizhan's capacity on nearby search, then
offer it three times that for a while and record what a province's phones
and its orchestrator would see.

Run through `bench/overload`, which builds the release binary first. Python
standard library plus `wrk`. The server runs on 127.0.0.1 on a fresh SQLite
file seeded with the shipped Shandong dataset (12,759 sites), with the
overload limits `yizhan serve` has by default; it is stopped on exit.

1. Capacity: wrk, closed loop, `--capacity-connections` connections (well
   under the concurrency limit, so nothing is shed) for `--capacity-duration`
   seconds: answered requests per second = C.
2. Overload: wrk with a pacing script (each connection sends a request,
   waits for the answer, then pauses; enough connections that the offered
   rate is `--factor` × C) for `--duration` seconds. Meanwhile a separate
   client probes `/healthz` on a new connection every 100 ms (median, p99,
   max latency; failures), and the server's RSS is read every 2 s.
3. Written to `bench/OVERLOAD.md`: C, the offered and answered rates, the
   fraction shed (503), the probe's latencies and the RSS series.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CHILDREN = []


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    CHILDREN.append(p)
    return p


@atexit.register
def _cleanup():
    for p in CHILDREN:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def http_get(port, path, timeout=5.0):
    """One GET on a new connection: (status, seconds)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        while True:  # read to the end: the probe counts the whole answer
            chunk = s.recv(65536)
            if not chunk:
                break
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, time.perf_counter() - started


def pct(vals, p):
    if not vals:
        return float("nan")
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


PACED_LUA = r"""
-- wrk script: each connection sends one request, waits for its answer, then
-- pauses `pause_ms` (so connections × 1000/pause_ms ≈ the offered rate).
local paths = {}
local idx = 1
local counter = 0
local pause = 100
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  for line in io.lines(args[1]) do if #line > 0 then paths[#paths + 1] = line end end
  pause = tonumber(args[2]) or 0
  idx = ((id or 0) * 7919) % #paths + 1
end
function delay() if pause > 0 then return math.random(0, 2 * pause) end return 0 end
function request()
  local p = paths[idx]; idx = idx % #paths + 1
  return wrk.format("GET", p)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def pinned(cpu):
    """`taskset -c CPU` when there are two CPUs or more and taskset exists."""
    if cpu is None or (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def wrk(port, paths_file, lua, connections, duration, pause_ms, threads=1):
    cmd = pinned(1) + ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(lua), f"http://127.0.0.1:{port}", "--", str(paths_file), str(pause_ms)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError("wrk printed no summary:\n" + out)
    r = json.loads(line[len("WRKJSON "):])
    r["seconds"] = r["duration_us"] / 1e6
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "yizhan"))
    ap.add_argument("--capacity-connections", type=int, default=32)
    ap.add_argument("--capacity-duration", type=int, default=15)
    ap.add_argument("--factor", type=float, default=3.0, help="offered load as a multiple of capacity")
    ap.add_argument("--pause-ms", type=int, default=100, help="pause between one connection's requests")
    ap.add_argument("--duration", type=int, default=45, help="seconds of overload")
    ap.add_argument("--out", default=str(BENCH / "OVERLOAD.md"))
    ap.add_argument("--command-line", default="bench/overload")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="yizhan-overload-"))
    port = free_port()
    ops_port = free_port()
    rnd = random.Random(16)
    paths = work / "paths.txt"
    with open(paths, "w") as f:
        for _ in range(20000):  # points over Shandong
            lat, lon = rnd.uniform(34.4, 38.3), rnd.uniform(114.8, 122.7)
            f.write(f"/v1/sites/nearby?lat={lat:.5f}&lon={lon:.5f}&limit=10\n")
    lua = work / "paced.lua"
    lua.write_text(PACED_LUA)

    env = dict(os.environ, YIZHAN_LOG="warn", YIZHAN_LOG_FORMAT="json")
    for k in list(env):
        if k.startswith("YIZHAN_") and k not in ("YIZHAN_LOG", "YIZHAN_LOG_FORMAT"):
            del env[k]
    server_log = open(work / "server.log", "w")
    log(f"starting {args.binary} on 127.0.0.1:{port} (fresh SQLite, shipped seed)")
    srv = spawn(pinned(0) + [args.binary, "serve", "--listen", f"127.0.0.1:{port}",
                 "--ops-listen", f"127.0.0.1:{ops_port}",
                 "--database-url", f"sqlite:{work / 'yizhan.db'}",
                 "--vapid-subject", "mailto:ops@example.cn"],
                env=env, stderr=server_log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while True:
        try:
            if http_get(port, "/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or srv.poll() is not None:
            sys.exit("yizhan did not become ready; see " + str(work / "server.log"))
        time.sleep(0.2)
    rss = [(0.0, rss_kb(srv.pid))]
    t0 = time.time()
    log(f"ready; RSS {rss[0][1] / 1024:.0f} MB")

    # RSS sampler for the whole run.
    stop = threading.Event()

    def sample_rss():
        while not stop.wait(2.0):
            rss.append((time.time() - t0, rss_kb(srv.pid)))
    threading.Thread(target=sample_rss, daemon=True).start()

    log("warm-up, 5 s")
    wrk(port, paths, lua, args.capacity_connections, 5, 0)
    log(f"capacity: {args.capacity_connections} connections, closed loop, {args.capacity_duration} s")
    cap = wrk(port, paths, lua, args.capacity_connections, args.capacity_duration, 0)
    capacity = (cap["requests"] - cap["err_status"]) / cap["seconds"]
    log(f"capacity C = {capacity:.0f} req/s (p50 {cap['p50_us'] / 1000:.1f} ms, p99 {cap['p99_us'] / 1000:.1f} ms, non-2xx {cap['err_status']})")
    rss_after_capacity = rss_kb(srv.pid)

    target = args.factor * capacity
    per_conn = 1000.0 / args.pause_ms
    connections = max(64, int(target / per_conn))
    log(f"overload: {args.factor:g} × C = {target:.0f} req/s offered by {connections} connections "
        f"pausing ~{args.pause_ms} ms, {args.duration} s; /healthz probed every 100 ms")

    probes = {"api": [], "ops": []}  # listener -> [(t, status, seconds)]

    def probe(name, p):
        while not stop.is_set():
            t = time.time()
            try:
                st, secs = http_get(p, "/healthz")
            except OSError:
                st, secs = 0, time.time() - t
            probes[name].append((t - t0, st, secs))
            stop.wait(max(0.0, 0.1 - (time.time() - t)))
    probers = [threading.Thread(target=probe, args=(n, p), daemon=True)
               for n, p in (("api", port), ("ops", ops_port))]
    over_start = time.time() - t0
    for pr in probers:
        pr.start()
    over = wrk(port, paths, lua, connections, args.duration, args.pause_ms)
    over_end = time.time() - t0
    stop.set()
    for pr in probers:
        pr.join()
    rss.append((time.time() - t0, rss_kb(srv.pid)))

    # Shed counters from the server itself.
    shed = {}
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        body = b""
        while chunk := s.recv(65536):
            body += chunk
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("yizhan_http_requests_shed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            shed[reason] = int(float(line.rsplit(" ", 1)[1]))
    srv.send_signal(signal.SIGTERM)
    exit_code = srv.wait(60)

    offered = over["requests"] / over["seconds"]
    answered = (over["requests"] - over["err_status"]) / over["seconds"]
    shed_frac = over["err_status"] / max(1, over["requests"])
    def probe_row(name, what):
        ps = probes[name]
        lat = [p[2] * 1000 for p in ps if p[1] == 200]
        failed = len([p for p in ps if p[1] != 200])
        over100 = len([x for x in lat if x > 100])
        return (f"| `/healthz` on {what}, a new connection every 100 ms ({len(ps)} probes) | median **{pct(lat, 50):.1f} ms**, "
                f"p99 **{pct(lat, 99):.1f} ms**, max **{max(lat) if lat else float('nan'):.1f} ms**; {over100} over 100 ms; {failed} not 200 |")
    over_rss = [kb for (t, kb) in rss if kb and over_start <= t <= over_end + 1]
    rss_mb = lambda kb: f"{kb / 1024:.0f}"

    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    wrk_errors = {k: over[k] for k in ("err_connect", "err_read", "err_write", "err_timeout")}
    lines = [
        "# Overload run",
        "",
        f"`{args.command_line}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — "
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}. The machine was shared with other "
        "builds while this ran: the numbers are noisy. The server was pinned to CPU 0 and wrk (one thread) to CPU 1 "
        "(`taskset`), so that one machine can offer three times what the server answers; the probes were not pinned.",
        "",
        "The server: release build, fresh SQLite with the shipped 12,759 Shandong sites, the overload "
        "limits `yizhan serve` has by default (concurrency 64 per core, request timeout 30 s), "
        "`YIZHAN_LOG=warn`. The load: `GET /v1/sites/nearby?lat=…&lon=…&limit=10` at 20,000 random points over Shandong.",
        "",
        "| | |",
        "| --- | --- |",
        f"| capacity C ({args.capacity_connections} connections, closed loop, {args.capacity_duration} s) | **{capacity:.0f} req/s** (p50 {cap['p50_us'] / 1000:.1f} ms, p99 {cap['p99_us'] / 1000:.1f} ms) |",
        f"| overload: offered ({connections} connections, each pausing 0–{2 * args.pause_ms} ms between requests, {args.duration} s) | {offered:.0f} req/s = **{offered / capacity:.1f} × C** (target {args.factor:g} × C) |",
        f"| answered 200 | {answered:.0f} req/s ({answered / capacity:.2f} × C) |",
        f"| shed: 503 + Retry-After | **{100 * shed_frac:.1f} %** of requests ({over['err_status']}); server's counters: {json.dumps(shed)} |",
        f"| wrk latency of all answers (200 and 503) | p50 {over['p50_us'] / 1000:.1f} ms, p99 {over['p99_us'] / 1000:.1f} ms, max {over['max_us'] / 1000:.0f} ms |",
        f"| wrk socket errors | {json.dumps(wrk_errors)} |",
        probe_row("ops", "the operators' listener (`--ops-listen`, its own thread)"),
        probe_row("api", "the API's listener (outside the concurrency limit, same runtime as the load)"),
        f"| RSS: ready → after capacity run → during overload (min–max) → end | {rss_mb(rss[0][1])} → {rss_mb(rss_after_capacity)} → {rss_mb(min(over_rss))}–{rss_mb(max(over_rss))} → {rss_mb(rss[-1][1])} MB |",
        f"| shutdown (SIGTERM) | exit code {exit_code} |",
        "",
        "RSS every 2 s (seconds since ready: MB):",
        "",
        "```",
        " ".join(f"{t:.0f}:{rss_mb(kb)}" for (t, kb) in rss if kb),
        "```",
        "",
        f"Overload ran from {over_start:.0f} s to {over_end:.0f} s.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
