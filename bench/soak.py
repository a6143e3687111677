#!/usr/bin/env python3
"""Soak: mixed traffic against one `yizhan serve` for a long time (issue 16).

Riders' reads (nearby, viewport, clusters, tiles, search, site detail, the
change feed), workers booking and cancelling, and site managers editing hours
(If-Match), at a fixed offered rate from a pool of client threads, against
the release build on a fresh SQLite file seeded with the shipped 12,759
Shandong sites. Every minute it records the server's resident memory and the
minute's latency percentiles; at the end it reports memory growth after
warm-up and writes bench/SOAK.md and bench/SOAK.json.

    bench/soak                      # 30 minutes at 200 requests/s
    bench/soak --minutes 3 --rate 100 --no-build   # a smoke run

Python standard library only; the server listens on 127.0.0.1 and stops on exit.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, free_port, log, proc_status, spawn, stop  # noqa: E402

BENCH = ROOT / "bench"
WORK = BENCH / "work" / "soak"

# What a minute of traffic is made of (weights).
MIX = [
    ("nearby", 34),
    ("viewport", 10),
    ("clusters", 10),
    ("tile", 10),
    ("search", 10),
    ("site", 5),
    ("feed", 5),
    ("book", 8),
    ("cancel", 5),
    ("edit", 3),
]
# Statuses that are answers, not failures, for each kind of request.
EXPECTED = {
    "book": {201, 200, 409, 422},  # 409/422: full, already booked, closed
    "cancel": {200, 404, 409, 422},
    "edit": {200, 412},  # 412: another manager saved first
}
# Shandong's box (WGS-84), where the seeded sites are.
LON = (114.8, 122.7)
LAT = (34.4, 38.4)
HOURS = ["Mo-Fr 08:00-18:00; PH off", "Mo-Su 07:00-21:00", "24/7", "Mo-Sa 09:00-17:00; PH off"]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


class Server:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.db = workdir / "soak.db"
        self.url = f"sqlite:{self.db}"

    def cli(self, *args):
        out = subprocess.run(
            [str(self.binary), *args, "--database-url", self.url],
            check=True, capture_output=True, text=True, cwd=self.workdir,
        )
        return out.stdout.strip()

    def start(self):
        # The default log level, access log included, as a deployment runs.
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIZHAN_")}
        self.logf = open(self.workdir / "serve.log", "w")
        self.proc = spawn(
            # One loopback address and one manager stand for a province's many
            # riders and managers here: the per-address and per-user write
            # limits (tests/overload.rs) are off; the concurrency limit and the
            # time bound keep their defaults.
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", self.url,
             "--log-format", "json", "--address-writes-per-minute", "0", "--user-writes-per-minute", "0"],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"yizhan serve exited ({self.proc.returncode}); see {self.workdir}/serve.log")
            try:
                status, _, _ = request(self.port, "GET", "/readyz")
                if status == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            if time.monotonic() - t0 > 120:
                raise RuntimeError("not ready after 120 s")
            time.sleep(0.05)


def request(port, method, path, token=None, body=None, headers=None, conn=None):
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    etag = r.getheader("ETag")
    if own:
        c.close()
    try:
        doc = json.loads(raw) if raw and raw[:1] in (b"{", b"[") else None
    except ValueError:
        doc = None
    return r.status, doc, etag


class Traffic:
    """The mixed load: fixed offered rate, shared schedule, per-minute stats."""

    def __init__(self, port, rate, threads, seed, workers, manager, sites, managed, events):
        self.port, self.rate, self.threads = port, rate, threads
        self.workers, self.manager, self.sites, self.managed, self.events = workers, manager, sites, managed, events
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.next_at = time.monotonic()
        self.stop_at = None
        self.samples = []  # (kind, latency_ms, status, ok)
        self.bookings = []  # (token, booking id)
        self.feed_since = 0
        kinds, weights = zip(*MIX)
        self.kinds, self.cum = kinds, [sum(weights[: i + 1]) for i in range(len(weights))]

    def pick(self, rng):
        x = rng.uniform(0, self.cum[-1])
        for k, c in zip(self.kinds, self.cum):
            if x <= c:
                return k
        return self.kinds[-1]

    def slot(self):
        """The next send time in the shared open-loop schedule (None when done)."""
        with self.lock:
            t = self.next_at
            self.next_at += 1.0 / self.rate
        if t >= self.stop_at:
            return None
        return t

    def _drain(self):
        s, self.samples = self.samples, []
        return s

    def one(self, kind, rng, conn):
        p = self.port
        lon, lat = rng.uniform(*LON), rng.uniform(*LAT)
        if kind == "nearby":
            extra = rng.choice(["", "&kind=outdoor_station", "&amenity=ebike_charging", "&open=true", "&crs=gcj02"])
            return request(p, "GET", f"/v1/sites/nearby?lat={lat:.5f}&lon={lon:.5f}&k=10{extra}", conn=conn)
        if kind == "viewport":
            d = rng.uniform(0.02, 0.2)
            return request(p, "GET", f"/v1/sites?bbox={lon:.4f},{lat:.4f},{lon + d:.4f},{lat + d:.4f}", conn=conn)
        if kind == "clusters":
            z = rng.randint(5, 14)
            d = 360.0 / (2 ** z) * 4
            return request(p, "GET", f"/v1/sites/clusters?bbox={lon:.4f},{lat:.4f},{lon + d:.4f},{lat + d:.4f}&zoom={z}", conn=conn)
        if kind == "tile":
            import math
            z = rng.randint(6, 14)
            n = 2 ** z
            x = int((lon + 180) / 360 * n)
            y = int((1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * n)
            return request(p, "GET", f"/v1/tiles/{z}/{x}/{y}.mvt", conn=conn)
        if kind == "search":
            q = rng.choice(["济南", "户外劳动者", "爱心妈妈", "驿站", "工作室", "青岛 市南", "兰山区"])
            from urllib.parse import quote
            return request(p, "GET", f"/v1/sites/search?q={quote(q)}&limit=10", conn=conn)
        if kind == "site":
            return request(p, "GET", f"/v1/sites/{rng.choice(self.sites)}", conn=conn)
        if kind == "feed":
            return request(p, "GET", f"/v1/sites/changes?since={self.feed_since}&limit=100", conn=conn)
        if kind == "book":
            token = rng.choice(self.workers)
            event = rng.choice(self.events)
            key = f"soak-{rng.getrandbits(64):016x}"
            status, doc, etag = request(p, "POST", f"/v1/events/{event}/bookings", token=token, body={},
                                        headers={"Idempotency-Key": key}, conn=conn)
            if status in (200, 201) and doc and "id" in doc:
                with self.lock:
                    self.bookings.append((token, doc["id"]))
            return status, doc, etag
        if kind == "cancel":
            with self.lock:
                item = self.bookings.pop(rng.randrange(len(self.bookings))) if self.bookings else None
            if item is None:
                return request(p, "GET", "/healthz", conn=conn)
            token, bid = item
            return request(p, "DELETE", f"/v1/bookings/{bid}", token=token, conn=conn)
        if kind == "edit":
            site = rng.choice(self.managed)
            status, doc, etag = request(p, "GET", f"/v1/sites/{site}", conn=conn)
            if status != 200 or not etag:
                return status, doc, etag
            return request(p, "PATCH", f"/v1/sites/{site}", token=self.manager,
                           body={"opening_hours": rng.choice(HOURS)}, headers={"If-Match": etag}, conn=conn)
        raise ValueError(kind)

    def client(self, n):
        rng = random.Random(self.rng.random() + n)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while True:
            t = self.slot()
            if t is None:
                break
            now = time.monotonic()
            if t > now:
                time.sleep(t - now)
            kind = self.pick(rng)
            # Latency from the scheduled start: a server that falls behind is
            # charged for the queue it causes (no coordinated omission).
            try:
                status, _, _ = self.one(kind, rng, conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status = 0
            ms = (time.monotonic() - t) * 1000.0
            ok = status in EXPECTED.get(kind, {200})
            with self.lock:
                self.samples.append((kind, ms, status, ok))
        conn.close()

    def run(self, minutes, server_pid, on_minute):
        self.stop_at = time.monotonic() + minutes * 60.0
        self.next_at = time.monotonic()
        ts = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.threads)]
        for t in ts:
            t.start()
        start = time.monotonic()
        for minute in range(1, minutes + 1):
            while time.monotonic() < start + minute * 60.0:
                time.sleep(0.5)
                # keep the feed cursor near the head, as an app would
                if self.rng.random() < 0.1:
                    try:
                        s, doc, _ = request(self.port, "GET", f"/v1/sites/changes?since={self.feed_since}&limit=1000")
                        if s == 200 and doc and doc.get("next_since") is not None:
                            self.feed_since = doc["next_since"]
                    except OSError:
                        pass
            with self.lock:
                samples = self._drain()
            on_minute(minute, samples, proc_status(server_pid))
        for t in ts:
            t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--rate", type=float, default=200.0, help="offered requests per second")
    ap.add_argument("--threads", type=int, default=24, help="client threads")
    ap.add_argument("--warmup", type=int, default=10,
                    help="minutes before memory growth is measured (bench/SOAK-pilot.md: +6%% from minute 5, +1.3%% from minute 10)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=str(BENCH / "SOAK.md"))
    a = ap.parse_args()

    if not a.no_build:
        log("cargo build --release")
        subprocess.run(["cargo", "build", "--release", "--locked"], check=True, cwd=ROOT)
    binary = ROOT / "target" / "release" / "yizhan"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    server = Server(binary, WORK)
    ready = server.start()
    log(f"ready in {ready:.1f} s on port {server.port}")
    port = server.port

    # People: an admin, a site manager of 20 sites, 300 workers.
    sites = []
    for lat in (36.65, 36.07, 37.46, 35.06, 36.81):
        s, doc, _ = request(port, "GET", f"/v1/sites/nearby?lat={lat}&lon=117.5&k=50")
        sites += [it["id"] for it in (doc or {}).get("items", [])]
    sites = sorted(set(sites))
    assert len(sites) >= 40, f"too few seeded sites found: {len(sites)}"
    managed = sites[:20]
    server.cli("admin", "user", "create", "--phone", "13900000000", "--role", "admin")
    admin = server.cli("admin", "token", "--phone", "13900000000", "--ttl", "2d")
    args = ["admin", "user", "create", "--phone", "13900000001", "--role", "site_manager"]
    for s in managed:
        args += ["--site", str(s)]
    server.cli(*args)
    manager = server.cli("admin", "token", "--phone", "13900000001", "--ttl", "2d")
    workers = []
    for i in range(300):
        phone = f"137{i:08d}"
        server.cli("admin", "user", "create", "--phone", phone, "--role", "worker")
        workers.append(server.cli("admin", "token", "--phone", phone, "--ttl", "2d"))
    now = datetime.datetime.now(datetime.timezone.utc)
    events = []
    for i in range(30):
        body = {
            "kind": "training", "site_id": sites[20 + i % (len(sites) - 20)], "title": f"技能培训第{i + 1}期",
            "capacity": 40, "waitlist": True, "quotas": [],
            "starts_at": (now + datetime.timedelta(days=20)).isoformat(),
            "ends_at": (now + datetime.timedelta(days=20, hours=3)).isoformat(),
            "booking_opens_at": (now - datetime.timedelta(minutes=1)).isoformat(),
            "cancel_deadline": (now + datetime.timedelta(days=19)).isoformat(),
        }
        s, doc, _ = request(port, "POST", "/v1/events", token=admin, body=body)
        assert s == 201, f"event not created: {s} {doc}"
        events.append(doc["id"])
    log(f"{len(sites)} sites in the pool, {len(workers)} workers, {len(events)} events; "
        f"{a.minutes} min at {a.rate:.0f} req/s with {a.threads} threads")

    rows = []

    def on_minute(minute, samples, mem):
        lat = [s[1] for s in samples]
        bad = [s for s in samples if not s[3]]
        fivexx = sum(1 for s in samples if s[2] >= 500 or s[2] == 0)
        row = {
            "minute": minute, "requests": len(samples), "rss_mb": round(mem.get("VmRSS", 0), 1),
            # Heap and stacks (RssAnon) vs pages of the binary and mapped files (RssFile):
            # a leak shows in the first; the second grows as more code paths run.
            "rss_anon_mb": round(mem.get("RssAnon", 0), 1), "rss_file_mb": round(mem.get("RssFile", 0), 1),
            "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(max(lat) if lat else float("nan"), 1), "unexpected": len(bad), "server_errors": fivexx,
            "by_kind_p99": {k: round(percentile([s[1] for s in samples if s[0] == k], 99), 2) for k, _ in MIX},
            "statuses": {},
        }
        for s in samples:
            key = f"{s[0]}:{s[2]}"
            row["statuses"][key] = row["statuses"].get(key, 0) + 1
        rows.append(row)
        log(f"min {minute:>2}: {row['requests']} req, RSS {row['rss_mb']} MB, p50 {row['p50_ms']} ms, "
            f"p99 {row['p99_ms']} ms, unexpected {row['unexpected']}, 5xx/errors {fivexx}")

    traffic = Traffic(port, a.rate, a.threads, a.seed, workers, manager, sites, managed, events)
    traffic.run(a.minutes, server.proc.pid, on_minute)
    alive = server.proc.poll() is None
    stop(server.proc)

    w = min(a.warmup, len(rows))
    base = rows[w - 1]["rss_mb"] if rows else float("nan")
    final = rows[-1]["rss_mb"] if rows else float("nan")
    peak_after = max((r["rss_mb"] for r in rows[w - 1:]), default=float("nan"))
    growth = (final - base) / base * 100.0 if base else float("nan")
    anon_base = rows[w - 1]["rss_anon_mb"] if rows else float("nan")
    anon_final = rows[-1]["rss_anon_mb"] if rows else float("nan")
    anon_growth = (anon_final - anon_base) / anon_base * 100.0 if anon_base else float("nan")
    p99s = [r["p99_ms"] for r in rows[w:]] or [r["p99_ms"] for r in rows]
    summary = {
        "commit": commit, "date": datetime.date.today().isoformat(), "minutes": a.minutes, "rate": a.rate,
        "threads": a.threads, "warmup_minutes": w, "requests": sum(r["requests"] for r in rows),
        "rss_after_warmup_mb": base, "rss_final_mb": final, "rss_peak_after_warmup_mb": peak_after,
        "growth_pct": round(growth, 2), "rss_anon_after_warmup_mb": anon_base, "rss_anon_final_mb": anon_final,
        "anon_growth_pct": round(anon_growth, 2), "p99_median_ms": round(statistics.median(p99s), 2) if p99s else None,
        "p99_worst_minute_ms": max(p99s) if p99s else None,
        "unexpected": sum(r["unexpected"] for r in rows), "server_errors": sum(r["server_errors"] for r in rows),
        "server_alive_at_end": alive, "cpus": os.cpu_count(), "load_avg_end": os.getloadavg()[0],
        "machine": platform.platform(),
    }
    (BENCH / "SOAK.json").write_text(json.dumps({"summary": summary, "minutes": rows}, indent=1, ensure_ascii=False))
    write_md(Path(a.out), summary, rows, sys.argv[1:])
    log(f"RSS after warm-up {base} MB -> {final} MB at the end ({growth:+.2f}%); "
        f"p99 median {summary['p99_median_ms']} ms; 5xx/errors {summary['server_errors']}; wrote {a.out}")
    ok = alive and summary["server_errors"] == 0 and growth < 5.0
    sys.exit(0 if ok else 1)


def write_md(path, s, rows, argv):
    L = []
    L.append("# Soak: 30 minutes of mixed traffic\n")
    L.append(f"Generated by `bench/soak{(' ' + ' '.join(argv)) if argv else ''}` at commit `{s['commit']}` on {s['date']} "
             f"({s['cpus']} cores, shared; load average {s['load_avg_end']:.1f} at the end). Offered load "
             f"{s['rate']:.0f} requests/s, open loop from {s['threads']} client threads; latency counts from each "
             f"request's scheduled start. Mix: " + ", ".join(f"{k} {w}%" for k, w in MIX) + ".\n")
    L.append("| measure | result |\n| --- | --- |")
    L.append(f"| requests | {s['requests']:,} |")
    L.append(f"| RSS after {s['warmup_minutes']} min warm-up → at the end | {s['rss_after_warmup_mb']} MB → {s['rss_final_mb']} MB "
             f"(**{s['growth_pct']:+.2f}%**; target < 5%) |")
    L.append(f"| of which heap and stacks (RssAnon) | {s['rss_anon_after_warmup_mb']} MB → {s['rss_anon_final_mb']} MB "
             f"({s['anon_growth_pct']:+.2f}%) |")
    L.append(f"| RSS peak after warm-up | {s['rss_peak_after_warmup_mb']} MB |")
    L.append(f"| p99 latency, median over the minutes after warm-up | {s['p99_median_ms']} ms |")
    L.append(f"| p99 latency, worst minute after warm-up | {s['p99_worst_minute_ms']} ms |")
    L.append(f"| 5xx or connection errors | {s['server_errors']} |")
    L.append(f"| other unexpected statuses | {s['unexpected'] - s['server_errors']} |")
    L.append(f"| server alive at the end | {'yes' if s['server_alive_at_end'] else 'NO'} |\n")
    L.append("| minute | requests | RSS MB | anon MB | file MB | p50 ms | p99 ms | max ms | unexpected |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        L.append(f"| {r['minute']} | {r['requests']} | {r['rss_mb']} | {r.get('rss_anon_mb', '')} | {r.get('rss_file_mb', '')} "
                 f"| {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['unexpected']} |")
    L.append("\nPer-minute statuses by request kind and p99 by kind are in `bench/SOAK.json`.\n")
    path.write_text("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
