#!/usr/bin/env python3
"""Benchmark: `abm segment` versus the DuckDB peer (`../shared/bench/duckdb_reference.py`), issue 4.

    python3 bench/segment_vs_duckdb.py                      # 1M accounts x 20 events, 5 runs each
    python3 bench/segment_vs_duckdb.py --data /tmp/abm-1m   # reuse (or create) a data directory
    python3 bench/segment_vs_duckdb.py --quick              # smoke test: 20k accounts, 2 runs each
    python3 bench/segment_vs_duckdb.py --scaling 100000,1000000,5000000 --data-root /tmp/abm-scaling

Comparison mode (default): generates the data once with `../shared/bench/gen_data.py` (skipped when
`--data DIR` already holds accounts.csv), reads the input files once to warm the page cache, then
runs `abm segment DATA --as-of 2026-11-01T00:00:00 --out OUT/abm --quiet --formats csv` (one
assignment CSV, as the peer writes; `--abm-args ""` for abm's default of CSV and JSON Lines) and
`python3 duckdb_reference.py DATA OUT/peer` alternately (abm, peer, abm, peer, ...) `--runs` times
each. Each run is a whole process: wall time from spawn to exit, peak RSS from `os.wait4` of the
child (`ru_maxrss`: the largest resident set of the child and the descendants it waited for). Then
it checks that both outputs agree on every account (account_id, engagement_level, has_triggers,
cluster, tier, program_type, and promotion_triggers as a set of type@instant, timestamps
normalized to naive UTC) and prints medians, ratios, the machine and the command lines. Exits 1 on
any mismatch (printing the first 10), 2 on a usage/setup error or a failed run.

JSON Lines mode (`--jsonl`): abm only; converts DATA once into DATA-jsonl with DuckDB (every value
a JSON string, empty fields null), then runs abm on the CSV and the JSON Lines inputs alternately
and prints both medians, their ratio and whether the assignments are byte-identical.

Scaling mode (`--scaling N1,N2,...`): abm only, for each size generates (or reuses)
`--data-root/<N>` and prints median seconds and events/s per size, so linearity can be judged.

gen_data.py holds everything in memory (about 15 GiB at 1M accounts x 20 events, linear in the
event count); sizes that would not fit in 75% of RAM are generated as several gen_data.py chunks
(seeds 7, 8, ...) with account, contact and deal ids renumbered into one id range (`--gen-chunk`).

Python 3.11 standard library only (numpy/pandas/duckdb are needed by the shared scripts it runs).
"""
import argparse
import csv
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import concurrent.futures
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AS_OF = "2026-11-01T00:00:00"
INPUTS = ["accounts.csv", "engagement.csv", "triggers.csv", "deals.csv"]
COMPARED = ["tier", "engagement_level", "has_triggers", "cluster", "program_type",
            "promotion_triggers"]
GEN_SEED = 7  # gen_data.py's default seed: an unchunked data set is the data set
GEN_BYTES_PER_EVENT = 760  # gen_data.py's peak RSS, measured: ~1.5 GiB at 100k, ~4.2 GiB at 300k
MIB = 1024 * 1024


def log(msg=""):
    print(msg, flush=True)


def die(msg, code=2):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------- machine and environment


def machine_info():
    info = {"nproc": None, "cpu_count": os.cpu_count(), "mem_total_bytes": None, "cpu_model": None,
            "kernel": platform.release(), "python": platform.python_version()}
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True,
                                           check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        info["nproc"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def tool_versions(abm):
    v = {}
    try:
        v["abm"] = subprocess.run([abm, "--version"], capture_output=True, text=True,
                                  timeout=30).stdout.strip().removeprefix("abm ")
    except OSError:
        v["abm"] = None
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        v["git"] = head + ("+dirty" if dirty else "") if head else None
    except OSError:
        v["git"] = None
    try:
        v["duckdb"] = subprocess.run(
            [sys.executable, "-c", "import duckdb; print(duckdb.__version__)"],
            capture_output=True, text=True, timeout=60).stdout.strip() or None
    except OSError:
        v["duckdb"] = None
    return v


def fmt_bytes(n):
    if n is None:
        return "?"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------- abm binary


def newest_source_mtime():
    newest = 0.0
    for root, dirs, files in os.walk(os.path.join(REPO, "crates")):
        dirs[:] = [d for d in dirs if d != "target"]
        for f in files:
            if f.endswith(".rs") or f == "Cargo.toml":
                newest = max(newest, os.path.getmtime(os.path.join(root, f)))
    for f in ("Cargo.toml", "Cargo.lock"):
        p = os.path.join(REPO, f)
        if os.path.exists(p):
            newest = max(newest, os.path.getmtime(p))
    return newest


def ensure_abm(path, is_default):
    if os.path.exists(path):
        if is_default and os.path.getmtime(path) < newest_source_mtime():
            log(f"warning: {path} is older than the newest source file under crates/: "
                "it may not be the code you think (run `cargo build --release`)")
        return path
    if not is_default:
        die(f"--abm {path} does not exist")
    log(f"{path} is missing: running `cargo build --release` in {REPO}")
    r = subprocess.run(["cargo", "build", "--release"], cwd=REPO)
    if r.returncode != 0 or not os.path.exists(path):
        die("cargo build --release failed")
    return path


# ---------------------------------------------------------------- data generation


def gen_estimate_bytes(accounts, events_per_account):
    return 100 * MIB + accounts * (events_per_account * GEN_BYTES_PER_EVENT + 300)


def dir_bytes(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def run_gen_data(shared, accounts, epa, seed, out, expect_bytes, label):
    """Run gen_data.py, printing progress (bytes written so far) every 15 s."""
    cmd = [sys.executable, os.path.join(shared, "bench", "gen_data.py"),
           "--accounts", str(accounts), "--events-per-account", f"{epa:g}",
           "--seed", str(seed), "--out", out]
    log(f"  {label}$ {shlex.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        next_note = 15.0
        while proc.poll() is None:
            time.sleep(0.5)
            el = time.perf_counter() - t0
            if el >= next_note:
                written = dir_bytes(out) if os.path.isdir(out) else 0
                log(f"  {label}  ... {el:4.0f} s, {fmt_bytes(written)} of "
                    f"~{fmt_bytes(expect_bytes)} written")
                next_note += 15.0
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        raise
    text = proc.stdout.read()
    if proc.returncode != 0:
        die(f"gen_data.py failed (exit {proc.returncode}):\n{text}")
    log(f"  {label}  {text.strip()} ({time.perf_counter() - t0:.0f} s)")


def renumber_append(src, dst, name, acc_off, deal_off, skip_header):
    """Append src/name to dst/name with ids shifted: A########+acc_off, D########+deal_off.
    Returns the number of data rows. The layouts are gen_data.py's (no quoting needed)."""
    rows = 0
    with open(os.path.join(src, name), "rb") as fi, \
            open(os.path.join(dst, name), "ab") as fo:
        header = fi.readline()
        if not skip_header:
            fo.write(header)
        if acc_off == 0 and deal_off == 0:
            for line in fi:
                fo.write(line)
                rows += 1
            return rows
        out = []
        cache = {}

        def acc(old):
            new = cache.get(old)
            if new is None:
                new = b"A%08d" % (int(old[1:]) + acc_off)
                cache[old] = new
            return new

        for line in fi:
            rows += 1
            if name == "accounts.csv":  # account_id,"Company K","companyK.example",...
                a, _, _, rest = line.split(b",", 3)
                k = int(a[1:]) + acc_off
                out.append(b"A%08d,Company %d,company%d.example,%s" % (k, k, k, rest))
            elif name == "engagement.csv":  # account_id,occurred_at,type,contact_id (= id-Cn or "")
                a, t, ty, c = line.split(b",", 3)
                na = acc(a)
                if len(c) > 2 and c.startswith(a):
                    c = na + c[len(a):]
                out.append(b"%s,%s,%s,%s" % (na, t, ty, c))
            elif name == "triggers.csv":  # account_id,...,headline ("type at <account_id>")
                a, rest = line.split(b",", 1)
                na = acc(a)
                out.append(na + b"," + rest.replace(a, na))
            elif name == "deals.csv":  # deal_id,account_id,...
                d, a, rest = line.split(b",", 2)
                out.append(b"D%08d,%s,%s" % (int(d[1:]) + deal_off, acc(a), rest))
            else:
                out.append(line)
            if len(out) >= 65536:
                fo.write(b"".join(out))
                out.clear()
        fo.write(b"".join(out))
    return rows


def generate(shared, accounts, epa, dest, chunk):
    """Generate `accounts` x `epa` into dest. Written into dest.partial first and moved in with
    accounts.csv last, so an existing dest/accounts.csv means a complete data set."""
    dest = os.path.abspath(dest)
    partial = dest.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    expect = accounts * (110 + 54 * epa)
    est = gen_estimate_bytes(accounts, epa)
    total = machine_info()["mem_total_bytes"] or 0
    if chunk is None or chunk == 0:
        limit = int(total * 0.75) if total else est
        chunks = max(1, math.ceil(est / limit)) if limit else 1
    else:
        chunks = max(1, math.ceil(accounts / chunk))
    log(f"generating {accounts:,} accounts x {epa:g} events into {dest} "
        f"(~{fmt_bytes(expect)} of CSV; gen_data.py needs ~{fmt_bytes(est)} of RAM"
        + (f", so {chunks} chunks" if chunks > 1 else "") + ")")
    t0 = time.perf_counter()
    if chunks == 1:
        run_gen_data(shared, accounts, epa, GEN_SEED, partial, expect, "gen")
    else:
        sizes = [accounts // chunks + (1 if i < accounts % chunks else 0) for i in range(chunks)]
        log(f"  chunks of {sizes[0]:,} accounts, seeds {GEN_SEED}..{GEN_SEED + chunks - 1}, "
            "ids renumbered into one range (each chunk has gen_data.py's skew on its own)")
        acc_off = deal_off = 0
        for i, n in enumerate(sizes):
            cdir = os.path.join(partial, f"chunk-{i}")
            run_gen_data(shared, n, epa, GEN_SEED + i, cdir, n * (110 + 54 * epa),
                         f"chunk {i + 1}/{chunks}")
            t1 = time.perf_counter()
            deals = 0
            # In a child process: its id cache grows to hundreds of MB, and a process's peak RSS
            # (which wait4 reports for its later children too) must stay small here.
            ctx = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                for name in INPUTS:
                    r = pool.submit(renumber_append, cdir, partial, name, acc_off, deal_off,
                                    i > 0).result()
                    if name == "deals.csv":
                        deals = r
            shutil.rmtree(cdir)
            log(f"  chunk {i + 1}/{chunks}  appended with ids +{acc_off:,} "
                f"({time.perf_counter() - t1:.0f} s)")
            acc_off += n
            deal_off += deals
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(partial), key=lambda f: f == "accounts.csv"):
        os.replace(os.path.join(partial, name), os.path.join(dest, name))
    os.rmdir(partial)
    log(f"generated in {time.perf_counter() - t0:.0f} s: {fmt_bytes(dir_bytes(dest))} in {dest}")


def ensure_data(shared, data, accounts, epa, chunk):
    if os.path.exists(os.path.join(data, "accounts.csv")):
        log(f"reusing the data in {data} (accounts.csv exists; generation skipped)")
        return False
    generate(shared, accounts, epa, data, chunk)
    return True


# ---------------------------------------------------------------- page cache, counts


def warm_and_count(data):
    """Read every input file once (warms the page cache) and count its data rows (lines - 1)."""
    buf = bytearray(16 * MIB)
    view = memoryview(buf)
    counts, sizes = {}, {}
    t0 = time.perf_counter()
    for name in INPUTS:
        p = os.path.join(data, name)
        if not os.path.exists(p):
            continue
        lines, last = 0, b"\n"
        with open(p, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                lines += buf.count(b"\n", 0, n)
                last = bytes(view[n - 1:n])
        if last != b"\n":
            lines += 1
        counts[name] = max(0, lines - 1)
        sizes[name] = os.path.getsize(p)
    return counts, sizes, time.perf_counter() - t0


# ---------------------------------------------------------------- timed runs


def timed_run(cmd, logfile):
    """Spawn cmd, wait with wait4: (wall seconds, peak RSS KiB, exit code)."""
    with open(logfile, "ab") as lf:
        lf.write(f"\n$ {shlex.join(cmd)}\n".encode())
        lf.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT)
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss, proc.returncode


def run_or_die(label, cmd, logfile, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)  # every run writes its outputs from scratch
    wall, rss, rc = timed_run(cmd, logfile)
    if rc != 0:
        with open(logfile, "rb") as f:
            tail = f.read()[-4000:].decode(errors="replace")
        die(f"{label} failed (exit {rc}); end of {logfile}:\n{tail}")
    return wall, rss


def stats(runs):
    walls = [r["wall_s"] for r in runs]
    rss = [r["peak_rss_kib"] / 1024 for r in runs]
    return {"runs": len(runs), "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
            "max_wall_s": max(walls), "median_peak_rss_mib": statistics.median(rss),
            "max_peak_rss_mib": max(rss)}


# ---------------------------------------------------------------- result comparison


def norm_instant(s):
    """RFC 3339 (abm: ...Z) or naive (peer) -> naive UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]'."""
    s = s.strip()
    if len(s) == 19:
        return s.replace(" ", "T")
    if len(s) == 20 and s[-1] in "Zz":
        return s[:-1].replace(" ", "T")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return s
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def norm_triggers(s):
    out = set()
    for item in s.split(";"):
        item = item.strip()
        if item:
            ty, _, at = item.partition("@")
            out.add((ty, norm_instant(at)))
    return frozenset(out)


def fmt_triggers(ts):
    return ";".join(f"{t}@{a}" for t, a in sorted(ts)) or "(none)"


class Unsorted(Exception):
    pass


def read_rows(path, check_sorted):
    """Yield (account_id, {column: normalized value}) from a cluster_assignments.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r, None)
        if header is None:
            return
        header = [h.lstrip("\ufeff") for h in header]
        missing = [c for c in ["account_id"] + COMPARED if c not in header]
        if missing:
            die(f"{path} lacks the column(s) {', '.join(missing)}")
        idx = {c: header.index(c) for c in ["account_id"] + COMPARED}
        prev = None
        for row in r:
            if not row:
                continue
            key = row[idx["account_id"]]
            if check_sorted and prev is not None and key < prev:
                raise Unsorted(f"{path} is not ordered by account_id ({prev!r} before {key!r})")
            prev = key
            vals = {c: row[idx[c]] for c in COMPARED}
            vals["has_triggers"] = vals["has_triggers"].strip().lower()
            yield key, vals


class Diff:
    def __init__(self):
        self.total = 0
        self.per_column = {}
        self.first = []
        self.compared = 0

    def add(self, column, msg):
        self.total += 1
        self.per_column[column] = self.per_column.get(column, 0) + 1
        if len(self.first) < 10:
            self.first.append(msg)

    def pair(self, key, a, p):
        self.compared += 1
        for c in COMPARED:
            x, y = a[c], p[c]
            if x == y:
                continue
            if c == "promotion_triggers":
                # fast path: abm's "type@...Z;..." is the peer's naive list plus Z suffixes
                if x.replace("Z", "") == y:
                    continue
                x, y = norm_triggers(x), norm_triggers(y)
                if x != y:
                    self.add(c, f"{key} {c}: abm {fmt_triggers(x)} | peer {fmt_triggers(y)}")
            else:
                self.add(c, f"{key} {c}: abm {x!r} | peer {y!r}")


def compare(abm_csv, peer_csv):
    """Both files are ordered by account_id: a streaming merge join. Falls back to an in-memory
    join (peer side in a dict) if either is not ordered."""
    d = Diff()
    try:
        ia, ip = read_rows(abm_csv, True), read_rows(peer_csv, True)
        a, p = next(ia, None), next(ip, None)
        last_a = last_p = None
        while a is not None or p is not None:
            if a is not None and p is not None and a[0] == p[0]:
                d.pair(a[0], a[1], p[1])
                last_a, last_p = a[0], p[0]
                a, p = next(ia, None), next(ip, None)
            elif p is None or (a is not None and a[0] < p[0]):
                what = "duplicate in abm" if a[0] == last_a else "only in abm's output"
                d.add("rows", f"{a[0]}: {what}")
                last_a = a[0]
                a = next(ia, None)
            else:
                what = "duplicate in peer" if p[0] == last_p else "only in the peer's output"
                d.add("rows", f"{p[0]}: {what}")
                last_p = p[0]
                p = next(ip, None)
        return d, "streaming merge on account_id"
    except Unsorted as e:
        log(f"note: {e}; comparing with an in-memory join instead")
    d = Diff()
    peer = {}
    for key, vals in read_rows(peer_csv, False):
        if key in peer:
            d.add("rows", f"{key}: duplicate in peer")
        peer[key] = vals
    seen = set()
    for key, vals in read_rows(abm_csv, False):
        if key in seen:
            d.add("rows", f"{key}: duplicate in abm")
            continue
        seen.add(key)
        pv = peer.pop(key, None)
        if pv is None:
            d.add("rows", f"{key}: only in abm's output")
        else:
            d.pair(key, vals, pv)
    for key in sorted(peer):
        d.add("rows", f"{key}: only in the peer's output")
    return d, "in-memory join on account_id"


# ---------------------------------------------------------------- reporting


def print_header(title, machine, versions, loadavg, loadavg_end):
    log()
    log(title)
    log("=" * len(title))
    mem = machine["mem_total_bytes"]
    log(f"machine:   {machine['nproc']} cores (nproc), {fmt_bytes(mem)} RAM (MemTotal), "
        f"CPU {machine['cpu_model'] or '?'}, Linux {machine['kernel']}")
    log(f"software:  abm {versions.get('abm') or '?'} (git {versions.get('git') or '?'}), "
        f"python {machine['python']}, duckdb {versions.get('duckdb') or '?'}")
    la = lambda t: " ".join(f"{x:.2f}" for x in t)
    log(f"load avg:  {la(loadavg)} at start, {la(loadavg_end)} at end (1/5/15 min; "
        f"other work on the machine shows here)")


def read_summary(out_dir):
    try:
        with open(os.path.join(out_dir, "cluster_summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    log(f"results written to {path}")


# ---------------------------------------------------------------- modes


def compare_mode(a, abm, shared, machine):
    if a.data:
        data = os.path.abspath(a.data)
        out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(
            prefix="abm-bench-out-", dir=os.path.dirname(data))
    else:
        out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="abm-bench-")
        data = os.path.join(out, "data")
    os.makedirs(out, exist_ok=True)
    generated = ensure_data(shared, data, a.accounts, a.events_per_account, a.gen_chunk)

    abm_out, peer_out = os.path.join(out, "abm"), os.path.join(out, "peer")
    abm_cmd = [abm, "segment", data, "--as-of", AS_OF, "--out", abm_out, "--quiet"] + a.abm_args
    peer_cmd = [sys.executable, os.path.join(shared, "bench", "duckdb_reference.py"),
                data, peer_out]
    abm_log, peer_log = os.path.join(out, "abm.log"), os.path.join(out, "peer.log")
    for p in (abm_log, peer_log):
        open(p, "w").close()
    versions = tool_versions(abm)
    loadavg = os.getloadavg()

    log(f"warming the page cache: reading the input files once ...")
    counts, sizes, warm_s = warm_and_count(data)
    in_bytes = sum(sizes.values())
    log(f"  read {fmt_bytes(in_bytes)} in {warm_s:.2f} s "
        f"({in_bytes / MIB / max(warm_s, 1e-9):.0f} MiB/s)")
    n_acc = counts.get("accounts.csv", 0)
    if a.accounts_given and n_acc != a.accounts:
        log(f"warning: --accounts {a.accounts:,} but {data}/accounts.csv has {n_acc:,} rows "
            "(reused data); reporting what is in the files")

    runs = {"abm": [], "peer": []}
    log(f"timed runs, alternating, {a.runs} each:")
    for i in range(a.runs):
        for tool, cmd, lf, od in (("abm", abm_cmd, abm_log, abm_out),
                                  ("peer", peer_cmd, peer_log, peer_out)):
            wall, rss = run_or_die(tool, cmd, lf, od)
            runs[tool].append({"run": i + 1, "wall_s": round(wall, 4), "peak_rss_kib": rss})
            log(f"  run {i + 1}/{a.runs} {tool:<4} {wall:8.2f} s  {rss / 1024:8.1f} MiB peak RSS")

    log(f"checking results: {os.path.join(abm_out, 'cluster_assignments.csv')} vs "
        f"{os.path.join(peer_out, 'cluster_assignments.csv')} ...")
    t0 = time.perf_counter()
    diff, how = compare(os.path.join(abm_out, "cluster_assignments.csv"),
                        os.path.join(peer_out, "cluster_assignments.csv"))
    check_s = time.perf_counter() - t0
    summary = read_summary(abm_out)

    sa, sp = stats(runs["abm"]), stats(runs["peer"])
    speedup = sp["median_wall_s"] / sa["median_wall_s"] if sa["median_wall_s"] else float("inf")
    mem_ratio = sa["median_peak_rss_mib"] / sp["median_peak_rss_mib"]

    loadavg_end = os.getloadavg()
    print_header(f"abm segment vs DuckDB peer: {n_acc:,} accounts", machine, versions, loadavg,
                 loadavg_end)
    log(f"data:      {data}{' (generated now)' if generated else ' (reused)'}")
    log(f"           {n_acc:,} accounts, {counts.get('engagement.csv', 0):,} events, "
        f"{counts.get('triggers.csv', 0):,} triggers, {counts.get('deals.csv', 0):,} deals; "
        f"{in_bytes:,} bytes ({fmt_bytes(in_bytes)}) of input")
    log(f"cache:     page cache warmed once before the first timed run (all inputs read, "
        f"{warm_s:.2f} s)")
    log(f"runs:      {a.runs} per tool, alternating abm, peer, abm, peer, ...; "
        "wall = spawn to exit; peak RSS = ru_maxrss from wait4")
    log(f"abm:       {shlex.join(abm_cmd)}")
    log(f"peer:      {shlex.join(peer_cmd)}")
    log()
    log(f"{'tool':<12}{'median s':>10}{'min s':>9}{'max s':>9}{'median peak RSS MiB':>22}")
    for name, s in (("abm", sa), ("duckdb peer", sp)):
        log(f"{name:<12}{s['median_wall_s']:>10.2f}{s['min_wall_s']:>9.2f}{s['max_wall_s']:>9.2f}"
            f"{s['median_peak_rss_mib']:>22.1f}")
    log()
    for label, key in (("all runs (s): abm ", "abm"), ("              peer", "peer")):
        log(f"{label} " + " ".join(f"{r['wall_s']:.2f}" for r in runs[key]))
    log(f"speed-up   peer median wall / abm median wall = {speedup:.2f}x")
    log(f"memory     abm median RSS / peer median RSS   = {mem_ratio:.2f}")
    met = speedup >= 5 and mem_ratio <= 1
    log(f"issue 4 target (>= 5x, RSS ratio <= 1, judged at 1M accounts): "
        f"{'met' if met else 'not met'}")
    if summary:
        rr = summary.get("rows_read")
        log(f"abm summary: rejected_rows {summary.get('rejected_rows', '?')}"
            + (f", rows_read {rr}" if rr else "")
            + (f", events_after_as_of {summary['events_after_as_of']}"
               if "events_after_as_of" in summary else ""))
        if summary.get("rejected_rows"):
            log("warning: abm rejected rows of generated data (see OUT/abm/rejected_rows.csv)")
    ok = diff.total == 0 and diff.compared > 0
    if ok:
        log(f"results:   identical on {diff.compared:,} accounts "
            f"(account_id, {', '.join(COMPARED)}; {how}, {check_s:.1f} s)")
    else:
        per = ", ".join(f"{c} {n:,}" for c, n in sorted(diff.per_column.items()))
        log(f"results:   MISMATCH: {diff.total:,} differences over {diff.compared:,} "
            f"paired accounts ({per or 'no rows compared'}); first {len(diff.first)}:")
        for m in diff.first:
            log(f"  {m}")
    log(f"outputs:   {out} (abm/, peer/, abm.log, peer.log)"
        + (f"; reuse the data with --data {data}" if generated else ""))

    if a.json:
        write_json(a.json, {
            "mode": "compare", "machine": machine, "versions": versions,
            "loadavg_at_start": loadavg, "loadavg_at_end": loadavg_end,
            "data": {"dir": data, "generated": generated, "rows": counts, "bytes": sizes,
                     "input_bytes": in_bytes, "accounts": n_acc,
                     "events": counts.get("engagement.csv", 0)},
            "cache_warm_s": round(warm_s, 3),
            "commands": {"abm": abm_cmd, "peer": peer_cmd},
            "runs": runs, "abm": sa, "peer": sp,
            "speedup_peer_over_abm": round(speedup, 3),
            "rss_ratio_abm_over_peer": round(mem_ratio, 3),
            "check": {"identical": ok, "compared": diff.compared, "differences": diff.total,
                      "per_column": diff.per_column, "first": diff.first, "columns":
                      ["account_id"] + COMPARED},
            "abm_summary": summary,
        })
    return 0 if ok else 1


def to_jsonl(data, dest):
    """DATA/*.csv as JSON Lines in DEST (reused when present): every value a JSON string, empty
    CSV fields as null, converted by DuckDB (which the peer needs anyway). The conversion runs
    in a process of its own: a child's peak RSS as wait4 reports it starts from its parent's
    at the fork, so this process must stay small for the abm runs' figures to be their own."""
    if os.path.exists(os.path.join(dest, "accounts.jsonl")):
        return False
    os.makedirs(dest, exist_ok=True)
    code = (
        "import duckdb, os, sys\n"
        "data, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
        "con = duckdb.connect()\n"
        "for name in names:\n"
        "    src = os.path.join(data, name)\n"
        "    if not os.path.exists(src):\n"
        "        continue\n"
        "    out = os.path.join(dest, name[:-4] + '.jsonl')\n"
        "    con.execute(f\"COPY (SELECT * FROM read_csv('{src}', all_varchar=true, header=true)) \"\n"
        "                f\"TO '{out}.tmp' (FORMAT JSON)\")\n"
        "    os.replace(out + '.tmp', out)\n"
    )
    subprocess.run([sys.executable, "-c", code, data, dest, *INPUTS], check=True)
    return True


def jsonl_mode(a, abm, shared, machine):
    """abm on the CSV inputs and on the same data as JSON Lines, alternately (issue 4, item 3)."""
    data = os.path.abspath(a.data or os.path.join(tempfile.gettempdir(), "abm-1m"))
    ensure_data(shared, data, a.accounts, a.events_per_account, a.gen_chunk)
    jdata = data.rstrip("/") + "-jsonl"
    log(f"JSON Lines copy of {data}: {jdata} ...")
    t0 = time.perf_counter()
    made = to_jsonl(data, jdata)
    log(f"  {'converted' if made else 'reused'} ({time.perf_counter() - t0:.1f} s)")
    out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="abm-bench-out-",
                                                              dir=os.path.dirname(data))
    versions = tool_versions(abm)
    loadavg = os.getloadavg()
    sizes = {}
    for label, d in (("csv", data), ("jsonl", jdata)):
        for f in os.listdir(d):  # warm the page cache
            with open(os.path.join(d, f), "rb") as fh:
                while fh.read(1 << 24):
                    pass
        sizes[label] = dir_bytes(d)
    runs = {"csv": [], "jsonl": []}
    cmds = {}
    for i in range(a.runs):
        for label, d in (("csv", data), ("jsonl", jdata)):
            od = os.path.join(out, label)
            lf = os.path.join(out, f"abm-{label}.log")
            cmd = [abm, "segment", d, "--as-of", AS_OF, "--out", od, "--quiet"] + a.abm_args
            cmds[label] = cmd
            wall, rss = run_or_die("abm", cmd, lf, od)
            runs[label].append({"run": i + 1, "wall_s": round(wall, 4), "peak_rss_kib": rss})
            log(f"  run {i + 1}/{a.runs} {label:<5} {wall:8.2f} s  {rss / 1024:8.1f} MiB peak RSS")
    sc, sj = stats(runs["csv"]), stats(runs["jsonl"])
    same = all(
        open(os.path.join(out, "csv", f), "rb").read() == open(os.path.join(out, "jsonl", f), "rb").read()
        for f in ("cluster_assignments.csv",))
    print_header("abm segment: CSV vs JSON Lines input", machine, versions, loadavg,
                 os.getloadavg())
    log(f"data:      {data} ({fmt_bytes(sizes['csv'])}) and {jdata} ({fmt_bytes(sizes['jsonl'])})")
    for label in ("csv", "jsonl"):
        log(f"{label + ':':<10} {shlex.join(cmds[label])}")
    log()
    log(f"{'input':<12}{'median s':>10}{'min s':>9}{'max s':>9}{'median peak RSS MiB':>22}")
    for name, st in (("CSV", sc), ("JSON Lines", sj)):
        log(f"{name:<12}{st['median_wall_s']:>10.2f}{st['min_wall_s']:>9.2f}"
            f"{st['max_wall_s']:>9.2f}{st['median_peak_rss_mib']:>22.1f}")
    ratio = sj["median_wall_s"] / sc["median_wall_s"]
    log(f"JSON Lines / CSV median wall = {ratio:.2f}x (target: within 2x)")
    log(f"results:   cluster_assignments.csv {'byte-identical' if same else 'DIFFERENT'}")
    if a.json:
        write_json(a.json, {"mode": "jsonl", "machine": machine, "versions": versions,
                            "commands": cmds, "runs": runs, "csv": sc, "jsonl": sj,
                            "ratio_jsonl_over_csv": round(ratio, 3), "identical": same})
    return 0 if same else 1


def scaling_mode(a, abm, shared, machine):
    try:
        sizes = [int(s.replace("_", "")) for s in a.scaling.split(",") if s.strip()]
    except ValueError:
        die(f"--scaling wants a comma-separated list of account counts, got {a.scaling!r}")
    if not sizes or min(sizes) <= 0:
        die("--scaling needs positive sizes")
    root = (os.path.abspath(a.data_root) if a.data_root
            else tempfile.mkdtemp(prefix="abm-bench-scaling-"))
    out = os.path.abspath(a.out) if a.out else tempfile.mkdtemp(prefix="abm-bench-out-",
                                                              dir=os.path.dirname(root))
    os.makedirs(root, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    versions = tool_versions(abm)
    loadavg = os.getloadavg()
    log(f"scaling: sizes {', '.join(f'{n:,}' for n in sizes)}; data under {root}; "
        f"outputs under {out}")
    for n in sizes:
        ensure_data(shared, os.path.join(root, str(n)), n, a.events_per_account, a.gen_chunk)

    results = []
    for n in sizes:
        data = os.path.join(root, str(n))
        odir = os.path.join(out, str(n))
        lf = os.path.join(out, f"abm-{n}.log")
        open(lf, "w").close()
        cmd = [abm, "segment", data, "--as-of", AS_OF, "--out", odir, "--quiet"] + a.abm_args
        log(f"{n:,} accounts: warming the page cache ...")
        counts, fsizes, warm_s = warm_and_count(data)
        log(f"  read {fmt_bytes(sum(fsizes.values()))} in {warm_s:.2f} s")
        runs = []
        for i in range(a.runs):
            wall, rss = run_or_die("abm", cmd, lf, odir)
            runs.append({"run": i + 1, "wall_s": round(wall, 4), "peak_rss_kib": rss})
            log(f"  run {i + 1}/{a.runs} {wall:8.2f} s  {rss / 1024:8.1f} MiB peak RSS")
        summ = read_summary(odir)
        rows_read = (summ.get("rows_read") or {}).get("engagement")
        events = counts.get("engagement.csv", 0)
        if rows_read is not None and rows_read != events:
            log(f"  warning: abm read {rows_read:,} engagement rows, the file has {events:,}")
        s = stats(runs)
        results.append({"accounts": counts.get("accounts.csv", 0), "events": events,
                        "input_bytes": sum(fsizes.values()), "data": data, "command": cmd,
                        "runs": runs, **s,
                        "events_per_s": events / s["median_wall_s"] if s["median_wall_s"] else None,
                        "rejected_rows": summ.get("rejected_rows")})

    loadavg_end = os.getloadavg()
    print_header("abm segment scaling", machine, versions, loadavg, loadavg_end)
    log(f"runs:      {a.runs} per size (median), page cache warmed before each size; "
        f"{a.events_per_account:g} events per account requested")
    log(f"command:   {shlex.join(results[0]['command'])}  (per size <N>: {root}/<N>, {out}/<N>)")
    log()
    log(f"{'accounts':>11}{'events':>13}{'input':>11}{'median s':>10}{'min s':>8}{'max s':>8}"
        f"{'events/s':>13}{'RSS MiB':>9}{'s/event vs first':>18}")
    base = results[0]["median_wall_s"] / max(results[0]["events"], 1)
    for r in results:
        per = r["median_wall_s"] / max(r["events"], 1)
        log(f"{r['accounts']:>11,}{r['events']:>13,}{fmt_bytes(r['input_bytes']):>11}"
            f"{r['median_wall_s']:>10.2f}{r['min_wall_s']:>8.2f}{r['max_wall_s']:>8.2f}"
            f"{r['events_per_s']:>13,.0f}{r['median_peak_rss_mib']:>9.0f}{per / base:>18.2f}")
    log("(s/event vs first: 1.00 = perfectly linear; > 1 = slower per event than the "
        "smallest size)")
    if a.json:
        write_json(a.json, {"mode": "scaling", "machine": machine, "versions": versions,
                            "loadavg_at_start": loadavg, "loadavg_at_end": loadavg_end,
                            "data_root": root, "sizes": results})
    return 0


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=None,
                   help="accounts to generate (default 1000000; 20000 with --quick)")
    p.add_argument("--events-per-account", type=float, default=20,
                   help="engagement events per account to generate (default 20)")
    p.add_argument("--data", help="data directory: reused if it holds accounts.csv, else generated "
                                  "into (default: OUT/data)")
    p.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"),
                   help="the directory holding bench/gen_data.py and bench/duckdb_reference.py "
                        "(default <repo>/../shared)")
    p.add_argument("--runs", type=int, default=None,
                   help="timed runs per tool or size (default 5; 2 with --quick)")
    p.add_argument("--abm", default=None,
                   help="abm binary (default <repo>/target/release/abm, built if missing)")
    p.add_argument("--jsonl", action="store_true",
                   help="abm only: CSV inputs vs the same data as JSON Lines (converted once with "
                        "DuckDB into DATA-jsonl), alternately")
    p.add_argument("--abm-args", default="--formats csv",
                   help="arguments added to every abm segment run (default \"--formats csv\": one "
                        "assignment CSV, as the peer writes; \"\" for abm's default of CSV and "
                        "JSON Lines)")
    p.add_argument("--out", help="directory for outputs and logs (default: a new temp dir beside "
                                 "the data, or in $TMPDIR)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 20k accounts and 2 runs (scaling: 10k,20k,40k) unless given")
    p.add_argument("--scaling", nargs="?", const="", default=None, metavar="N1,N2,...",
                   help="abm only, at each size (default list 100000,1000000,5000000)")
    p.add_argument("--data-root", help="scaling: data directories DATA_ROOT/<N>, reused when "
                                       "present (default: a new temp dir)")
    p.add_argument("--gen-chunk", type=int, default=0,
                   help="generate in gen_data.py chunks of this many accounts (0: only when one "
                        "gen_data.py run would need more than 75%% of RAM)")
    a = p.parse_args()
    a.abm_args = shlex.split(a.abm_args)

    a.accounts_given = a.accounts is not None
    if a.accounts is None:
        a.accounts = 20_000 if a.quick else 1_000_000
    if a.runs is None:
        a.runs = 2 if a.quick else 5
    if a.scaling == "":
        a.scaling = "10000,20000,40000" if a.quick else "100000,1000000,5000000"
    if a.runs < 1 or a.accounts < 1 or a.events_per_account < 0:
        die("--runs and --accounts must be positive, --events-per-account non-negative")
    shared = os.path.abspath(a.shared)
    for f in ("gen_data.py", "duckdb_reference.py"):
        if not os.path.exists(os.path.join(shared, "bench", f)):
            die(f"{shared}/bench/{f} not found (use --shared PATH)")
    default_abm = os.path.join(REPO, "target", "release", "abm")
    abm = ensure_abm(os.path.abspath(a.abm or default_abm), a.abm is None)
    machine = machine_info()
    try:
        if a.scaling is not None:
            return scaling_mode(a, abm, shared, machine)
        if a.jsonl:
            return jsonl_mode(a, abm, shared, machine)
        return compare_mode(a, abm, shared, machine)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
