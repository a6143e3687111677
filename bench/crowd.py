#!/usr/bin/env python3
"""Crowd: N workers book one event within a second, over HTTP (issue 24, item 5).

A popular event opens and N distinct signed-in workers press "book" within
`--window-s` seconds. Against the release build of `yizhan serve` on a fresh
database (SQLite with `synchronous=FULL`, or PostgreSQL in a throwaway
`pg_virtualenv` cluster with fsync and synchronous_commit on):

1. The anchor: raw SQLite on the same disk, WAL + synchronous=FULL, one INSERT
   per transaction, for `--anchor-s` seconds: commits/s (Python's sqlite3).
2. The server starts on 127.0.0.1 with `--trusted-proxies 127.0.0.1` and the
   per-address and per-user write limits off (`0`), like bench/soak; each
   worker is a different client address through `X-Forwarded-For`.
3. Every worker signs in through the API: `POST /v1/auth/otp`, the code read
   from the server's log (the development `log` SMS provider prints it at INFO
   when the API listens on loopback: the same line `yizhan admin code` serves),
   `POST /v1/auth/token`.
4. An admin (`yizhan admin user create --role admin`, `yizhan admin token`)
   creates the event through the API: `--capacity` seats, with a waitlist
   unless `--no-waitlist`, booking open since a minute.
5. The client's own ceiling: `GET /healthz` (outside the server's concurrency
   limit, no database) as fast as the same client can, with the same in-flight
   cap, on the same connections.
6. The crowd: worker i arrives at i × window / N; at most `--inflight`
   requests are in flight (a pool of as many keep-alive connections, like a
   gateway's); each sends `POST /v1/events/{id}/bookings` with its own
   `Idempotency-Key` and, like a phone app, on 503 or 429 (or a broken
   connection) waits `Retry-After` seconds and sends the same request again.
   Latency counts from the arrival to the final answer (no coordinated
   omission: the wait for a free connection counts).
7. The invariants, read back through `GET /v1/events/{id}/attendees` as the
   admin: exactly min(capacity, N) confirmed, waitlist positions 1..n without
   gaps, one booking per person, and every 201 a worker got is in the list.

Writes bench/CROWD.json (one entry per backend, the last run of each) and
bench/CROWD.md. Python standard library only; everything on loopback; the
server (and the cluster) stop on exit, however it exits.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CHILDREN, ROOT, free_port, log, spawn, stop  # noqa: E402

BENCH = ROOT / "bench"
ADMIN_PHONE = "18600000000"
# Mobile prefixes for the workers: the log masks a phone as 137****0042, so
# the middle four digits are fixed and each prefix holds 10,000 workers.
PREFIXES = ["137", "138", "139", "135", "136", "150", "151", "152", "158", "159"]
CODE_RE = re.compile(rb"sign-in code for (\d{3}\*{4}\d{4}): (\d{6})")


def phone_of(i):
    return f"{PREFIXES[i // 10000]}0000{i % 10000:04d}"


def masked(phone):
    return f"{phone[:3]}****{phone[7:]}"


def addr_of(i):
    i += 1
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def pct(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))]


# ------------------------------------------------------------------ HTTP/1.1

class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port (opened lazily)."""

    def __init__(self, port):
        self.port, self.r, self.w, self.last = port, None, None, 0.0

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def request(self, method, path, headers=None, body=None):
        """(status, lowercased headers, body); raises OSError-like on a broken connection."""
        if self.w is not None and time.monotonic() - self.last > 5.0:
            self.close()  # the server closes idle connections (--header-read-timeout, 10 s)
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        data = b"" if body is None else body
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(data)}")
        self.w.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        try:
            head = await self.r.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            self.close()
            raise ConnectionError("connection closed") from e
        hl = head.decode("latin-1").split("\r\n")
        status = int(hl[0].split(" ", 2)[1])
        h = {}
        for line in hl[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                h[k.strip().lower()] = v.strip()
        if "content-length" in h:
            payload = await self.r.readexactly(int(h["content-length"]))
        elif h.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                parts.append(await self.r.readexactly(size))
                await self.r.readexactly(2)
            payload = b"".join(parts)
        else:
            payload = b""
        if h.get("connection", "").lower() == "close":
            self.close()
        self.last = time.monotonic()
        return status, h, payload


async def metrics_text(probe):
    st, _, raw = await probe.request("GET", "/metrics")
    return raw.decode(errors="replace") if st == 200 else ""


def metric_in(text, name):
    return next((float(l.split()[1]) for l in text.splitlines() if l.startswith(name + " ")), None)


async def metrics_value(probe, name):
    return metric_in(await metrics_text(probe), name)


async def call(conn, method, path, token=None, doc=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    body = None
    if doc is not None:
        body = json.dumps(doc).encode()
        h["Content-Type"] = "application/json"
    st, hd, raw = await conn.request(method, path, h, body)
    try:
        parsed = json.loads(raw) if raw[:1] in (b"{", b"[") else None
    except ValueError:
        parsed = None
    return st, hd, parsed


def retry_after(h):
    try:
        return max(0.0, float(h.get("retry-after", "1")))
    except ValueError:
        return 1.0


# ------------------------------------------------------------------ pieces

def anchor(workdir, seconds):
    """Raw SQLite on the same disk: WAL, synchronous=FULL, one INSERT per commit."""
    db = workdir / "anchor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE bookings (id INTEGER PRIMARY KEY, event INTEGER, person INTEGER, at REAL)")
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO bookings (event, person, at) VALUES (1, ?, ?)", (n, time.time()))
        c.execute("COMMIT")
        n += 1
    dt = time.perf_counter() - t0
    c.close()
    return {"commits": n, "seconds": round(dt, 3), "commits_per_s": round(n / dt, 1)}


class LogCodes:
    """Sign-in codes as the server's log prints them, by masked phone."""

    def __init__(self, path):
        self.path, self.pos, self.codes, self.buf = path, 0, {}, b""

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += len(data)
        data = self.buf + data
        cut = data.rfind(b"\n") + 1
        self.buf = data[cut:]
        for m in CODE_RE.finditer(data[:cut]):
            self.codes[m.group(1).decode()] = m.group(2).decode()

    async def code(self, phone, timeout=30.0):
        key = masked(phone)
        end = time.monotonic() + timeout
        while True:
            code = self.codes.pop(key, None)
            if code:
                return code
            if time.monotonic() > end:
                raise RuntimeError(f"no sign-in code for {key} in the log")
            await asyncio.sleep(0.02)


async def pool_of(port, k):
    q = asyncio.Queue()
    for _ in range(k):
        q.put_nowait(Conn(port))
    return q


async def with_conn(pool, fn):
    c = await pool.get()
    try:
        return await fn(c)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        c.close()
        raise ConnectionError("broken connection")
    finally:
        pool.put_nowait(c)


async def sign_in_all(port, n, inflight, logcodes):
    """Every worker through POST /v1/auth/otp and POST /v1/auth/token."""
    pool = await pool_of(port, inflight)
    sem = asyncio.Semaphore(inflight)
    tokens = [None] * n
    stats = {"otp_retries": 0, "token_retries": 0}

    async def poller():
        while True:
            logcodes.poll()
            await asyncio.sleep(0.02)
    pt = asyncio.create_task(poller())

    async def one(i):
        phone, xff = phone_of(i), {"X-Forwarded-For": addr_of(i)}
        async with sem:
            for _ in range(100):
                try:
                    st, h, doc = await with_conn(pool, lambda c: call(c, "POST", "/v1/auth/otp", doc={"phone": phone}, headers=xff))
                except ConnectionError:
                    st, h, doc = 0, {}, None
                if st == 202:
                    break
                if st not in (0, 429, 503):
                    raise RuntimeError(f"POST /v1/auth/otp for worker {i}: {st} {doc}")
                stats["otp_retries"] += 1
                await asyncio.sleep(retry_after(h))
            code = await logcodes.code(phone)
            for _ in range(100):
                try:
                    st, h, doc = await with_conn(pool, lambda c: call(c, "POST", "/v1/auth/token", doc={"phone": phone, "code": code}, headers=xff))
                except ConnectionError:
                    st, h, doc = 0, {}, None
                if st == 200:
                    tokens[i] = doc["token"]
                    return
                if st not in (0, 429, 503):
                    raise RuntimeError(f"POST /v1/auth/token for worker {i}: {st} {doc}")
                stats["token_retries"] += 1
                await asyncio.sleep(retry_after(h))
            raise RuntimeError(f"worker {i} could not sign in")

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    pt.cancel()
    stats["seconds"] = round(time.monotonic() - t0, 2)
    stats["per_s"] = round(n / (time.monotonic() - t0), 1)
    while not pool.empty():
        pool.get_nowait().close()
    return tokens, stats


async def ceiling(port, total, inflight):
    """The client's own ceiling: GET /healthz, `inflight` at a time."""
    pool = await pool_of(port, inflight)
    left = [total]
    errors = [0]

    async def loop():
        c = await pool.get()
        while left[0] > 0:
            left[0] -= 1
            try:
                st, _, _ = await c.request("GET", "/healthz")
                if st != 200:
                    errors[0] += 1
            except (OSError, ConnectionError):
                errors[0] += 1
                c.close()
        c.close()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(inflight)))
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"requests": total, "seconds": round(dt, 3), "req_per_s": round(total / dt, 1),
            "errors": errors[0], "client_cpu_share": round(cpu / dt, 2)}


def cpu_ticks(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


async def crowd(port, tokens, event, window, inflight, give_up_s, server_pid, seed):
    n = len(tokens)
    pool = await pool_of(port, inflight)
    # Open the pool's connections before the first arrival (a gateway's warm pool).
    conns = [pool.get_nowait() for _ in range(inflight)]
    for c in conns:
        await c.request("GET", "/healthz")
        pool.put_nowait(c)
    rng = random.Random(seed)
    keys = [f"crowd-{rng.getrandbits(64):016x}-{i}" for i in range(n)]
    res = [None] * n
    path = f"/v1/events/{event}/bookings"

    async def worker(i, t_arrive):
        await asyncio.sleep(max(0.0, t_arrive - time.monotonic()))
        headers = {"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": keys[i],
                   "X-Forwarded-For": addr_of(i), "Content-Type": "application/json"}
        first, retries, replayed, statuses = None, 0, False, []
        while True:
            try:
                st, h, raw = await with_conn(pool, lambda c: c.request("POST", path, headers, b"{}"))
            except ConnectionError:
                st, h, raw = 0, {}, b""
            if first is None:
                first = st
            statuses.append(st)
            now = time.monotonic()
            if st in (0, 429, 503) and now - t_arrive < give_up_s:
                retries += 1
                await asyncio.sleep(retry_after(h) if st else 1.0)
                continue
            doc = None
            try:
                doc = json.loads(raw) if raw[:1] == b"{" else None
            except ValueError:
                pass
            replayed = h.get("idempotent-replayed") == "true"
            res[i] = {"first": first, "final": st, "retries": retries, "latency": now - t_arrive,
                      "done": now, "replayed": replayed,
                      "booking": (doc or {}).get("id") if st == 201 else None,
                      "status": (doc or {}).get("status") if st == 201 else None,
                      "position": (doc or {}).get("waitlist_position") if st == 201 else None}
            return

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    srv0 = cpu_ticks(server_pid)
    t0 = time.monotonic() + 0.2
    await asyncio.gather(*(worker(i, t0 + i * window / n) for i in range(n)))
    t_end = max(r["done"] for r in res)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    srv1 = cpu_ticks(server_pid)
    while not pool.empty():
        pool.get_nowait().close()
    span = t_end - t0
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return res, {"span_s": span, "client_cpu_share": round(client_cpu / span, 2),
                 "server_cpu_share": round((srv1 - srv0) / span, 2) if srv0 is not None and srv1 is not None else None}


def check(attendees, res, n, capacity, waitlist):
    """The invariants, on the attendee list the admin reads back."""
    want_confirmed = min(capacity, n)
    confirmed = [a for a in attendees if a["status"] == "confirmed"]
    waiting = [a for a in attendees if a["status"] == "waitlisted"]
    others = [a for a in attendees if a["status"] not in ("confirmed", "waitlisted")]
    positions = sorted(a["waitlist_position"] for a in waiting if a.get("waitlist_position") is not None)
    users = [a["user_id"] for a in attendees]
    got = {r["booking"] for r in res if r and r["final"] == 201}
    listed = {a["booking_id"] for a in attendees}
    want_waiting = n - want_confirmed if waitlist else 0
    unanswered = sum(1 for r in res if r is None or r["final"] not in (201, 409))
    checks = {
        f"exactly min(capacity, N) = {want_confirmed} confirmed": len(confirmed) == want_confirmed,
        f"{want_waiting} waitlisted, positions 1..{want_waiting} without gaps": len(waiting) == want_waiting and positions == list(range(1, want_waiting + 1)),
        "no other status (offered, cancelled, …)": not others,
        "one booking per person": len(users) == len(set(users)),
        "every 201 a worker got is in the list, and nothing else": got == listed,
        "every worker has a final answer (201, or 409 full without a waitlist)": unanswered == 0,
    }
    return {"confirmed": len(confirmed), "waitlisted": len(waiting), "other": len(others),
            "rows": len(attendees), "unanswered": unanswered, "checks": checks, "all_hold": all(checks.values())}


# ------------------------------------------------------------------ the run

BINARY = None


def client_path():
    """The compiled client (examples/crowd_client.rs)."""
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples" / "crowd_client"


def run_client(plan):
    """Run the compiled client on `plan`; what it wrote (JSON)."""
    out = subprocess.run([str(client_path())], input=json.dumps(plan), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"crowd_client failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def crowd_compiled(port, tokens, event, window, inflight, give_up_s, server_pid, seed):
    """The crowd of `crowd`, sent by the compiled client: the same arrivals, keys and retries."""
    rng = random.Random(seed)
    workers = [{"token": t, "key": f"crowd-{rng.getrandbits(64):016x}-{i}", "addr": addr_of(i)}
               for i, t in enumerate(tokens)]
    doc = run_client({"mode": "crowd", "port": port, "path": f"/v1/events/{event}/bookings", "window_s": window,
                      "inflight": inflight, "give_up_s": give_up_s, "server_pid": server_pid, "workers": workers})
    return doc["results"], {"span_s": doc["span_s"], "client_cpu_share": doc["client_cpu_share"],
                            "server_cpu_share": doc["server_cpu_share"]}


def binary_path():
    if BINARY:
        return Path(BINARY).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "release" / "yizhan"


def pg_url():
    v = lambda k, d: os.environ.get(k, d)
    host = v("PGHOST", "localhost")
    host = "localhost" if host.startswith("/") else host
    return f"postgres://{quote(v('PGUSER', 'postgres'), safe='')}:{quote(v('PGPASSWORD', ''), safe='')}@{host}:{v('PGPORT', '5432')}/{v('PGDATABASE', 'postgres')}"


def cli(binary, url, workdir, *args):
    out = subprocess.run([str(binary), *args, "--database-url", url], check=True, capture_output=True,
                         text=True, cwd=workdir)
    return out.stdout.strip()


async def run(a):
    binary = binary_path()
    workdir = BENCH / "work" / f"crowd-{a.backend}"
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    result = {"backend": a.backend, "commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "client": a.client, "workers": a.workers, "window_s": a.window_s, "inflight": a.inflight, "capacity": a.capacity,
              "waitlist": not a.no_waitlist, "command": a.command_line, "label": a.label, "cpus": os.cpu_count(),
              "load_avg_start": round(os.getloadavg()[0], 2), "machine": platform.platform()}

    log(f"anchor: raw SQLite in {workdir} (WAL, synchronous=FULL, one INSERT per transaction), {a.anchor_s} s")
    result["anchor"] = anchor(workdir, a.anchor_s)
    log(f"anchor: {result['anchor']['commits_per_s']:.0f} commits/s")

    if a.backend == "postgres":
        url = pg_url()
        result["postgres"] = subprocess.run(["psql", "-X", "-At", "-c", "SHOW server_version"], capture_output=True, text=True).stdout.strip()
        result["postgres_settings"] = {s: subprocess.run(["psql", "-X", "-At", "-c", f"SHOW {s}"], capture_output=True, text=True).stdout.strip()
                                       for s in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "max_connections")}
        log(f"PostgreSQL {result['postgres']}: {result['postgres_settings']}")
    else:
        url = f"sqlite:{workdir / 'yizhan.db'}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIZHAN_")}
    logpath = workdir / "serve.log"
    logf = open(logpath, "w")
    server_args = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--database-url", url,
                   "--trusted-proxies", "127.0.0.1"]
    result["server_args"] = " ".join(shlex.quote(x) for x in server_args[1:]).replace(url, "URL")
    proc = spawn(server_args, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    t0 = time.monotonic()
    probe = Conn(port)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"yizhan serve exited ({proc.returncode}); see {logpath}")
        try:
            st, _, _ = await probe.request("GET", "/readyz")
            if st == 200:
                break
        except (OSError, ConnectionError, ValueError):
            probe.close()
        if time.monotonic() - t0 > 300:
            raise RuntimeError("not ready after 300 s")
        await asyncio.sleep(0.1)
    log(f"ready in {time.monotonic() - t0:.1f} s on 127.0.0.1:{port}")

    try:
        # The admin and the event.
        cli(binary, url, workdir, "admin", "user", "create", "--phone", ADMIN_PHONE, "--role", "admin")
        admin = cli(binary, url, workdir, "admin", "token", "--phone", ADMIN_PHONE, "--ttl", "1d")
        st, _, doc = await call(probe, "GET", "/v1/sites/nearby?lat=36.65&lon=117.0&k=1")
        assert st == 200 and doc["items"], f"no seeded site: {st} {doc}"
        site = doc["items"][0]["id"]
        now = datetime.datetime.now(datetime.timezone.utc)
        body = {"kind": "training", "site_id": site, "title": "会聚良缘 · 热门活动", "capacity": a.capacity,
                "waitlist": not a.no_waitlist, "quotas": [],
                "starts_at": (now + datetime.timedelta(days=20)).isoformat(),
                "ends_at": (now + datetime.timedelta(days=20, hours=3)).isoformat(),
                "booking_opens_at": (now - datetime.timedelta(minutes=1)).isoformat(),
                "cancel_deadline": (now + datetime.timedelta(days=19)).isoformat()}
        st, _, doc = await call(probe, "POST", "/v1/events", token=admin, doc=body)
        assert st == 201, f"event not created: {st} {doc}"
        event = doc["id"]
        log(f"event {event}: {a.capacity} seats, waitlist {'on' if not a.no_waitlist else 'off'}")

        log(f"signing in {a.workers} workers through POST /v1/auth/otp + /v1/auth/token ({a.signin_inflight} at a time)")
        tokens, result["signin"] = await sign_in_all(port, a.workers, a.signin_inflight, LogCodes(logpath))
        log(f"signed in: {result['signin']}")

        log(f"client ceiling: {a.ceiling_requests} × GET /healthz, {a.inflight} in flight")
        if a.client == "compiled":
            result["client_ceiling"] = run_client({"mode": "ceiling", "port": port, "total": a.ceiling_requests,
                                                   "inflight": a.inflight})
        else:
            result["client_ceiling"] = await ceiling(port, a.ceiling_requests, a.inflight)
        log(f"client ceiling: {result['client_ceiling']}")

        log(f"crowd: {a.workers} workers within {a.window_s} s, {a.inflight} in flight")
        busy_before = await metrics_value(probe, "yizhan_write_busy_seconds")
        perf = None
        if a.perf:
            # A CPU profile of the server during the crowd alone (`perf report -i FILE`).
            perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", "dwarf,16384", "-p", str(proc.pid), "-o", a.perf],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.5)
        if a.client == "compiled":
            res, cw = crowd_compiled(port, tokens, event, a.window_s, a.inflight, a.give_up_s, proc.pid, a.seed)
        else:
            res, cw = await crowd(port, tokens, event, a.window_s, a.inflight, a.give_up_s, proc.pid, a.seed)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        lat = [r["latency"] for r in res]
        firsts, finals = {}, {}
        for r in res:
            firsts[str(r["first"])] = firsts.get(str(r["first"]), 0) + 1
            finals[str(r["final"])] = finals.get(str(r["final"]), 0) + 1
        span = cw["span_s"]
        result["crowd"] = {
            "span_s": round(span, 3), "answered_per_s": round(len(res) / span, 1),
            "created_per_s": round(finals.get("201", 0) / span, 1),
            "first_answers": dict(sorted(firsts.items())), "final_answers": dict(sorted(finals.items())),
            "retries": sum(r["retries"] for r in res), "max_retries_one_worker": max(r["retries"] for r in res),
            "replayed": sum(1 for r in res if r["replayed"]),
            "latency_s": {k: round(v, 5) for k, v in (("p50", pct(lat, 50)), ("p90", pct(lat, 90)),
                                                        ("p99", pct(lat, 99)), ("max", max(lat)))},
            "client_cpu_share": cw["client_cpu_share"], "server_cpu_share": cw["server_cpu_share"],
        }
        # The writer's batches (group commit), from /metrics: how many commits the crowd took,
        # and how busy the writer was (its time running batches over the crowd's span).
        text = await metrics_text(probe)
        metric = lambda name: metric_in(text, name)
        batches, commands = metric("yizhan_write_batches"), metric("yizhan_write_commands")
        if batches:
            result["crowd"]["writer"] = {"batches": int(batches), "commands": int(commands),
                                         "mean_batch": round(commands / batches, 1)}
            busy = metric("yizhan_write_busy_seconds")
            if busy is not None and busy_before is not None:
                result["crowd"]["writer"]["busy_share"] = round((busy - busy_before) / span, 2)
        queries, lookups = metric("yizhan_token_queries"), metric("yizhan_token_lookups")
        if queries:
            result["crowd"]["token_reads"] = {"queries": int(queries), "lookups": int(lookups),
                                              "mean_batch": round(lookups / queries, 1)}
        log(f"crowd: {json.dumps(result['crowd'])}")

        st, _, doc = await call(probe, "GET", f"/v1/events/{event}/attendees", token=admin)
        assert st == 200, f"attendees: {st} {doc}"
        result["invariants"] = check(doc["items"], res, a.workers, a.capacity, not a.no_waitlist)
        log(f"invariants: {json.dumps(result['invariants'], ensure_ascii=False)}")
    finally:
        probe.close()
        result["server_alive_at_end"] = proc.poll() is None
        stop(proc)
        logf.close()
    # The anchor again, after the crowd: the disk is shared, and its fsync rate drifts.
    log(f"anchor again, after the crowd, {a.anchor_s} s")
    result["anchor_after"] = anchor(workdir, a.anchor_s)
    log(f"anchor after: {result['anchor_after']['commits_per_s']:.0f} commits/s")
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    return result


def save(result, out_json, out_md):
    runs = {}
    if out_json.exists():
        try:
            runs = json.loads(out_json.read_text()).get("runs", {})
        except ValueError:
            runs = {}
    key = result["backend"] + ("" if result["waitlist"] else "-no-waitlist")
    if result["window_s"] != 1.0:
        key += f"-window-{result['window_s']:g}"
    if result["workers"] != 10000 or result["inflight"] != 512:
        key += f"-{result['workers']}-by-{result['inflight']}"
    if result.get("label"):
        key += f"-{result['label']}"
    runs[key] = result
    out_json.write_text(json.dumps({"runs": runs}, indent=1, ensure_ascii=False) + "\n")
    write_md(runs, out_md)


def fmt_latency(lt):
    """p50 / p90 / p99 / max: in ms when a run is fast (one booking at a time), else in s."""
    ms = lt.get("max", 0) < 0.1
    f = (lambda v: f"{v * 1000:.2f}") if ms else (lambda v: f"{v:.2f}")
    return f"{f(lt.get('p50', 0))} / {f(lt.get('p90', 0))} / **{f(lt.get('p99', 0))}** / {f(lt.get('max', 0))} {'ms' if ms else 's'}"


def fmt_counts(d):
    return ", ".join(f"{v:,} × {'error' if k == '0' else k}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


def anchors(r):
    s = f"{r['anchor']['commits_per_s']:,.0f}"
    if r.get("anchor_after"):
        s += f" before, {r['anchor_after']['commits_per_s']:,.0f} after"
    return s + " commits/s"


CLIENTS = {"python": "one Python asyncio process (`--client python`)",
           "compiled": "the compiled client (`examples/crowd_client.rs`, one thread)"}


def write_md(runs, path):
    L = ["# Crowd: N workers book one event within a second", "",
         "Generated by `bench/crowd` (`bench/crowd.py`, issue 24 item 5). "
         "Each row is the last run of that backend; the raw numbers are in `bench/CROWD.json`. "
         "Release build; the server on 127.0.0.1 with `--trusted-proxies 127.0.0.1` (each worker is its own "
         "address by `X-Forwarded-For`) and every limit at its default (bookings queue for the writer, at most "
         "`--write-queue-wait` 5 s; 20,000 writes a minute per address, 60 per person). The machine has 2 cores "
         "shared with the client and other work: the numbers are noisy. The crowd is sent by a compiled client "
         "(`examples/crowd_client.rs`, one thread, about 0.2 cores) unless the row says Python client "
         "(`--client python`, one asyncio process, about 0.6 cores, which the server then lacks).", "",
         "| backend | workers / window / in flight | bookings/s (first arrival to last answer) | first answers | final answers | "
         "answer p50 / p90 / p99 / max (arrival to final answer) | retries | invariants | anchor: raw SQLite, WAL + FULL, one INSERT per commit, same disk, same run | client ceiling (`GET /healthz`) |",
         "| --- | --- | ---: | --- | --- | --- | ---: | --- | ---: | ---: |"]
    for key in sorted(runs):
        r = runs[key]
        c = r.get("crowd", {})
        lt = c.get("latency_s", {})
        inv = r.get("invariants", {})
        be = "SQLite, `synchronous=FULL`" if r["backend"] == "sqlite" else f"PostgreSQL {r.get('postgres', '').split()[0] if r.get('postgres') else ''}, fsync {r.get('postgres_settings', {}).get('fsync', '?')}, synchronous_commit {r.get('postgres_settings', {}).get('synchronous_commit', '?')}"
        if not r["waitlist"]:
            be += ", no waitlist"
        if r.get("client", "python") == "python":
            be += ", Python client"
        if r.get("label"):
            be += f", **{r['label']}**"
        L.append(f"| {be} | {r['workers']:,} / {r['window_s']:g} s / {r['inflight']} (capacity {r['capacity']}) "
                 f"| **{c.get('answered_per_s', 0):,.0f}** | {fmt_counts(c.get('first_answers', {}))} | {fmt_counts(c.get('final_answers', {}))} "
                 f"| {fmt_latency(lt)} "
                 f"| {c.get('retries', 0):,} | {'all hold' if inv.get('all_hold') else '**FAILED**'} "
                 f"| {anchors(r)} | {r['client_ceiling']['req_per_s']:,.0f} req/s |")
    L += ["", "How to read it:", "",
          "- **bookings/s** is workers with a final answer divided by the time from the first arrival to the last answer "
          "(with a waitlist every worker ends with a 201: confirmed or waitlisted). It is compared below with the anchor, "
          "what one commit per booking allows on this disk at that moment: the disk is shared, so the anchor is measured "
          "twice in the run, before the server starts and after it stops.",
          "- **first answers** are what each worker's first request got; 503 is the server shedding at its concurrency limit, "
          "each retried after `Retry-After` (exactly, no jitter) with the same `Idempotency-Key` until a final answer "
          "(201, or 409 when full without a waitlist; a worker gives up after `--give-up-s`, 300 s).",
          "- **latency** runs from a worker's scheduled arrival (worker i at i × window / N) to its final answer: waiting "
          "for one of the `--inflight` connections and every retry count.",
          "- **client ceiling**: the same client, same connections and in-flight cap, on `GET /healthz` (no database, outside "
          "the concurrency limit). While it is well above the bookings/s, the client is not what limits them. The Python "
          "client reached about 30,000 req/s there and took 0.6 of the 2 cores during a crowd; the compiled client reaches "
          "50,000–60,000 req/s and takes about 0.2.",
          "- Every worker signed in through the API (`POST /v1/auth/otp`, then `POST /v1/auth/token` with the code the "
          "development `log` SMS provider prints at INFO when the API listens on loopback); only the admin's token comes "
          "from `yizhan admin token`.",
          "- Issue 24's first figures (421 bookings/s on SQLite, 259 on PostgreSQL, anchor 6,053 commits/s) came from an "
          "earlier, quieter run of the same kind; here the CI run's builds share the cores and the disk.",
          ""]
    for key in sorted(runs):
        r = runs[key]
        c, inv, s, cc = r.get("crowd", {}), r.get("invariants", {}), r.get("signin", {}), r["client_ceiling"]
        L += [f"## {key}", "",
              f"Command: `{r['command']}` — commit `{r['commit']}`, {r['date']}, load average {r['load_avg_start']} at the start, {r['load_avg_end']} at the end.", "",
              f"- Sign-in: all {r['workers']:,} workers through `POST /v1/auth/otp` and `POST /v1/auth/token` (the code read from the server's log, "
              f"where the development `log` SMS provider prints it), {s.get('seconds')} s ({s.get('per_s')} sign-ins/s; retries: {s.get('otp_retries')} + {s.get('token_retries')}).",
              f"- Crowd: {c.get('span_s')} s from the first arrival to the last answer: {c.get('answered_per_s')} workers answered/s, "
              f"{c.get('created_per_s')} bookings created (201)/s. Retries {c.get('retries', 0):,} (at most {c.get('max_retries_one_worker')} by one worker); "
              f"answers replayed (`Idempotent-Replayed: true`): {c.get('replayed')}.",
              f"- Against the anchor: {c.get('answered_per_s', 0) / max(1e-9, r['anchor']['commits_per_s']):.0%} of the commits/s before"
              + (f", {c.get('answered_per_s', 0) / max(1e-9, r['anchor_after']['commits_per_s']):.0%} of those after" if r.get("anchor_after") else "") + ".",
              f"- CPU during the crowd, in cores: server {c.get('server_cpu_share')}, client {c.get('client_cpu_share')} (of {r['cpus']}).",
              f"- Client ceiling: {cc['requests']:,} × `GET /healthz` with {r['inflight']} in flight on as many keep-alive connections: "
              f"{cc['req_per_s']:,.0f} req/s ({cc['errors']} errors; client CPU {cc['client_cpu_share']} cores). "
              + f"That is what {CLIENTS[r.get('client', 'python')]} and this server together reach on a request that does nothing; "
              "the client is not the limit of a crowd that is answered more slowly than that.",
              f"- Anchor (raw SQLite, WAL + `synchronous=FULL`, one INSERT per transaction, Python's sqlite3, in the run's work directory): "
              f"{r['anchor']['commits']:,} commits in {r['anchor']['seconds']} s = {r['anchor']['commits_per_s']:,.0f} commits/s before the server started"
              + (f", {r['anchor_after']['commits']:,} in {r['anchor_after']['seconds']} s = {r['anchor_after']['commits_per_s']:,.0f} commits/s after it stopped"
                 if r.get("anchor_after") else "") + ".",
              f"- Invariants (read back with `GET /v1/events/{{id}}/attendees` as the admin): {inv.get('confirmed')} confirmed, "
              f"{inv.get('waitlisted')} waitlisted, {inv.get('other')} other, {inv.get('rows')} rows, {inv.get('unanswered')} without a final answer:", ""]
        for name, ok in inv.get("checks", {}).items():
            L.append(f"  - {'✓' if ok else '✗ FAILED'} {name}")
        if r.get("postgres_settings"):
            L += ["", f"- PostgreSQL {r.get('postgres')} in a throwaway `pg_virtualenv -t` cluster (temporary directory, same disk): {json.dumps(r['postgres_settings'])}."]
        L.append("")
    path.write_text("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=10000, help="distinct workers (up to 100,000)")
    ap.add_argument("--window-s", type=float, default=1.0, help="arrivals spread evenly over this many seconds")
    ap.add_argument("--inflight", type=int, default=512, help="requests in flight at most (keep-alive connections)")
    ap.add_argument("--capacity", type=int, default=500, help="the event's seats")
    ap.add_argument("--no-waitlist", action="store_true", help="an event without a waitlist (full: 409)")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--anchor-s", type=float, default=5.0, help="seconds of the raw-SQLite anchor")
    ap.add_argument("--signin-inflight", type=int, default=64)
    ap.add_argument("--ceiling-requests", type=int, default=30000)
    ap.add_argument("--give-up-s", type=float, default=300.0, help="a worker stops retrying after this long")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--binary", default=None, help="the yizhan binary to run (default: the release build; implies --no-build)")
    ap.add_argument("--label", default=None, help="a name for this run in CROWD.md (e.g. an older commit's binary)")
    ap.add_argument("--client", choices=["compiled", "python"], default="compiled",
                    help="who sends the crowd: examples/crowd_client.rs (one thread, little CPU) or this script's asyncio")
    ap.add_argument("--perf", metavar="FILE", default=None, help="record a CPU profile of the server during the crowd (perf)")
    ap.add_argument("--inside-pg", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    global BINARY
    BINARY = a.binary
    if a.binary:
        a.no_build = True
    if a.command_line is None:
        a.command_line = " ".join(["bench/crowd"] + [shlex.quote(x) for x in sys.argv[1:]])
    if not 1 <= a.workers <= 10000 * len(PREFIXES):
        ap.error("--workers: 1 to 100,000")

    if not a.no_build and not a.inside_pg:
        log("nice -n 19 cargo build --release --bin yizhan")
        subprocess.run(["nice", "-n", "19", "cargo", "build", "--release", "--bin", "yizhan"], check=True, cwd=ROOT)
    if a.client == "compiled" and not a.inside_pg and (not a.no_build or not client_path().exists()):
        log("nice -n 19 cargo build --release --example crowd_client")
        subprocess.run(["nice", "-n", "19", "cargo", "build", "--release", "--example", "crowd_client"], check=True, cwd=ROOT)
    if not binary_path().exists():
        sys.exit(f"no release binary at {binary_path()}")

    if a.backend == "postgres" and not a.inside_pg:
        # The whole run inside a throwaway cluster; fsync and synchronous_commit on.
        cmd = ["pg_virtualenv", "-t", "-o", "fsync=on", "-o", "synchronous_commit=on", "-o", "max_connections=200",
               "--", sys.executable, str(Path(__file__).resolve()), "--inside-pg", "--command-line", a.command_line] + sys.argv[1:]
        p = spawn(cmd, cwd=ROOT)
        rc = p.wait()
        CHILDREN.remove(p)
        sys.exit(rc)

    result = asyncio.run(run(a))
    save(result, BENCH / "CROWD.json", BENCH / "CROWD.md")
    log(f"wrote {BENCH / 'CROWD.md'} and {BENCH / 'CROWD.json'}")
    sys.exit(0 if result.get("invariants", {}).get("all_hold") and result["server_alive_at_end"] else 1)


if __name__ == "__main__":
    main()
