#!/usr/bin/env python3
"""Side-by-side benchmark of yizhan's nearest-site query against Redis GEOSEARCH
and PostGIS KNN (issue 11), plus yizhan's import / start-up / memory cost curve.

Run through `bench/run`, which installs the Debian packages and builds yizhan
first. Python standard library only. Every server it starts listens on
127.0.0.1 only and is stopped on exit (normal, error, Ctrl-C, SIGTERM; and
by the kernel if this process dies: PR_SET_PDEATHSIG).
"""

import argparse
import atexit
import csv
import ctypes
import datetime
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KINDS = ["outdoor_station", "mother_room", "union_station", "craftsman_studio"]
R_YIZHAN = 6371008.8  # README: haversine on a sphere of this radius
R_REDIS = 6372797.560856  # Redis' geohash_helper.c EARTH_RADIUS_IN_METERS
K = 10
RADIUS_M = 5000

# ---------------------------------------------------------------- processes

CHILDREN = []


def _pdeathsig():
    """In the child before exec: get SIGTERM if the harness dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, preexec_fn=_pdeathsig, **kw)
    CHILDREN.append(p)
    return p


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def _cleanup():
    for p in list(CHILDREN):
        try:
            stop(p, timeout=10)
        except Exception:
            pass


atexit.register(_cleanup)
for _sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(_sig, lambda s, f: sys.exit(128 + s))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    """Run to completion; return (wall seconds, max RSS in MB, stdout, stderr)."""
    t0 = time.monotonic()
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out, err = p.communicate()
    wall = time.monotonic() - t0
    CHILDREN.remove(p)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}):\n{err.decode(errors='replace')[-3000:]}\n{out.decode(errors='replace')[-2000:]}")
    return wall, out.decode(errors="replace"), err.decode(errors="replace")


def run_timed(cmd):
    """As run(), with the child's peak RSS (wait4's rusage, in MB)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
    CHILDREN.append(p)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    CHILDREN.remove(p)
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{text[-3000:]}")
    return wall, ru.ru_maxrss / 1024.0, text


def proc_status(pid):
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                d[k] = int(v.split()[0]) / 1024.0  # MB
    return d


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


# ---------------------------------------------------------------- data


def read_sites(path):
    """(ref, kind, lon, lat) of every feature of a GeoJSON FeatureCollection."""
    out = []
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    # yizhan writes one feature per line: stream it, or fall back to one json.load.
    if head.count(b"\n") > 3:
        with open(path, "rb") as f:
            for line in f:
                s = line.strip().rstrip(b",")
                if s.startswith(b"{") and not s.startswith(b'{"type":"FeatureCollection"'):
                    ft = json.loads(s)
                    lon, lat = ft["geometry"]["coordinates"][:2]
                    pr = ft["properties"]
                    out.append((pr["ref"], pr["kind"], lon, lat))
        if out:
            return out
    with open(path) as f:
        fc = json.load(f)
    for ft in fc["features"]:
        lon, lat = ft["geometry"]["coordinates"][:2]
        pr = ft["properties"]
        out.append((pr["ref"], pr["kind"], lon, lat))
    return out


def destination(lon, lat, bearing, dist_m):
    """The point dist_m from (lon, lat) along bearing, on yizhan's sphere."""
    d = dist_m / R_YIZHAN
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return (math.degrees(l2) + 540) % 360 - 180, math.degrees(p2)


def query_points(sites, n, seed, jitter_m):
    """n points, each within jitter_m of a site drawn with a fixed seed, rounded
    to 1e-7 degree (as sent to every system)."""
    rng = random.Random(seed)
    pts = []
    for _ in range(n):
        _, _, lon, lat = sites[rng.randrange(len(sites))]
        qlon, qlat = destination(lon, lat, rng.uniform(0, 2 * math.pi), jitter_m * math.sqrt(rng.random()))
        pts.append((round(qlon, 7), round(qlat, 7)))
    return pts


def within_counts(sites, pts, radius_m=RADIUS_M, kind=None):
    """How many sites lie within radius_m of each point (what a radius search
    that sorts everything it finds, like Redis' GEOSEARCH … ASC, must touch)."""
    import bisect
    byl = sorted((s[3], s[2]) for s in sites if kind is None or s[1] == kind)
    lats = [p[0] for p in byl]
    dlat = math.degrees(radius_m / R_YIZHAN) * 1.01
    out = []
    for lon, lat in pts:
        lo, hi = bisect.bisect_left(lats, lat - dlat), bisect.bisect_right(lats, lat + dlat)
        dlon = dlat / max(0.01, math.cos(math.radians(abs(lat) + dlat)))
        out.append(sum(1 for la, lo_ in byl[lo:hi] if abs(lo_ - lon) <= dlon and haversine(lon, lat, lo_, la) <= radius_m))
    out.sort()
    return {"median": out[len(out) // 2], "p90": out[int(len(out) * 0.9)], "max": out[-1], "n": len(out)}


def nearby_path(lon, lat, kind=None):
    p = f"/v1/sites/nearby?lat={lat:.7f}&lon={lon:.7f}&crs=wgs84&k={K}&radius_m={RADIUS_M}"
    return p + (f"&kind={kind}" if kind else "")


def haversine(lon1, lat1, lon2, lat2, r=R_YIZHAN):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


# ---------------------------------------------------------------- yizhan


class Yizhan:
    def __init__(self, binary, db, workdir, access_log=True):
        self.binary, self.db, self.workdir, self.access_log = binary, db, workdir, access_log
        self.port = free_port()
        self.proc = None
        self.logpath = workdir / f"serve-{db.stem}.log"

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIZHAN_")}
        env["RUST_LOG"] = "info" if self.access_log else "info,yizhan::http=warn"
        self.logf = open(self.logpath, "w")
        t0 = time.monotonic()
        self.proc = spawn(
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", f"sqlite:{self.db}", "--no-seed", "--log-format", "json"],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"yizhan serve exited ({self.proc.returncode}); see {self.logpath}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 600:
                raise RuntimeError("yizhan serve not ready after 600 s")
            time.sleep(0.01)
        self.ready_s = time.monotonic() - t0
        self.rss_ready = proc_status(self.proc.pid)
        return self.ready_s

    def wait_clusters(self, timeout=600):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for line in open(self.logpath, errors="replace"):
                if "cluster hierarchy built" in line:
                    m = re.search(r'"?build_ms"?\s*[:=]\s*"?(\d+)', line)
                    time.sleep(0.2)  # let the builder drop its scratch
                    self.rss_clusters = proc_status(self.proc.pid)
                    self.cluster_build_s = int(m.group(1)) / 1000 if m else None
                    return True
            time.sleep(0.05)
        self.rss_clusters, self.cluster_build_s = proc_status(self.proc.pid), None
        return False

    def log_field(self, message, field):
        for line in open(self.logpath, errors="replace"):
            if message in line:
                m = re.search(r'"?' + field + r'"?\s*[:=]\s*"?(\d+)', line)
                if m:
                    return int(m.group(1))
        return None

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
        return json.loads(body)

    def answers(self, pts, kind):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        out = []
        for lon, lat in pts:
            c.request("GET", nearby_path(lon, lat, kind))
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"nearby: {r.status} {body[:300]!r}")
            out.append([(it["ref"], it["distance_m"]) for it in json.loads(body)["items"]])
        c.close()
        return out

    def stop(self):
        if self.proc:
            stop(self.proc)
            self.logf.close()
            if self.proc.returncode in (0, -signal.SIGTERM):
                self.logpath.unlink(missing_ok=True)  # the access log is large


def wrk_load(args, port, paths_file, duration):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(BENCH / "nearby.lua"), f"http://127.0.0.1:{port}", "--", str(paths_file)]
    _, out, _ = run(cmd)
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + out)
    d = json.loads(m.group(1))
    errors = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_status"] + d["err_timeout"]
    return {"rps": d["requests"] / (d["duration_us"] / 1e6), "p50_ms": d["p50_us"] / 1000, "p99_ms": d["p99_us"] / 1000,
            "p999_ms": d["p999_us"] / 1000, "requests": d["requests"], "bytes": d["bytes"], "errors": errors, "tool": " ".join(cmd[:6])}


# ---------------------------------------------------------------- Redis


class Resp:
    """A minimal RESP2 client (enough for GEOSEARCH, INFO, GEOADD)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(parts))
        return self.read()

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def close(self):
        self.s.close()


def resp_cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def geoadd_stream(f, key, members, batch=1000):
    for i in range(0, len(members), batch):
        args = ["GEOADD", key]
        for ref, lon, lat in members[i:i + batch]:
            args += [repr(lon), repr(lat), ref]
        f.write(resp_cmd(*args))


def redis_phase(args, work, sites, pts, check_pts, kind):
    res = {}
    port = free_port()
    rdir = work / "redis"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir()
    srv = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(rdir), "--logfile", str(rdir / "redis.log"), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                r = Resp(port)
                r.cmd("PING")
                break
            except OSError:
                time.sleep(0.02)
        res["version"] = re.search(r"redis_version:(\S+)", r.cmd("INFO", "server")).group(1)
        # one GEO key for all sites, one per kind
        load = work / "redis-load.resp"
        with open(load, "wb") as f:
            geoadd_stream(f, "sites:all", [(s[0], s[2], s[3]) for s in sites])
            for k in KINDS:
                geoadd_stream(f, f"sites:{k}", [(s[0], s[2], s[3]) for s in sites if s[1] == k])
        t0 = time.monotonic()
        with open(load, "rb") as f:
            p = spawn(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe"], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out = p.communicate()[0].decode()
            CHILDREN.remove(p)
        res["load_s"] = time.monotonic() - t0
        if "errors: 0" not in out:
            raise RuntimeError("redis-cli --pipe: " + out)
        load.unlink()
        n_all = r.cmd("ZCARD", "sites:all")
        if n_all != len(sites):
            raise RuntimeError(f"redis holds {n_all} sites, expected {len(sites)} (duplicate refs?)")
        mem = r.cmd("INFO", "memory")
        res["used_memory_mb"] = int(re.search(r"used_memory:(\d+)", mem).group(1)) / 2**20
        res["rss_mb"] = proc_status(srv.pid)["VmRSS"]
        # exactness answers, from the query points themselves
        res["answers"] = {}
        for mode, key in (("all", "sites:all"), ("kind", f"sites:{kind}")):
            ans = []
            for lon, lat in check_pts:
                reply = r.cmd("GEOSEARCH", key, "FROMLONLAT", repr(lon), repr(lat), "BYRADIUS", RADIUS_M, "m", "ASC", "COUNT", K, "WITHDIST")
                ans.append([(m, float(d) * R_YIZHAN / R_REDIS) for m, d in reply])
            res["answers"][mode] = ans
        # For the load: redis-benchmark can only vary a command by __rand_int__
        # (12 digits, zero-padded, in [0, -r)), so each query point becomes a
        # member q000000000123 of every searched key, searched FROMMEMBER with
        # COUNT 11 (the point itself comes back first at distance 0).
        with open(load, "wb") as f:
            qm = [(f"q{i:012d}", lon, lat) for i, (lon, lat) in enumerate(pts)]
            geoadd_stream(f, "sites:all", qm)
            geoadd_stream(f, f"sites:{kind}", qm)
        with open(load, "rb") as f:
            p = spawn(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe"], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            p.communicate()
            CHILDREN.remove(p)
        probe = r.cmd("GEOSEARCH", "sites:all", "FROMMEMBER", "q000000000000", "BYRADIUS", RADIUS_M, "m", "ASC", "COUNT", K + 1)
        if not probe or probe[0] != "q000000000000":
            raise RuntimeError(f"redis FROMMEMBER probe: {probe}")
        res["load"] = {}
        for mode, key in (("all", "sites:all"), ("kind", f"sites:{kind}")):
            command = ["GEOSEARCH", key, "FROMMEMBER", "q__rand_int__", "BYRADIUS", str(RADIUS_M), "m", "ASC", "COUNT", str(K + 1)]
            errs0 = r.cmd("INFO", "stats")
            # calibrate (and warm up): redis-benchmark counts requests, not seconds
            warm = redis_bench(args, port, len(pts), 20000, command)
            n = max(20000, int(warm["rps"] * args.duration))
            res["load"][mode] = redis_bench(args, port, len(pts), n, command)
            errs = r.cmd("INFO", "stats")
            e0 = int(re.search(r"total_error_replies:(\d+)", errs0).group(1))
            e1 = int(re.search(r"total_error_replies:(\d+)", errs).group(1))
            res["load"][mode]["errors"] = e1 - e0
            if e1 != e0:
                raise RuntimeError(f"redis answered {e1 - e0} errors during the load")
        r.close()
    finally:
        stop(srv)
        shutil.rmtree(rdir, ignore_errors=True)
    return res


def redis_bench(args, port, keyspace, n, command):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.connections), "-n", str(n),
           "-r", str(keyspace), "--csv"]
    if args.redis_threads > 1:
        cmd += ["--threads", str(args.redis_threads)]
    t0 = time.monotonic()
    _, out, _ = run(cmd + command)
    wall = time.monotonic() - t0
    rows = list(csv.DictReader(out.strip().splitlines()))
    row = rows[-1]
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]), "p99_ms": float(row["p99_latency_ms"]),
            "requests": n, "wall_s": wall, "tool": " ".join(cmd[:1] + cmd[5:7] + cmd[11:])}


# ---------------------------------------------------------------- PostGIS

PG_SETTINGS = ["shared_buffers=1GB", "max_connections=120", "jit=off", "fsync=off", "synchronous_commit=off",
               "full_page_writes=off", "maintenance_work_mem=1GB", "effective_cache_size=4GB", "random_page_cost=1.1",
               "max_wal_size=4GB"]


def knn_sql(kind, with_dist=False):
    where = f" AND s.kind = '{kind}'" if kind else ""
    cols = "s.ref, ST_Distance(s.geog, q.geog, false) AS d, s.geog <-> q.geog AS knn" if with_dist else "s.ref"
    return (f"SELECT q.i, {cols} FROM qpoints q CROSS JOIN LATERAL ("
            f"SELECT s.ref, s.geog FROM sites s WHERE ST_DWithin(s.geog, q.geog, {RADIUS_M}, false){where} "
            f"ORDER BY s.geog <-> q.geog LIMIT {K}) s")


def postgis_phase(args, work, n_sites, n_pts, n_check, kind):
    """Run in a throwaway cluster: pg_virtualenv runs this file's `postgis` subcommand."""
    spec = {"work": str(work), "n_sites": n_sites, "n_pts": n_pts, "n_check": n_check, "kind": kind,
            "connections": args.connections, "threads": args.threads, "duration": args.duration}
    (work / "pg-spec.json").write_text(json.dumps(spec))
    cmd = ["pg_virtualenv", "-t"]
    for s in PG_SETTINGS:
        cmd += ["-o", s]
    cmd += [sys.executable, str(Path(__file__).resolve()), "postgis", str(work / "pg-spec.json")]
    p = spawn(cmd, cwd=work)
    p.wait()
    CHILDREN.remove(p)
    if p.returncode != 0:
        raise RuntimeError(f"PostGIS phase failed ({p.returncode})")
    return json.loads((work / "pg-out.json").read_text())


def psql(sql, *extra):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", *extra, "-c", sql], check=True,
                          stdout=subprocess.PIPE, text=True).stdout


def postgis_inside(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    work, kind = Path(spec["work"]), spec["kind"]
    res = {"settings": PG_SETTINGS}
    psql("CREATE EXTENSION postgis")
    res["version"] = psql("SHOW server_version").strip()
    res["postgis"] = psql("SELECT postgis_lib_version()").strip()
    t0 = time.monotonic()
    psql("CREATE TABLE sites_in (ref text, kind text, lon float8, lat float8)")
    psql(f"\\copy sites_in FROM '{work / 'sites.csv'}' WITH (FORMAT csv)")
    psql("CREATE TABLE sites AS SELECT row_number() OVER () AS id, ref, kind, "
         "ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS geog FROM sites_in")
    psql("DROP TABLE sites_in")
    psql("ALTER TABLE sites ADD PRIMARY KEY (id)")
    res["copy_s"] = time.monotonic() - t0
    t1 = time.monotonic()
    psql("CREATE INDEX sites_geog ON sites USING gist (geog)")
    for k in KINDS:  # the analogue of Redis' key per kind
        psql(f"CREATE INDEX sites_geog_{k} ON sites USING gist (geog) WHERE kind = '{k}'")
    res["index_s"] = time.monotonic() - t1
    psql("CREATE TABLE qpoints (i int PRIMARY KEY, lon float8, lat float8, geog geography)")
    psql(f"\\copy qpoints (i, lon, lat) FROM '{work / 'qpoints.csv'}' WITH (FORMAT csv)")
    psql("UPDATE qpoints SET geog = ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography")
    psql("VACUUM ANALYZE")
    res["load_s"] = time.monotonic() - t0
    n = int(psql("SELECT count(*) FROM sites"))
    if n != spec["n_sites"]:
        raise RuntimeError(f"PostGIS holds {n} sites, expected {spec['n_sites']}")
    res["db_mb"] = int(psql("SELECT pg_database_size(current_database())")) / 2**20
    res["plans"], res["answers"], res["load"] = {}, {}, {}
    for mode, kk in (("all", None), ("kind", kind)):
        plan = psql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + knn_sql(kk) + " WHERE q.i = 0")
        res["plans"][mode] = plan
        if "Order By" not in plan or "Index Scan" not in plan:
            raise RuntimeError("PostGIS does not use the GiST index for KNN:\n" + plan)
        out = psql(f"COPY ({knn_sql(kk, True)} WHERE q.i < {spec['n_check']} ORDER BY q.i, knn) TO STDOUT WITH (FORMAT csv)", "-F,")
        ans = [[] for _ in range(spec["n_check"])]
        for i, ref, d, _knn in csv.reader(out.splitlines()):
            ans[int(i)].append((ref, float(d)))
        res["answers"][mode] = ans
        script = work / f"knn-{mode}.sql"
        script.write_text(f"\\set i random(0, {spec['n_pts'] - 1})\n{knn_sql(kk)} WHERE q.i = :i;\n")
        base = ["pgbench", "-n", "-M", "prepared", "-c", str(spec["connections"]), "-j", str(spec["threads"]), "-f", str(script)]
        subprocess.run(base + ["-T", str(max(2, min(5, spec["duration"] // 4)))], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        logdir = work / f"pgbench-{mode}"
        shutil.rmtree(logdir, ignore_errors=True)
        logdir.mkdir()
        cmd = base + ["-T", str(spec["duration"]), "--log", f"--log-prefix={logdir / 'tx'}"]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out)
        lat = []
        for fn in logdir.iterdir():
            with open(fn) as f:
                for line in f:
                    lat.append(int(line.split()[2]))
        shutil.rmtree(logdir)
        lat.sort()
        res["load"][mode] = {"rps": tps, "p50_ms": pct(lat, 50) / 1000, "p99_ms": pct(lat, 99) / 1000, "requests": len(lat),
                             "errors": int(failed.group(1)) if failed else 0, "tool": f"pgbench -n -M prepared -c {spec['connections']} -j {spec['threads']} -T {spec['duration']} -f {script.name}"}
    (work / "pg-out.json").write_text(json.dumps(res))


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[i]


# ---------------------------------------------------------------- exactness


def compare(a, b, tol, radius_b=RADIUS_M):
    """Are two ordered answers (lists of (ref, distance_m)) the same nearest
    sites? Differences are allowed only between sites whose distances differ by
    at most tol metres: swaps of near-ties, and the last place or the radius'
    edge. Returns (identical, within_tolerance, reason)."""
    if [r for r, _ in a] == [r for r, _ in b]:
        return True, True, ""
    da, db = dict(a), dict(b)
    last_a = a[-1][1] if len(a) == K else RADIUS_M
    last_b = b[-1][1] if len(b) == K else radius_b  # b's radius, in a's metres
    for ref, d in a:
        if ref not in db and d < last_b - tol:
            return False, False, f"{ref} at {d:.2f} m missing (other's last {last_b:.2f} m)"
    for ref, d in b:
        if ref not in da and d < last_a - tol:
            return False, False, f"{ref} at {d:.2f} m extra (own last {last_a:.2f} m)"
    common = [r for r, _ in a if r in db]
    order_b = {r: i for i, (r, _) in enumerate(b)}
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            x, y = common[i], common[j]
            if order_b[x] > order_b[y] and abs(da[x] - da[y]) > tol:
                return False, False, f"{x} ({da[x]:.2f} m) and {y} ({da[y]:.2f} m) swapped"
    return False, True, "near-tie"


def exactness(yz, other, tol, radius_other=RADIUS_M):
    n = len(yz)
    identical = within = 0
    bad = []
    for i, (a, b) in enumerate(zip(yz, other)):
        same, ok, why = compare(a, b, tol, radius_other)
        identical += same
        within += ok
        if not ok:
            bad.append(f"query {i}: {why}")
    return {"n": n, "tol_m": tol, "identical": identical, "within_tolerance": within, "beyond": n - within, "examples": bad[:5],
            "empty": sum(1 for a in yz if not a)}


# ---------------------------------------------------------------- main


def machine():
    def cmd_out(c):
        try:
            return subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
    commit = cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(), "model": model, "mem_gib": int(mem) / 2**20, "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "load_avg": os.getloadavg(),
        "redis": cmd_out(["redis-server", "--version"]), "wrk": cmd_out(["wrk", "--version"]),
        "pgbench": cmd_out(["pgbench", "--version"]), "rustc": cmd_out(["rustc", "--version"]),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "source_commit": cmd_out(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", ".", ":(exclude)bench"]),
    }


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000,2000000", help="cost curve sizes (comma-separated)")
    ap.add_argument("--compare-size", type=int, default=1000000, help="size of the three-way comparison (0: none)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per load run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="load generator threads (wrk -t, pgbench -j)")
    ap.add_argument("--redis-threads", type=int, default=1, help="redis-benchmark --threads (1: its default)")
    ap.add_argument("--queries", type=int, default=10000, help="distinct query points in the load")
    ap.add_argument("--check", type=int, default=200, help="query points whose answers are compared")
    ap.add_argument("--kind", default="outdoor_station", help="the kind of the filtered runs")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--jitter-m", type=float, default=1000.0, help="query points lie up to this far from a site")
    ap.add_argument("--work", default=str(BENCH / "work"), help="scratch directory (generated files are reused)")
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "yizhan"))
    ap.add_argument("--quick", action="store_true", help="smoke run: 10,000 sites, 5 s loads")
    ap.add_argument("--access-log", choices=["on", "off"], default="on",
                    help="yizhan's per-request INFO log line (on: RUST_LOG=info, as deployed; off: yizhan::http=warn)")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--no-postgis", action="store_true")
    ap.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.compare_size, args.duration, args.check, args.queries = "10000", 10000, 5, 100, 2000
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s})
    if args.compare_size and args.compare_size not in sizes:
        sizes = sorted(sizes + [args.compare_size])
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    binary = Path(args.binary).resolve()
    started = datetime.datetime.now().astimezone()
    results = {"args": vars(args), "started": started.isoformat(timespec="seconds"), "machine": machine(), "curve": [], "compare": None}
    results["command"] = args.command_line or "bench/run " + " ".join(sys.argv[1:])
    failures = []

    for n in sizes:
        row = {"sites": n}
        geo = work / f"sites-{n}-s{args.seed}.geojson"
        if not geo.exists():
            log(f"generating {n} sites (seed {args.seed})")
            wall, _, _ = run([str(binary), "geodata", "generate", "--sites", str(n), "--seed", str(args.seed), "--crs", "wgs84", "--out", str(geo) + ".part"])
            os.rename(str(geo) + ".part", geo)
            row["generate_s"] = wall
        db = work / f"yizhan-{n}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        log(f"importing {n} sites into {db.name}")
        wall, peak, out = run_timed([str(binary), "import", str(geo), "--crs", "wgs84", "--database-url", f"sqlite:{db}"])
        row.update(import_s=wall, import_peak_rss_mb=peak, import_output=out.strip().splitlines()[-3:])
        row["db_mb"] = sum(Path(str(db) + s).stat().st_size for s in ("", "-wal", "-shm") if Path(str(db) + s).exists()) / 2**20
        log(f"  import {wall:.1f} s, peak RSS {peak:.0f} MB, database {row['db_mb']:.0f} MB")
        sites = read_sites(geo)
        if len(sites) != n:
            raise RuntimeError(f"{geo} has {len(sites)} features, expected {n}")
        pts = query_points(sites, args.queries, args.seed + 1, args.jitter_m)
        paths = {"all": work / f"paths-{n}-all.txt", "kind": work / f"paths-{n}-kind.txt"}
        paths["all"].write_text("".join(nearby_path(lo, la) + "\n" for lo, la in pts))
        paths["kind"].write_text("".join(nearby_path(lo, la, args.kind) + "\n" for lo, la in pts))

        yz = Yizhan(binary, db, work, access_log=args.access_log == "on")
        try:
            log("starting yizhan serve")
            yz.start()
            row.update(ready_s=yz.ready_s, rss_ready_mb=yz.rss_ready["VmRSS"], rss_ready_anon_mb=yz.rss_ready.get("RssAnon"),
                       rss_ready_file_mb=yz.rss_ready.get("RssFile"))
            row["index_build_s"] = (yz.log_field("spatial index built", "build_ms") or 0) / 1000 or None
            built = yz.wait_clusters()
            row.update(rss_clusters_mb=yz.rss_clusters["VmRSS"], peak_rss_mb=yz.rss_clusters["VmHWM"], cluster_build_s=yz.cluster_build_s,
                       clusters_logged=built)
            log(f"  ready in {yz.ready_s:.2f} s, RSS {row['rss_ready_mb']:.0f} MB; after clusters {row['rss_clusters_mb']:.0f} MB (peak {row['peak_rss_mb']:.0f} MB)")
            probe = yz.get(nearby_path(*pts[0]))
            if not probe["items"]:
                log("  warning: the first query point has no site within 5 km")
            compare_here = n == args.compare_size
            if compare_here:
                check_pts = pts[: args.check]
                yz_answers = {"all": yz.answers(check_pts, None), "kind": yz.answers(check_pts, args.kind)}
            modes = ("all", "kind") if compare_here else ("all",)
            row["load"] = {}
            for mode in modes:
                wrk_load(args, yz.port, paths[mode], max(2, min(5, args.duration // 4)))  # warm-up
                row["load"][mode] = r = wrk_load(args, yz.port, paths[mode], args.duration)
                log(f"  yizhan {mode}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}")
                if r["errors"]:
                    failures.append(f"yizhan {mode} at {n}: {r['errors']} errors under load")
            row["rss_after_load_mb"] = proc_status(yz.proc.pid)["VmRSS"]
        finally:
            yz.stop()
        results["curve"].append(row)

        if compare_here:
            cmp = {"sites": n, "yizhan": {"load": row["load"]}, "exactness": {},
                   "within_5km": {"all": within_counts(sites, check_pts), "kind": within_counts(sites, check_pts, kind=args.kind)}}
            with open(work / "sites.csv", "w", newline="") as f:
                w = csv.writer(f)
                for s in sites:
                    w.writerow((s[0], s[1], repr(s[2]), repr(s[3])))
            with open(work / "qpoints.csv", "w", newline="") as f:
                w = csv.writer(f)
                for i, (lo, la) in enumerate(pts):
                    w.writerow((i, repr(lo), repr(la)))
            if not args.no_redis:
                log("Redis: loading and querying")
                rd = redis_phase(args, work, sites, pts, check_pts, args.kind)
                cmp["redis"] = rd
                rd_answers = rd.pop("answers")
                for mode in ("all", "kind"):
                    r = rd["load"][mode]
                    log(f"  redis {mode}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
                    # Redis: 52-bit geohash cells (~0.6 m) and its own radius (scaled out)
                    cmp["exactness"][f"redis-{mode}"] = exactness(yz_answers[mode], rd_answers[mode], tol=1.0,
                                                                    radius_other=RADIUS_M * R_YIZHAN / R_REDIS)
            if not args.no_postgis:
                log("PostGIS: loading and querying (pg_virtualenv)")
                pg = postgis_phase(args, work, n, len(pts), len(check_pts), args.kind)
                cmp["postgis"] = pg
                pg_answers = pg.pop("answers")
                for mode in ("all", "kind"):
                    r = pg["load"][mode]
                    log(f"  postgis {mode}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
                    cmp["exactness"][f"postgis-{mode}"] = exactness(yz_answers[mode], pg_answers[mode], tol=0.05)
            for name, e in cmp["exactness"].items():
                log(f"  exactness {name}: {e['identical']}/{e['n']} identical, {e['beyond']} beyond tolerance")
                if e["beyond"]:
                    failures.append(f"exactness {name}: {e['beyond']} of {e['n']} answers differ beyond tolerance: {e['examples']}")
            raw = {"points": check_pts, "yizhan": yz_answers}
            if not args.no_redis:
                raw["redis"] = rd_answers
            if not args.no_postgis:
                raw["postgis"] = pg_answers
            (work / f"answers-{n}.json").write_text(json.dumps(raw))
            results["compare"] = cmp
            (work / "sites.csv").unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        del sites

    results["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results["failures"] = failures
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    from report import write_report  # bench/report.py
    write_report(results, Path(args.out))
    shutil.copy(work / "results.json", Path(args.out).with_suffix(".json"))
    log(f"wrote {args.out}")
    # the one table (and the targets), on the terminal too
    text = Path(args.out).read_text()
    for title in ("## Targets", "## Nearest sites, side by side"):
        i = text.find(title)
        if i >= 0:
            j = text.find("\n\n", text.find("| ---", i))
            print("\n" + text[i:j].strip())
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 2 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "postgis":
        postgis_inside(sys.argv[2])
    else:
        sys.exit(main())
