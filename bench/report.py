"""Write bench/RESULTS.md from the harness' results (also: python3 bench/report.py results.json OUT.md)."""

import json
import sys
from pathlib import Path

TARGET_SIZE = 1_000_000


def f(x, nd=1):
    if x is None:
        return "—"
    if isinstance(x, float) and x != x:
        return "—"
    return f"{x:,.{nd}f}"


def anonfile(r):
    a, fl = r.get("rss_ready_anon_mb"), r.get("rss_ready_file_mb")
    return f" ({a:,.0f} anon + {fl:,.0f} file)" if a is not None and fl is not None else ""


def met(ok):
    return "**met**" if ok else "**not met**"


def write_report(res, out: Path):
    m, a = res["machine"], res["args"]
    L = []
    L.append("# yizhan side-by-side benchmark (issue 11)")
    L.append("")
    L.append(f"Written by `bench/run` on {res['started']} (finished {res['finished']}). Command: `{res['command'].strip()}`.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append(f"- {m['cpus']} CPUs: {m['model']}; {m['mem_gib']:.1f} GiB memory; {m['os']}, Linux {m['kernel']}; load average at start {', '.join(f'{x:.2f}' for x in m['load_avg'])}")
    src = f" (yizhan's sources as of {m['source_commit']}; the commit adds only bench/)" if m.get("source_commit") and not m["commit"].startswith(m["source_commit"]) else ""
    L.append(f"- yizhan commit {m['commit']}{src}, built with `cargo build --release` ({m['rustc']})")
    cmp = res.get("compare") or {}
    pg = cmp.get("postgis") or {}
    rd = cmp.get("redis") or {}
    L.append(f"- {m['redis']}; PostgreSQL {pg.get('version', '—')} with PostGIS {pg.get('postgis', '—')}; {m['wrk']}; {m['pgbench']}")
    L.append("- Load generator and server share the same cores (loopback); every system gets the same connections and generator threads. Shared, noisy machine: compare ratios within one run. Redis executes commands on one thread, so it can use one core at most; yizhan and PostgreSQL use both.")
    for note in res.get("notes", []):
        L.append(f"- Note: {note}")
    L.append("")

    curve = {r["sites"]: r for r in res["curve"]}
    at = curve.get(TARGET_SIZE)
    L.append("## Targets")
    L.append("")
    if at is None:
        L.append(f"Not measured at {TARGET_SIZE:,} sites in this run (sizes: {', '.join(f'{s:,}' for s in curve)}); the values below are at the largest size run, for orientation only.")
        L.append("")
        at = curve[max(curve)] if curve else None
    if at:
        n = at["sites"]
        rss = max(at["rss_ready_mb"], at["rss_clusters_mb"])
        L.append(f"| target (at {n:,} sites) | measured | |")
        L.append("| --- | --- | --- |")
        L.append(f"| `serve` resident memory after start-up and after the cluster hierarchy ≤ 500 MB | {f(at['rss_ready_mb'], 0)} MB / {f(at['rss_clusters_mb'], 0)} MB | {met(rss <= 500)} |")
        L.append(f"| `serve` ready ≤ 3 s | {f(at['ready_s'], 2)} s | {met(at['ready_s'] <= 3)} |")
        L.append(f"| `yizhan import` ≤ 30 s | {f(at['import_s'], 1)} s | {met(at['import_s'] <= 30)} |")
        if cmp and cmp.get("sites") == n:
            y = cmp["yizhan"]["load"]["all"]
            if rd:
                ratio = y["rps"] / rd["load"]["all"]["rps"]
                L.append(f"| nearest over HTTP ≥ 1.0× Redis GEOSEARCH requests/s (goal 2×) | {ratio:.2f}× | {met(ratio >= 1.0)}{' (goal met)' if ratio >= 2 else ' (goal 2× not met)'} |")
            if pg:
                ratio = y["rps"] / pg["load"]["all"]["rps"]
                L.append(f"| nearest ≥ 3× PostGIS KNN requests/s | {ratio:.2f}× | {met(ratio >= 3)} |")
            L.append(f"| p99 ≤ 5 ms at {a['connections']} connections | {f(y['p99_ms'], 2)} ms | {met(y['p99_ms'] <= 5)} |")
        L.append("")
        L.append("Unfiltered queries; the filtered ones are in the table below.")
        L.append("")
    # What the profiles say of the targets not met: written by hand, kept beside
    # this script, so a new run keeps it.
    profile = Path(__file__).with_name("PROFILE.md")
    if profile.exists():
        L.append(profile.read_text().rstrip())
        L.append("")

    if cmp:
        n = cmp["sites"]
        L.append(f"## Nearest sites, side by side ({n:,} sites)")
        L.append("")
        L.append(f"k = 10 within 5 km of {a['queries']:,} query points (each within {a['jitter_m']:.0f} m of a generated site, seed {a['seed'] + 1}); "
                 f"{a['connections']} connections, {a['duration']} s per run after a warm-up; \"by kind\" is `{a['kind']}`.")
        L.append("")
        L.append("| system | query | requests/s | p50 ms | p99 ms | yizhan/this (req/s) |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for mode, label in (("all", "unfiltered"), ("kind", "by kind")):
            y = cmp["yizhan"]["load"].get(mode)
            if not y:
                continue
            rows = [("yizhan (HTTP, JSON)", y)]
            if rd:
                rows.append(("Redis GEOSEARCH", rd["load"][mode]))
            if pg:
                rows.append(("PostGIS KNN", pg["load"][mode]))
            for name, r in rows:
                ratio = "" if r is y else f"**{y['rps'] / r['rps']:.2f}×**"
                L.append(f"| {name} | {label} | {f(r['rps'], 0)} | {f(r['p50_ms'], 2)} | {f(r['p99_ms'], 2)} | {ratio} |")
        L.append("")
        w5 = cmp.get("within_5km")
        if w5:
            L.append(f"Sites within 5 km of a query point (first {w5['all']['n']} points): median {w5['all']['median']:,}, p90 {w5['all']['p90']:,}, max {w5['all']['max']:,}; "
                     f"of kind `{a['kind']}`: median {w5['kind']['median']:,}, p90 {w5['kind']['p90']:,}. A radius search that sorts all it finds (Redis' `GEOSEARCH … ASC COUNT 10`) pays for these; a k-nearest walk (yizhan, PostGIS `<->`) for about 10.")
            L.append("")
        L.append("How each was driven (the same query points for all three):")
        L.append("")
        y = cmp["yizhan"]["load"]["all"]
        L.append(f"- yizhan: `{y['tool']} -s bench/nearby.lua` over `GET /v1/sites/nearby?lat=…&lon=…&crs=wgs84&k=10&radius_m=5000[&kind=…]` (`RUST_LOG={'info' if a.get('access_log', 'on') == 'on' else 'info,yizhan::http=warn'}`: {'one access-log line per request, as deployed' if a.get('access_log', 'on') == 'on' else 'no access log'}, to a file; full JSON items{', ' + f(y['bytes'] / y['requests'], 0) + ' bytes per response with headers' if y.get('bytes') else ''}). Latency percentiles from wrk's histogram.")
        if rd:
            L.append(f"- Redis: `{rd['load']['all']['tool']}` (one GEO key for all sites, one per kind; each query point is a member `q…` of the searched keys, so COUNT 11 returns the point itself plus 10 sites; redis-benchmark varies the member with `-r`). Loaded with `redis-cli --pipe` in {f(rd['load_s'], 2)} s; used_memory {f(rd['used_memory_mb'], 0)} MB, RSS {f(rd['rss_mb'], 0)} MB.")
        if pg:
            L.append(f"- PostGIS: `{pg['load']['all']['tool']}` running `SELECT s.ref … WHERE ST_DWithin(s.geog, q.geog, 5000, false) [AND kind = …] ORDER BY s.geog <-> q.geog LIMIT 10` (geography column, GiST index, plus one partial GiST index per kind, as Redis has a key per kind; sphere distances, as yizhan). Latency percentiles from pgbench's per-transaction log. Loaded (COPY, indexes, ANALYZE) in {f(pg['load_s'])} s (indexes {f(pg['index_s'])} s); database {f(pg['db_mb'], 0)} MB. Settings: `{' '.join(pg['settings'])}`.")
            plan = pg["plans"]["all"].strip().splitlines()
            L.append("")
            L.append("  PostGIS plan (unfiltered):")
            L.append("")
            L.append("  ```")
            L += ["  " + p for p in plan]
            L.append("  ```")
        L.append("")
        ex = cmp.get("exactness") or {}
        if ex:
            tol_r = ex.get("redis-all", {}).get("tol_m", 1.5)
            tol_p = ex.get("postgis-all", {}).get("tol_m", 0.05)
            edge = " (the edge is judged there)" if "tol_m" in ex.get("redis-all", {}) else ""
            L.append("## Same answers?")
            L.append("")
            L.append(f"For the first {a['check']} query points, yizhan's ordered list of 10 refs against each other system's (Redis: GEOSEARCH FROMLONLAT … WITHDIST, distances rescaled from Redis' earth radius 6,372,797.6 m to yizhan's 6,371,008.8 m; PostGIS: sphere distances). A difference is tolerated only between sites whose distances differ by at most the tolerance: a swap of near-ties, or a different site in last place / at the 5 km edge (Redis stores 52-bit geohashes, cells of ~0.5 × 0.3 m, and its 5 km is 4,998.6 m on yizhan's sphere{edge}: tolerance {tol_r} m; PostGIS: {tol_p} m).")
            L.append("")
            L.append("| against | query | identical lists | within tolerance | beyond tolerance | empty answers |")
            L.append("| --- | --- | --- | --- | --- | --- |")
            for name, e in ex.items():
                sysname, mode = name.split("-")
                L.append(f"| {sysname} | {'unfiltered' if mode == 'all' else 'by kind'} | {e['identical']}/{e['n']} | {e['within_tolerance']}/{e['n']} | {e['beyond']} | {e['empty']} |")
            for name, e in ex.items():
                for s in e["examples"]:
                    L.append(f"- {name}: {s}")
            L.append("")

    L.append("## Cost as sites grow (yizhan)")
    L.append("")
    L.append("| sites | import s | import peak RSS MB | SQLite MB | ready s | index build s | RSS ready MB | cluster build s | RSS after clusters MB | peak RSS MB | nearby req/s | p50 ms | p99 ms |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in res["curve"]:
        ld = r.get("load", {}).get("all", {})
        L.append(f"| {r['sites']:,} | {f(r['import_s'])} | {f(r['import_peak_rss_mb'], 0)} | {f(r['db_mb'], 0)} | {f(r['ready_s'], 2)} | {f(r.get('index_build_s'), 2)} | {f(r['rss_ready_mb'], 0)}{anonfile(r)} | "
                 f"{f(r.get('cluster_build_s'), 2)} | {f(r['rss_clusters_mb'], 0)} | {f(r['peak_rss_mb'], 0)} | {f(ld.get('rps'), 0)} | {f(ld.get('p50_ms'), 2)} | {f(ld.get('p99_ms'), 2)} |")
    L.append("")
    L.append("Import: wall time of `yizhan import FILE --database-url sqlite:…` into a fresh file, peak RSS from wait4. Ready: from spawning `yizhan serve --no-seed` to the first 200 of `/readyz` (polled every 10 ms). RSS: VmRSS at ready (split into RssAnon + RssFile: file pages are mapped files such as SQLite's) and once the log says `cluster hierarchy built`; peak: VmHWM then. Nearby: unfiltered, as above.")
    for r in res["curve"]:
        if r.get("import_output"):
            L.append(f"- import of {r['sites']:,} printed: `{' / '.join(r['import_output'])}`")
    L.append("")
    if res.get("failures"):
        L.append("## Failures")
        L.append("")
        for x in res["failures"]:
            L.append(f"- {x}")
        L.append("")
    L.append("## Reproduce")
    L.append("")
    L.append(f"From a fresh clone: `{res['command'].strip()}` (installs redis-server, postgresql + PostGIS and wrk from Debian if missing, builds with `cargo build --release`). "
             "`bench/run --quick` is a 10,000-site smoke run; `--sizes`, `--compare-size`, `--duration`, `--connections` shorten or change it (`bench/run --help`). Raw numbers: `bench/RESULTS.json`.")
    L.append("")
    out.write_text("\n".join(L))


if __name__ == "__main__":
    write_report(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
