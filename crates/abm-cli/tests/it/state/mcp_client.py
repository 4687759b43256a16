"""Drive abm's MCP tools with the official Python MCP client (another implementation than rmcp),
on both transports.

Usage: mcp_client.py ABM_BINARY DATABASE_URL CONFIG stdio|http
  stdio: `abm mcp` as a child process (the local user may do everything).
  http:  `abm serve` on 127.0.0.1 (port 0); `/mcp` with bearer tokens of each role.
The environment may carry HUBSPOT_TOKEN and ABM_HUBSPOT_URL (a fake HubSpot) for the server.
Prints "ok" when every check holds.
"""
import asyncio
import json
import os
import re
import subprocess
import sys
import threading

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {"search_accounts", "explain_account", "cluster_summary", "list_checkpoints",
         "resolve_checkpoint", "ingest_events", "score_account", "assign_cluster",
         "enrich_company", "fetch_company_news", "hubspot_search_companies",
         "hubspot_add_note"}


def body(res):
    assert not res.is_error, res.content[0].text
    return json.loads(res.content[0].text)


def refused(res, needle):
    assert res.is_error, res.content[0].text
    assert needle in res.content[0].text, res.content[0].text


async def reads(s):
    """What any caller may do; answers the first tier-A account and a pending checkpoint."""
    tools = (await s.list_tools()).tools
    names = {t.name for t in tools}
    assert TOOLS <= names, names
    for t in tools:
        assert t.description and t.input_schema.get("type") == "object", t
    score_schema = next(t for t in tools if t.name == "score_account").input_schema
    assert "firmographics" in score_schema["properties"], score_schema

    page = body(await s.call_tool("search_accounts", {"tier": "A", "limit": 5}))
    assert 0 < len(page["items"]) <= 5, page
    assert all(i["tier"] == "A" for i in page["items"])
    first = page["items"][0]["account_id"]
    acc = body(await s.call_tool("explain_account", {"account_id": first}))
    assert acc["account_id"] == first and acc["state"]["cluster"], acc
    missing = await s.call_tool("explain_account", {"account_id": "NOPE"})
    assert missing.is_error and "NOPE" in missing.content[0].text
    bad = await s.call_tool("search_accounts", {"tier": "Z"})
    assert bad.is_error
    summary = body(await s.call_tool("cluster_summary", {}))
    assert summary["accounts"] > 0, summary
    pending = body(await s.call_tool("list_checkpoints", {}))
    assert pending, "the story leaves pending checkpoints"

    # Stateless: facts in, answers out.
    firmo = {"name": "Fit Co", "industry": "software", "employees": 800,
             "annual_revenue": 120000000, "country": "US"}
    fit = body(await s.call_tool("score_account", {"firmographics": firmo, "as_of": "2026-06-01"}))
    misfit = body(await s.call_tool("score_account", {
        "firmographics": {"industry": "agriculture", "employees": 3, "country": "US"}}))
    assert fit["icp_score"] > misfit["icp_score"], (fit, misfit)
    assert fit["tier"] == "A" and {c["field"] for c in fit["criteria"]} >= {"industry", "employees"}, fit
    events = [{"occurred_at": "2026-05-%02d" % d, "type": "meeting", "contact_id": "c%d" % (d % 3)}
              for d in range(10, 16)]
    quiet = body(await s.call_tool("assign_cluster", {"firmographics": firmo, "as_of": "2026-06-01"}))
    busy = body(await s.call_tool("assign_cluster", {
        "firmographics": firmo, "events": events + [{"occurred_at": "never", "type": "meeting"}],
        "as_of": "2026-06-01"}))
    assert busy["cluster"] != quiet["cluster"], (busy["cluster"], quiet["cluster"])
    assert busy["next_action"] and busy["rationale"] and busy["engagement_level"] == "high", busy
    assert [(r["index"], r["field"]) for r in busy["rejected_items"]] == [(6, "occurred_at")], busy
    bad_date = await s.call_tool("assign_cluster", {"firmographics": firmo, "as_of": "soon"})
    refused(bad_date, "as_of")

    # Connectors.
    found = body(await s.call_tool("enrich_company", {"domain": "https://www.Enrich-Me.example/x"}))
    assert found["found"] and found["fields"]["industry"] == "Software", found
    assert found["source"].startswith("file"), found
    unknown = body(await s.call_tool("enrich_company", {"domain": "nobody.example"}))
    assert not unknown["found"], unknown
    hs = body(await s.call_tool("hubspot_search_companies", {"query": "Company 5001"}))
    assert [c["id"] for c in hs["companies"]] == ["5001"], hs
    none = body(await s.call_tool("hubspot_search_companies", {"query": "no such company"}))
    assert none["companies"] == [] and "no CRM engagement" in none["note"], none
    news = await s.call_tool("fetch_company_news", {"feeds": ["/etc/passwd"], "name": "Acme"})
    refused(news, "only http")
    news = body(await s.call_tool("fetch_company_news", {
        "feeds": [os.environ["ABM_TEST_FEED_URL"]], "name": "Company 5001 Inc."}))
    assert (news["items"], news["matched"]) == (2, 1), news
    assert [t["type"] for t in news["triggers"]] == ["funding_round"], news
    assert "account_id" not in news["triggers"][0], news
    return first, pending[0]


async def writes(s, first, checkpoint, reviewer):
    out = body(await s.call_tool("resolve_checkpoint",
                                 {"id": checkpoint["id"], "decision": "approve", "comment": "via MCP"}))
    assert out["checkpoint"]["status"] == "approved"
    assert out["checkpoint"]["reviewer"] == reviewer, out
    again = await s.call_tool("resolve_checkpoint", {"id": checkpoint["id"], "decision": "reject"})
    assert again.is_error
    approved = body(await s.call_tool("list_checkpoints", {"status": "approved"}))
    assert any(x["id"] == checkpoint["id"] for x in approved)


async def ingest(s, first):
    events = [
        {"account_id": first, "occurred_at": "2026-01-04T10:00:00Z", "type": "meeting",
         "contact_id": "m1", "event_id": "mcp-1"},
        {"account_id": first, "occurred_at": "someday", "type": "meeting"},
    ]
    got = body(await s.call_tool("ingest_events", {"events": events}))
    assert (got["accepted"], got["duplicate"], got["rejected"]) == (1, 0, 1), got
    assert got["rejected_items"][0]["index"] == 1
    got = body(await s.call_tool("ingest_events", {"events": events}))
    assert (got["accepted"], got["duplicate"], got["rejected"]) == (0, 1, 1), got
    note = {"company_id": "5001", "body": "Called the CFO; follow up in May.", "key": "agent-note-1"}
    posted = body(await s.call_tool("hubspot_add_note", note))
    assert posted["status"] == "sent" and posted["note_id"] and not posted["already_there"], posted
    repeat = body(await s.call_tool("hubspot_add_note", note))
    assert repeat["status"] == "sent" and repeat["already_there"], repeat
    assert repeat["note_id"] == posted["note_id"], (posted, repeat)


async def over_stdio(abm, db, config):
    params = StdioServerParameters(
        command=abm, args=["--config", config, "mcp", "--db", db, "--reviewer", "agent-7"],
        env=dict(os.environ))
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            first, checkpoint = await reads(s)
            await writes(s, first, checkpoint, "agent-7")
            await ingest(s, first)


def token(abm, config, db, role, name):
    out = subprocess.run([abm, "--config", config, "token", "create", "--role", role, "--name", name,
                          "--db", db], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


async def over_http(abm, db, config):
    import httpx2 as httpx  # what the mcp package uses
    from mcp.client.streamable_http import streamable_http_client

    server = subprocess.Popen([abm, "--config", config, "serve", "--listen", "127.0.0.1:0", "--db", db],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    secrets, log, drain = [], [], None
    try:
        assert "shown once" in server.stdout.readline()
        admin = server.stdout.readline().strip()
        secrets.append(admin)
        addr = None
        while addr is None:
            line = server.stderr.readline()
            assert line, "abm serve stopped before listening"
            m = re.search(r"on http://(127\.0\.0\.1:\d+)", line)
            addr = m and m.group(1)
        url = f"http://{addr}/mcp"
        drain = threading.Thread(target=lambda: log.extend(server.stderr), daemon=True)
        drain.start()
        viewer = token(abm, config, db, "viewer", "ann-viewer")
        reviewer = token(abm, config, db, "reviewer", "rita-reviewer")
        secrets += [viewer, reviewer]

        # No token, or a bad one: 401 before any MCP is spoken.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        async with httpx.AsyncClient() as c:
            r = await c.post(url, json=init, headers=headers)
            assert r.status_code == 401, r
            r = await c.post(url, json=init, headers={**headers, "authorization": "Bearer abm_nope"})
            assert r.status_code == 401, r

        def session(tok):
            client = httpx.AsyncClient(headers={"authorization": f"Bearer {tok}"},
                                       timeout=httpx.Timeout(60.0))
            return client, streamable_http_client(url, http_client=client)

        client, transport = session(viewer)
        async with client, transport as (r, w, *_):
            async with ClientSession(r, w) as s:
                await s.initialize()
                first, checkpoint = await reads(s)
                refused(await s.call_tool("resolve_checkpoint",
                                          {"id": checkpoint["id"], "decision": "approve"}),
                        "needs the reviewer role")
                refused(await s.call_tool("ingest_events", {"events": []}), "needs the admin role")
                refused(await s.call_tool("hubspot_add_note", {"company_id": "5001", "body": "x"}),
                        "needs the admin role")
        client, transport = session(reviewer)
        async with client, transport as (r, w, *_):
            async with ClientSession(r, w) as s:
                await s.initialize()
                await writes(s, first, checkpoint, "rita-reviewer")
                refused(await s.call_tool("ingest_events", {"events": []}), "needs the admin role")
        client, transport = session(admin)
        async with client, transport as (r, w, *_):
            async with ClientSession(r, w) as s:
                await s.initialize()
                await ingest(s, first)
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0, "abm serve did not stop cleanly on SIGTERM"
        if drain:
            drain.join(timeout=10)
        log = "".join(log)
        for secret in secrets:
            assert secret not in log, "a token reached the log"
        assert "path=/mcp status=200" in log, log
        assert "Called the CFO" not in log and "ann-viewer" not in log, "MCP answers are not logged"


async def main(abm, db, config, transport):
    if transport == "stdio":
        await over_stdio(abm, db, config)
    else:
        await over_http(abm, db, config)
    print("ok")


asyncio.run(main(*sys.argv[1:5]))
