#!/usr/bin/env python3
"""Benchmark: the stateful path (`abm import`, `abm run`, a daily run) against load-speed anchors.

    python3 bench/state.py --data /tmp/abm-1m                       # SQLite only
    python3 bench/state.py --data /tmp/abm-1m --pg postgres://postgres@127.0.0.1:5432/test
    python3 bench/state.py --data /tmp/abm-100k --skip-anchors      # abm steps only

DATA holds the files of `../shared/bench/gen_data.py` (as_of 2026-11-01). On the same files, one
after the other, it times:

- the anchors: the `sqlite3` CLI `.import` of the four CSV files into plain tables of a fresh
  database (one transaction per file, as the CLI does), and `psql \\copy` of the same files into
  plain, logged tables of a fresh PostgreSQL database;
- `abm import DATA` into a fresh database, `abm segment DATA` (the stateless reference),
  a full `abm run --as-of 2026-11-01`;
- `abm run --as-of 2026-11-02` with no new data (the first run after the first one writes a
  snapshot row for every account: their movement goes from `baseline` to `unchanged`);
- the daily step: a file of new events for 1% of the accounts (as many events as 1% of the
  engagement file, dated on 2026-11-02, written once into WORK/daily/), `abm import` of it and
  `abm run --as-of 2026-11-03` (a run that scales with change: it assesses the accounts with
  new events or a due instant);
- the one-account call (`App::reevaluate`, what the API's ingest runs), in-process: abm-app's
  `one_account` example re-assesses `--calls` accounts spread over the database, one call each,
  and reports p50/p99 (build it first: `cargo build --release -p abm-app --example one_account`).

Per step: wall time from spawn to exit, CPU time of the child (user + system; not the
PostgreSQL server's), peak RSS of the child (`ru_maxrss` from `wait4`; the
PostgreSQL server's memory is not in it) and the database size after the step (SQLite: the file
and its WAL; PostgreSQL: `pg_database_size`). Timings are reported, never asserted.
Python 3.11 standard library only; needs `sqlite3` (and `psql` with --pg) on PATH.
"""
import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["accounts", "engagement", "triggers", "deals"]
DAILY_TYPES = ["website_visit", "email_open", "ad_click", "content_download", "meeting",
               "webinar_attended", "demo"]


def timed(cmd, cwd=None, env=None):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(map(str, cmd))}\n{err}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def sqlite_size(db):
    return sum(p.stat().st_size for p in [db, Path(f"{db}-wal")] if p.exists())


def pg_url_for(url, dbname):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def fresh_pg(url, name):
    admin = pg_url_for(url, "postgres")
    psql(admin, f"DROP DATABASE IF EXISTS {name}")
    psql(admin, f"CREATE DATABASE {name}")
    return pg_url_for(url, name)


def pg_size(url):
    return int(psql(url, "SELECT pg_database_size(current_database())"))


def header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))


def text_columns(path):
    return ", ".join('"' + c.replace('"', '""') + '" text' for c in header(path))


def daily_events(data, out, share=0.01, seed=11):
    """New events for `share` of the accounts, as many as `share` of the engagement file."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "engagement.csv"
    if target.exists():
        return target
    with open(data / "accounts.csv", newline="") as f:
        r = csv.reader(f)
        next(r)
        ids = [row[0] for row in r]
    with open(data / "engagement.csv", "rb") as f:
        n_events = sum(1 for _ in f) - 1
    rng = random.Random(seed)
    chosen = rng.sample(ids, max(1, int(len(ids) * share)))
    n_new = max(1, int(n_events * share))
    cols = header(data / "engagement.csv")
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for k in range(n_new):
            acct = chosen[k % len(chosen)]
            sec = rng.randrange(1, 86400)
            row = {"account_id": acct,
                   "occurred_at": f"2026-11-02T{sec // 3600:02}:{sec // 60 % 60:02}:{sec % 60:02}",
                   "type": rng.choice(DAILY_TYPES),
                   "contact_id": f"{acct}-C{rng.randrange(1, 6)}",
                   "event_id": f"daily-{k}"}
            w.writerow([row.get(c, "") for c in cols])
    tmp.rename(target)
    return target


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--abm", default=str(ROOT / "target/release/abm"))
    ap.add_argument("--data", required=True, help="directory with gen_data.py's files")
    ap.add_argument("--work", help="scratch directory (default: a new one in /tmp)")
    ap.add_argument("--pg", help="PostgreSQL URL; the benchmark creates and drops its own databases")
    ap.add_argument("--skip-anchors", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--keep-pg", action="store_true",
                    help="keep the PostgreSQL database abm_bench_state at the end (for bench/serve.py)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--one-account", default=str(ROOT / "target/release/examples/one_account"),
                    help="the one-account call's benchmark (abm-app's example)")
    ap.add_argument("--calls", type=int, default=1000, help="one-account calls per backend")
    a = ap.parse_args()
    abm = a.abm
    if not Path(abm).exists():
        sys.exit(f"{abm} not found: cargo build --release first")
    data = Path(a.data).resolve()
    if not (data / "accounts.csv").exists():
        sys.exit(f"{data}/accounts.csv missing: python3 ../shared/bench/gen_data.py --out {data}")
    work = Path(a.work or tempfile.mkdtemp(prefix="abm-state-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    daily = daily_events(data, work / "daily")
    for name in FILES:  # warm the page cache
        with open(data / f"{name}.csv", "rb") as f:
            while f.read(1 << 24):
                pass
    results = []

    def step(backend, name, cmd, size, cwd=None):
        secs, rss, cpu = timed(cmd, cwd=cwd)
        row = {"backend": backend, "step": name, "seconds": round(secs, 2),
               "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(rss),
               "db_mb": round(size() / 1e6, 1)}
        results.append(row)
        print(f"{backend:9} {name:28} {secs:8.2f} s  {cpu:8.2f} cpu-s  {rss:7.0f} MB RSS"
              f"  db {row['db_mb']:9.1f} MB", flush=True)
        return secs

    as_of, day2, day3 = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"
    seg_out = work / "segment"
    step("-", "abm segment", [abm, "segment", str(data), "--as-of", as_of, "--out",
                              str(seg_out), "--quiet", "--formats", "csv"], lambda: 0)

    backends = []
    if not a.skip_sqlite:
        backends.append("sqlite")
    if a.pg:
        backends.append("postgres")
    for backend in backends:
        if not a.skip_anchors:
            if backend == "sqlite":
                anchor = work / "anchor.sqlite"
                anchor.unlink(missing_ok=True)
                cmds = [".mode csv"] + [f".import {data / n}.csv {n}" for n in FILES]
                step(backend, "anchor: sqlite3 .import", ["sqlite3", str(anchor), *cmds],
                     lambda: sqlite_size(anchor))
                anchor.unlink(missing_ok=True)
            else:
                url = fresh_pg(a.pg, "abm_bench_anchor")
                ddl = "; ".join(f"CREATE TABLE {n} ({text_columns(data / f'{n}.csv')})"
                                for n in FILES)
                psql(url, ddl)
                args = []
                for n in FILES:
                    args += ["-c", f"\\copy {n} FROM '{data / n}.csv' WITH (FORMAT csv, HEADER true)"]
                step(backend, "anchor: psql \\copy", ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args],
                     lambda: pg_size(url))
                psql(pg_url_for(a.pg, "postgres"), "DROP DATABASE IF EXISTS abm_bench_anchor")
        if backend == "sqlite":
            db = work / "abm.sqlite"
            for p in [db, Path(f"{db}-wal"), Path(f"{db}-shm")]:
                p.unlink(missing_ok=True)
            target = str(db)
            size = lambda: sqlite_size(db)  # noqa: E731
        else:
            target = fresh_pg(a.pg, "abm_bench_state")
            size = lambda: pg_size(target)  # noqa: E731
        cwd = work / f"cwd-{backend}"
        cwd.mkdir(exist_ok=True)
        dbf = ["--database", target]
        step(backend, "abm import", [abm, "import", str(data), *dbf, "--rejected",
                                     str(cwd / "rejected.csv")], size, cwd)
        step(backend, "abm run (full)", [abm, "run", "--as-of", as_of, *dbf], size, cwd)
        step(backend, "abm run (day 2, no new data)", [abm, "run", "--as-of", day2, *dbf], size, cwd)
        step(backend, "abm import (1% new events)",
             [abm, "import", "--engagement", str(daily), *dbf, "--rejected",
              str(cwd / "rejected-daily.csv")], size, cwd)
        step(backend, "abm run (daily)", [abm, "run", "--as-of", day3, *dbf], size, cwd)
        if Path(a.one_account).exists():
            # The one-account call, in-process: one call per account, N accounts spread over
            # the database, as of the latest run's as_of (what the API's ingest does).
            out = subprocess.run([a.one_account, target, str(a.calls)], check=True,
                                 capture_output=True, text=True).stdout
            one = json.loads(out.strip().splitlines()[-1])
            results.append({"backend": backend, "step": "one-account call", **one})
            print(f"{backend:9} {'one-account call':28} p50 {one['p50_ms']:.3f} ms  "
                  f"p99 {one['p99_ms']:.3f} ms  max {one['max_ms']:.3f} ms  ({one['calls']} calls); "
                  f"100 per call: {one['batched_100_ms_per_account']:.3f} ms per account",
                  flush=True)
        else:
            print(f"{a.one_account} not found (cargo build --release -p abm-app --example "
                  f"one_account): one-account call skipped")
        if backend == "postgres" and not a.keep_pg:
            psql(pg_url_for(a.pg, "postgres"), "DROP DATABASE IF EXISTS abm_bench_state")

    by = {(r["backend"], r["step"]): r["seconds"] for r in results if "seconds" in r}
    seg = by[("-", "abm segment")]
    print()
    for backend in backends:
        anchor = by.get((backend, "anchor: sqlite3 .import" if backend == "sqlite"
                         else "anchor: psql \\copy"))
        imp, full, day = (by[(backend, s)] for s in
                          ["abm import", "abm run (full)", "abm run (daily)"])
        if anchor:
            print(f"{backend}: import / anchor = {imp / anchor:.2f}")
        print(f"{backend}: full run / segment = {full / seg:.1f}; daily run / segment = {day / seg:.1f}")
    sizes = {r["backend"]: [] for r in results}
    for r in results:
        if "db_mb" in r:
            sizes[r["backend"]].append(r["db_mb"])
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"data: {data} ({sum((data / f'{n}.csv').stat().st_size for n in FILES) / 1e9:.2f} GB CSV)")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "data": str(data),
                                            "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
