#!/usr/bin/env python3
"""Server time of every dashboard page on a database, from `abm serve`'s request log.

    python3 bench/dashboard.py --abm target/release/abm --db big.db [--rounds 5]

Starts `abm serve` on loopback (port 0) over DB, creates a reviewer token, signs in, requests
each page ROUNDS times after one warm-up round and prints, per page, the first (warm-up)
request's `latency_ms`, and the median and largest of the others, as the server logged them (the time from the request to its answer, not the
network). Bounded: a fixed list of pages, ROUNDS rounds. Loopback only.
"""

import argparse
import http.cookiejar
import re
import statistics
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--abm", default="target/release/abm")
ap.add_argument("--db", required=True)
ap.add_argument("--rounds", type=int, default=5)
args = ap.parse_args()

out = subprocess.run(
    [args.abm, "token", "create", "--role", "reviewer", "--name", f"bench-{id(ap)}", "--db", args.db],
    check=True, capture_output=True, text=True,
)
token = out.stdout.strip().splitlines()[-1]
server = subprocess.Popen(
    [args.abm, "serve", "--listen", "127.0.0.1:0", "--db", args.db],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
)
log = []
addr = None
ready = threading.Event()


def read():
    global addr
    for line in server.stderr:
        log.append(line)
        m = re.search(r"on http://(\S+)", line)
        if m and not addr:
            addr = m.group(1)
            ready.set()


threading.Thread(target=read, daemon=True).start()
if not ready.wait(120):
    sys.exit("abm serve did not start")
base = f"http://{addr}"
jar = http.cookiejar.CookieJar()
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = web.open(base + "/signin").read().decode()
csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
web.open(base + "/signin", urllib.parse.urlencode({"csrf": csrf, "token": token}).encode()).read()


def get(path):
    return web.open(base + path).read().decode()


runs = get("/runs")
latest = re.search(r'href="/runs/(\d+)"', runs).group(1)
first_page = get("/accounts")
cursor = re.search(r'cursor=(a\d+)', first_page).group(1)
account = re.search(r'href="/accounts/([^"?]+)"', first_page).group(1)
matrix = get(f"/runs/{latest}")
cells = [c.replace("&amp;", "&") for c in re.findall(r'href="(/accounts\?run=[^"]+)"', matrix)]
diagonal = next((c for c in cells if re.search(r"from=(\w+)&to=\1$", c)), None)
moved = next((c for c in cells if not re.search(r"from=(\w+)&to=\1$", c)), None)
pages = {
    "overview /": "/",
    "accounts": "/accounts",
    "accounts, next page": f"/accounts?cursor={cursor}",
    "accounts tier=A": "/accounts?tier=A",
    "accounts cluster=active_focus": "/accounts?cluster=active_focus",
    "accounts candidate=active_focus engagement=high": "/accounts?candidate=active_focus&engagement=high",
    "account page": f"/accounts/{account}",
    "review queue": "/review",
    "runs": "/runs",
    "transition matrix (latest run)": f"/runs/{latest}",
}
if diagonal:
    pages["matrix cell on the diagonal"] = diagonal
if moved:
    pages["matrix cell off the diagonal"] = moved
get("/healthz")  # the log's marker: the timed requests follow it
for _ in range(args.rounds + 1):
    for path in pages.values():
        get(path)
server.terminate()
server.wait(30)
times = {}
marker = max(i for i, line in enumerate(log) if "path=/healthz" in line)
for line in log[marker + 1:]:
    m = re.search(r"method=GET path=(\S+) status=(\d+) latency_ms=([\d.]+)", line)
    if m:
        times.setdefault(m.group(1), []).append(float(m.group(3)))
# The matrix's very first view in the server's life (the page read before the timed rounds).
for line in log[:marker]:
    m = re.search(r"method=GET path=/runs/(\d+) status=(\d+) latency_ms=([\d.]+)", line)
    if m:
        print(f"transition matrix of run {m.group(1)}, first view after the server started: {float(m.group(3)):.1f} ms")
        break
print(f"{'page':52} {'first ms':>9} {'median ms':>10} {'max ms':>9}")
for name, path in pages.items():
    p = urllib.parse.urlsplit(path).path
    # The log has the path without the query: pages sharing a path are told apart by order.
    t = times.get(p, [])
    same = [n for n, q in pages.items() if urllib.parse.urlsplit(q).path == p]
    k = same.index(name)
    every = t[k::len(same)]
    mine = every[1:]  # the warm-up round apart
    if mine:
        print(f"{name:52} {every[0]:9.1f} {statistics.median(mine):10.1f} {max(mine):9.1f}")
