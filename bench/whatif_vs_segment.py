#!/usr/bin/env python3
"""Benchmark: `abm whatif` (old and new config over the same data) versus one `abm segment`.

    python3 bench/whatif_vs_segment.py --data /tmp/abm-1m        # reuse (or create) a data dir
    python3 bench/whatif_vs_segment.py --accounts 200000 --runs 3

Generates the data with `abm sample` when DATA has no accounts.csv, writes the default config
(`abm init`) and a new one with the tier-A threshold and the industry weight changed (scoring
only: one fold serves both) and, with --window, one with a shorter engagement window (the new
config folds again). Then runs, alternately, `abm segment DATA --formats csv` and
`abm whatif DATA --config-new NEW --out OUT` `--runs` times each (whole processes, wall time
from spawn to exit, peak RSS from wait4) and prints medians and the ratio whatif / segment.
Python 3.11 standard library only.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    err = p.stderr.read().decode()
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(map(str, cmd))}\n{err}")
    return elapsed, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--abm", default=str(ROOT / "target/release/abm"))
    ap.add_argument("--data", help="data directory (created with `abm sample` if empty)")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--window", action="store_true", help="also change the engagement window")
    a = ap.parse_args()
    abm = a.abm
    if not Path(abm).exists():
        sys.exit(f"{abm} not found: cargo build --release first")
    work = Path(tempfile.mkdtemp(prefix="abm-whatif-bench-"))
    data = Path(a.data) if a.data else work / "data"
    if not (data / "accounts.csv").exists():
        print(f"generating {a.accounts} accounts into {data} …", flush=True)
        subprocess.run([abm, "sample", "--accounts", str(a.accounts), "--out", str(data)],
                       check=True, stdout=subprocess.DEVNULL)
    old = work / "old.toml"
    subprocess.run([abm, "init", str(old)], check=True, stdout=subprocess.DEVNULL)
    text = old.read_text()
    new_text = text.replace("a = 80.0", "a = 72.0", 1).replace("points = 30.0", "points = 20.0", 1)
    if a.window:
        new_text = new_text.replace("window_days = 90", "window_days = 60", 1)
    new = work / "new.toml"
    new.write_text(new_text)
    for f in data.glob("*.csv"):  # warm the page cache (in blocks: a child's peak RSS
        with open(f, "rb") as fh:   # starts from its parent's)
            while fh.read(1 << 20):
                pass
    seg = [abm, "--config", str(old), "segment", str(data), "--as-of", "2026-11-01", "--quiet",
           "--formats", "csv", "--out", str(work / "seg")]
    wif = [abm, "--config", str(old), "whatif", str(data), "--config-new", str(new),
           "--as-of", "2026-11-01", "--quiet", "--out", str(work / "whatif")]
    times = {"segment": [], "whatif": []}
    rss = {"segment": [], "whatif": []}
    for i in range(a.runs):
        for name, cmd in (("segment", seg), ("whatif", wif)):
            t, m = timed(cmd)
            times[name].append(t)
            rss[name].append(m)
            print(f"  run {i + 1} {name:<8} {t:7.3f} s  peak RSS {m:7.1f} MiB", flush=True)
    ms, mw = statistics.median(times["segment"]), statistics.median(times["whatif"])
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; data: {data}")
    print(f"segment median {ms:.3f} s (peak RSS {max(rss['segment']):.0f} MiB)")
    print(f"whatif  median {mw:.3f} s (peak RSS {max(rss['whatif']):.0f} MiB)")
    print(f"ratio whatif / segment: {mw / ms:.2f}x"
          + (" (the new config folds again)" if a.window else " (one fold)"))
    print(f"commands:\n  {' '.join(seg)}\n  {' '.join(wif)}")


if __name__ == "__main__":
    main()
