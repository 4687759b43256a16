#!/usr/bin/env python3
"""Load test of `abm serve` on loopback (issue 17), bounded in count and time.

Starts `abm serve --listen 127.0.0.1:0 --db URL` on an imported (and run) store, creates an
admin token for the run (revoked at the end), then measures:

0. the floor: GET /healthz (no token check, no store) the same way, so that every figure below
   can be read against what the HTTP stack, the load client and the machine cost alone (on 2
   cores the client and the server share them; skip with --no-floor);
1. GET /api/accounts/{id} (random ids) under --clients concurrent clients for --seconds;
2. GET /api/accounts?limit=50 (random filters and cursors) the same way;
3. POST /api/events: --batches batches of --batch-size new events, one after another;
4. the server's peak RSS (VmHWM).

The GET phases run the compiled load client `crates/abm-server/examples/load.rs` (`--load`,
build it with `cargo build --release -p abm-server --example load`): --clients keep-alive
connections on one thread, so the client costs one core at most, not 64 Python threads. With
`--python-client` the old Python threads are used instead (their overhead is in the figures).
The ingest phases are one sequential client (Python): batch throughput, then --singles posts of
one new event each, timed from the POST until a GET of the account returns the new cluster
(p50/p99 of "one event -> its account's new cluster readable").

    cargo build --release -p abm-cli --bin abm && cargo build --release -p abm-server --example load
    python3 bench/serve.py --db /tmp/abm-1m.db                    # the benchmark (release build)
    python3 bench/serve.py --db /tmp/small.db --seconds 3 --clients 8 --batches 3   # smoke test
"""
import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def account_path(account_id):
    """`/api/accounts/{id}` with the id percent-encoded (a real export's ids hold spaces, `/`, …)."""
    return "/api/accounts/" + urllib.parse.quote(account_id, safe="")


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Client:
    def __init__(self, addr, token):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data


def start_server(abm, db):
    p = subprocess.Popen([abm, "serve", "--listen", "127.0.0.1:0", "--db", db],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "ABM_LOG": "warn"})
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"on http://(\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1)
    p.kill()
    sys.exit("abm serve did not say where it listens")


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def load(addr, token, clients, seconds, make_path):
    lat, errors, lock = [], [0], threading.Lock()
    stop = time.time() + seconds

    def worker(seed):
        rnd = random.Random(seed)
        c = Client(addr, token)
        mine, bad = [], 0
        while time.time() < stop:
            path = make_path(rnd)
            t = time.perf_counter()
            try:
                status, _ = c.call("GET", path)
            except (OSError, http.client.HTTPException):
                status = 0
                c = Client(addr, token)
            mine.append(time.perf_counter() - t)
            if status != 200:
                bad += 1
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors[0]


def load_compiled(exe, addr, token, clients, seconds, paths):
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as f:
        f.write("\n".join(paths) + "\n")
    try:
        out = subprocess.run([exe, "--addr", addr, "--token", token, "--paths", f.name,
                              "--clients", str(clients), "--seconds", str(seconds)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    return json.loads(out.strip().splitlines()[-1])


def report_compiled(name, r):
    print(f"{name}: {r['requests']} requests in {r['seconds']:.1f}s ({r['per_second']:,.0f}/s), "
          f"errors {r['errors']}, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms")


def report(name, lat, errors, seconds):
    ms = [x * 1e3 for x in lat]
    print(f"{name}: {len(lat)} requests in {seconds}s ({len(lat) / seconds:,.0f}/s), errors {errors}, "
          f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, max {max(ms, default=0):.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--abm", default="target/release/abm")
    ap.add_argument("--db", required=True, help="an imported and run store (SQLite path or postgres:// URL)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--singles", type=int, default=200, help="posts of one event each, timed to readable")
    ap.add_argument("--load", default="target/release/examples/load", help="the compiled load client")
    ap.add_argument("--python-client", action="store_true", help="Python threads instead of --load")
    ap.add_argument("--no-floor", action="store_true", help="skip the GET /healthz floor phase")
    a = ap.parse_args()
    a.seconds = min(a.seconds, 300)
    a.batches = min(a.batches, 200)
    a.singles = min(a.singles, 2000)
    if not a.python_client and not os.path.exists(a.load):
        sys.exit(f"{a.load} missing: cargo build --release -p abm-server --example load (or --python-client)")

    name = f"bench-{os.getpid()}"
    out = subprocess.run([a.abm, "token", "create", "--role", "admin", "--name", name, "--db", a.db],
                         check=True, capture_output=True, text=True).stdout
    token = out.strip().splitlines()[-1]
    server, addr = start_server(a.abm, a.db)
    try:
        c = Client(addr, token)
        # The ids the by-id phase asks for: 50 pages of 100 accounts at random places across the
        # whole store (row ids run from 1 to about the number of accounts), so the requests
        # touch cold pages as a team's would, not only the first few thousand accounts.
        status, body = c.call("GET", "/api/runs?limit=1")
        runs = json.loads(body) if status == 200 else []
        total = max((r.get("accounts", 0) for r in (runs if isinstance(runs, list) else runs.get("items", []))),
                    default=0)
        rng = random.Random(17)
        ids = []
        for _ in range(50):
            cursor = f"&cursor=a{rng.randrange(total)}" if total > 100 else ""
            status, body = c.call("GET", f"/api/accounts?limit=100{cursor}")
            ids += [i["account_id"] for i in json.loads(body)["items"]]
        ids = sorted(set(ids))
        if not ids:
            sys.exit("the store has no accounts: abm import and abm run first")
        print(f"abm serve on {addr}, {a.db}; {a.clients} clients, {a.seconds} s per phase")

        filters = ["", "&tier=A", "&cluster=active_focus", "&engagement=high", "&tier=B&engagement=medium"]
        if a.python_client:
            if not a.no_floor:
                lat, err = load(addr, token, a.clients, a.seconds, lambda r: "/healthz")
                report("floor: GET /healthz", lat, err, a.seconds)
            lat, err = load(addr, token, a.clients, a.seconds, lambda r: account_path(r.choice(ids)))
            report("GET /api/accounts/{id}", lat, err, a.seconds)
            lat, err = load(addr, token, a.clients, a.seconds,
                            lambda r: f"/api/accounts?limit=50{r.choice(filters)}")
            report("GET /api/accounts?limit=50", lat, err, a.seconds)
        else:
            if not a.no_floor:
                r = load_compiled(a.load, addr, token, a.clients, a.seconds, ["/healthz"])
                report_compiled("floor: GET /healthz", r)
            r = load_compiled(a.load, addr, token, a.clients, a.seconds, [account_path(i) for i in ids])
            report_compiled("GET /api/accounts/{id}", r)
            r = load_compiled(a.load, addr, token, a.clients, a.seconds,
                              [f"/api/accounts?limit=50{f}" for f in filters])
            report_compiled("GET /api/accounts?limit=50", r)

        run = f"{os.getpid()}-{int(time.time())}"
        t0, events, errors = time.perf_counter(), 0, 0
        for b in range(a.batches):
            batch = [{"account_id": random.choice(ids), "occurred_at": "2026-10-30T12:00:00Z",
                      "type": "meeting", "contact_id": f"bench-{i % 7}", "event_id": f"bench-{run}-{b}-{i}"}
                     for i in range(a.batch_size)]
            status, body = c.call("POST", "/api/events", json.dumps(batch))
            if status != 200 or json.loads(body)["accepted"] != a.batch_size:
                errors += 1
            events += a.batch_size
        secs = time.perf_counter() - t0
        print(f"POST /api/events: {events:,} events in {a.batches} batches of {a.batch_size} in {secs:.2f} s "
              f"= {events / secs:,.0f} events/s, errors {errors}")

        # One event at a time: from the POST until a GET of its account shows the cluster the
        # POST answered (the re-evaluation is committed before the answer).
        took, post_only, errors = [], [], 0
        for k in range(a.singles):
            account = random.choice(ids)
            event = [{"account_id": account, "occurred_at": "2026-10-31T09:00:00Z", "type": "meeting",
                      "contact_id": f"bench-single-{k % 5}", "event_id": f"bench-{run}-single-{k}"}]
            t = time.perf_counter()
            status, body = c.call("POST", "/api/events", json.dumps(event))
            t_post = time.perf_counter()
            ok = status == 200
            if ok:
                re_ = json.loads(body).get("reevaluated") or {}
                want = [x["cluster"] for x in re_.get("accounts", []) if x["account_id"] == account]
                status, body = c.call("GET", account_path(account))
                t_read = time.perf_counter()
                ok = status == 200 and bool(want) and (json.loads(body).get("state") or {}).get("cluster") == want[0]
            else:
                t_read = time.perf_counter()
            errors += not ok
            took.append((t_read - t) * 1e3)
            post_only.append((t_post - t) * 1e3)
        if took:
            print(f"one event -> new cluster readable: {len(took)} single-event posts, errors {errors}, "
                  f"POST+GET p50 {percentile(took, 50):.2f} ms, p99 {percentile(took, 99):.2f} ms; "
                  f"POST alone p50 {percentile(post_only, 50):.2f} ms, p99 {percentile(post_only, 99):.2f} ms")
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=60)
        subprocess.run([a.abm, "token", "revoke", name, "--db", a.db], capture_output=True)


if __name__ == "__main__":
    main()
