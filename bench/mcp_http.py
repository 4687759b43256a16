"""MCP over HTTP: sequential tool calls against `/mcp` of `abm serve` (loopback, bounded:
4 tools x 320 calls).

Usage (in a directory with b.db, e.g. `abm sample --accounts 10000 --out data && abm import data
--database b.db && abm run --as-of 2026-11-01 --database b.db`):
    python3 bench/mcp_http.py path/to/abm
Prints p50/p99 per tool. Needs the `mcp` package's httpx2 (installed by .ci/run).
"""
import json, subprocess, sys, time, re, statistics
import httpx2 as httpx
abm = sys.argv[1]
srv = subprocess.Popen([abm, "serve", "--listen", "127.0.0.1:0", "--db", "./b.db"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
srv.stdout.readline(); tok = srv.stdout.readline().strip()
addr = None
while not addr:
    m = re.search(r"on http://(127\.0\.0\.1:\d+)", srv.stderr.readline()); addr = m and m.group(1)
import threading; threading.Thread(target=lambda: [None for _ in srv.stderr], daemon=True).start()
h = {"authorization": f"Bearer {tok}", "accept": "application/json, text/event-stream", "content-type": "application/json"}
def call(c, name, args):
    t = time.perf_counter()
    r = c.post(f"http://{addr}/mcp", headers=h, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}})
    assert r.status_code == 200 and not r.json()["result"]["isError"], r.text
    return (time.perf_counter() - t) * 1000
firmo = {"industry": "software", "employees": 800, "annual_revenue": 120000000, "country": "US"}
ev = [{"occurred_at": "2026-10-%02d" % d, "type": "meeting", "contact_id": "c%d" % d} for d in range(1, 21)]
with httpx.Client() as c:
    for name, args in [("score_account", {"firmographics": firmo, "as_of": "2026-11-01"}),
                       ("assign_cluster", {"firmographics": firmo, "events": ev, "as_of": "2026-11-01"}),
                       ("explain_account", {"account_id": "ACC-00042"}),
                       ("search_accounts", {"tier": "A", "limit": 50})]:
        for _ in range(20): call(c, name, args)
        xs = sorted(call(c, name, args) for _ in range(300))
        print(f"{name}: p50 {statistics.median(xs):.2f} ms, p99 {xs[int(len(xs)*0.99)-1]:.2f} ms (300 sequential calls)")
srv.terminate(); srv.wait()
