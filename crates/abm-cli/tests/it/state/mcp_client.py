"""Drive `abm mcp` with the official Python MCP client (another implementation than rmcp).

Usage: mcp_client.py ABM_BINARY DATABASE_URL. Prints "ok" when every check holds.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {"search_accounts", "explain_account", "cluster_summary", "list_checkpoints",
         "resolve_checkpoint", "ingest_events"}


def body(res):
    assert not res.is_error, res.content[0].text
    return json.loads(res.content[0].text)


async def main(abm, db):
    params = StdioServerParameters(command=abm, args=["mcp", "--db", db, "--reviewer", "agent-7"])
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            tools = (await s.list_tools()).tools
            names = {t.name for t in tools}
            assert TOOLS <= names, names
            for t in tools:
                assert t.description and t.input_schema.get("type") == "object", t

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
            c = pending[0]
            out = body(await s.call_tool("resolve_checkpoint",
                                         {"id": c["id"], "decision": "approve", "comment": "via MCP"}))
            assert out["checkpoint"]["status"] == "approved"
            assert out["checkpoint"]["reviewer"] == "agent-7"
            again = await s.call_tool("resolve_checkpoint", {"id": c["id"], "decision": "reject"})
            assert again.is_error
            approved = body(await s.call_tool("list_checkpoints", {"status": "approved"}))
            assert any(x["id"] == c["id"] for x in approved)

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
    print("ok")


asyncio.run(main(sys.argv[1], sys.argv[2]))
