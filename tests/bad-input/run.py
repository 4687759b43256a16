#!/usr/bin/env python3
"""Bad-input harness (issue 11): generates many broken input sets and runs the real `abm`
binary on each with `segment`, `import` into SQLite and, when ABM_TEST_PG_URL is set (and
`psql` is on the PATH), `import` into PostgreSQL (one fresh schema per case).

For every case and every leg it checks:
  - no panic (exit status 101 or "panicked" on stderr);
  - the exit status: 0 when bad rows are rejected, 2 for a file-level error (whose message
    names the file);
  - every record is accounted for: records read per file equal the records the case wrote,
    rejected <= read, and accepted + rejected = read where the binary reports accepted rows
    (segment: accounts; import on a fresh database: accounts and deals);
  - the rejected rows the case expects, per file;
  - every row of rejected_rows.csv has a file of the case, a physical line within the file,
    a column and a reason;
  - segment, SQLite and PostgreSQL reject the same number of rows per file, where a row that
    `import` keeps waiting for an account not imported yet (issue 14) counts as one `segment`
    rejects as an unknown account; an import needs no accounts file.

Python 3 standard library only. Usage:
  python3 tests/bad-input/run.py [--abm target/debug/abm] [--filter SUBSTRING] [--keep DIR]
The binary also comes from $ABM_BIN. Exits 1 when any check fails.
"""

import argparse
import concurrent.futures
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

csv.field_size_limit(1 << 30)

KINDS = ["accounts", "engagement", "triggers", "deals"]
HEADERS = {
    "accounts": ["account_id", "name", "domain", "industry", "employees", "annual_revenue",
                 "country", "founded_year"],
    "engagement": ["account_id", "occurred_at", "type", "contact_id", "event_id", "detail"],
    "triggers": ["account_id", "occurred_at", "type", "source", "headline", "strength"],
    "deals": ["deal_id", "account_id", "stage", "amount", "created_at", "closed_at", "outcome"],
}
GOOD = {
    "accounts": [
        ["A1", "Acme", "acme.example", "software", "250", "1000000", "US", "1999"],
        ["A2", "Beta", "beta.example", "retail", "40", "", "DE", ""],
        ["A3", "Gamma, Inc.", "gamma.example", "software", "", "2500000.5", "", "2010"],
    ],
    "engagement": [
        ["A1", "2026-10-20T10:00:00Z", "demo", "c1", "e1", "first call"],
        ["A2", "2026-10-21", "email_open", "c2", "e2", ""],
        ["A3", "2026-09-01T00:00:00", "website_visit", "c3", "e3", ""],
        ["A1", "2026-10-22T08:30:00+02:00", "meeting", "c4", "e4", ""],
    ],
    "triggers": [
        ["A1", "2026-10-01", "funding_round", "news", "Raised a round", "0.9"],
        ["A2", "2026-09-15T00:00:00Z", "hiring_surge", "news", "Hiring", ""],
    ],
    "deals": [
        ["D1", "A1", "proposal", "5000", "2026-09-01", "", "open"],
        ["D2", "A2", "closed", "100", "2026-01-01", "2026-03-01", "won"],
    ],
}
AS_OF = "2026-11-01"


# ------------------------------------------------------------------------------------------
# Rendering

def csv_field(v):
    if any(c in v for c in ',"\n\r') or v != v.strip():
        return '"' + v.replace('"', '""') + '"'
    return v


def csv_bytes(header, rows, eol="\n", bom=False, final_eol=True):
    """rows: lists of str (rendered with quoting as needed) or raw bytes lines."""
    lines = []
    for r in [header] + rows:
        if isinstance(r, bytes):
            lines.append(r)
        else:
            lines.append(",".join(csv_field(v) for v in r).encode())
    out = eol.encode().join(lines) + (eol.encode() if final_eol else b"")
    return (b"\xef\xbb\xbf" if bom else b"") + out


def jsonl_bytes(header, rows, eol="\n"):
    """rows: lists of str (one key per header column; None omits the key) or raw bytes."""
    lines = []
    for r in rows:
        if isinstance(r, bytes):
            lines.append(r)
        else:
            obj = {k: v for k, v in zip(header, r) if v is not None}
            lines.append(json.dumps(obj, ensure_ascii=False).encode())
    return eol.encode().join(lines) + eol.encode()


class Case:
    def __init__(self, name, files, exit=0, read=None, rejected=None, error=None,
                 import_exit=None):
        self.name = name
        self.files = files  # file name -> bytes
        self.exit = exit
        # `import` takes any subset of the files: its exit status where it differs.
        self.import_exit = exit if import_exit is None else import_exit
        self.read = read or {}  # kind -> records the file holds
        self.rejected = rejected or {}  # kind -> rows that must be rejected
        self.error = error  # substring of stderr for exit 2


def dataset(fmt="csv", **override):
    """The good data set in `fmt`, with per-kind overrides: bytes (the file's content), a
    tuple (ext, bytes) for another extension, or None (no such file)."""
    files, read, rejected = {}, {}, {}
    for kind in KINDS:
        o = override.get(kind, "good")
        if o is None:
            continue
        if o == "good":
            ext = fmt
            data = (csv_bytes(HEADERS[kind], GOOD[kind]) if fmt == "csv"
                    else jsonl_bytes(HEADERS[kind], GOOD[kind]))
            read[kind] = len(GOOD[kind])
            rejected[kind] = 0
        elif isinstance(o, tuple):
            ext, data = o
        else:
            ext, data = fmt, o
        files[f"{kind}.{ext}"] = data
    return files, read, rejected


def rows_case(name, kind, fmt, extra, n_bad, fresh_ids=True, **kw):
    """The good rows of `kind` plus `extra` rows (lists or raw bytes lines), `n_bad` of them
    rejected; every other file good. With `fresh_ids`, extra accounts and deals that reuse
    the first good row's id get one of their own (so only the intended fault rejects them)."""
    header = HEADERS[kind]
    if fresh_ids and kind in ("accounts", "deals"):
        extra = [[f"X{i}"] + r[1:] if isinstance(r, list) and r[0] == GOOD[kind][0][0] else r
                 for i, r in enumerate(extra)]
    rows = GOOD[kind] + extra
    data = (csv_bytes(header, rows, **kw) if fmt == "csv" else jsonl_bytes(header, rows, **kw))
    files, read, rejected = dataset(fmt, **{kind: data})
    read[kind] = len(rows)
    rejected[kind] = n_bad
    return Case(name, files, 0, read, rejected)


def row(kind, **values):
    """A good row of `kind` (the first one) with some values changed."""
    r = list(GOOD[kind][0])
    for k, v in values.items():
        r[HEADERS[kind].index(k)] = v
    return r


def cases():
    out = []
    add = out.append
    add(Case("baseline csv", *dataset("csv")[:1], read=dataset("csv")[1],
             rejected=dataset("csv")[2]))
    add(Case("baseline jsonl", *dataset("jsonl")[:1], read=dataset("jsonl")[1],
             rejected=dataset("jsonl")[2]))

    for kind in KINDS:
        h, good, n = HEADERS[kind], GOOD[kind], len(GOOD[kind])
        # Line endings and BOM: every record read, none rejected.
        for label, kw in [("CRLF", dict(eol="\r\n")), ("CR", dict(eol="\r")),
                          ("LF, no final newline", dict(final_eol=False)),
                          ("BOM", dict(bom=True)), ("BOM + CRLF", dict(bom=True, eol="\r\n")),
                          ("CR, no final newline", dict(eol="\r", final_eol=False))]:
            files, read, rej = dataset("csv", **{kind: csv_bytes(h, good, **kw)})
            read[kind], rej[kind] = n, 0
            add(Case(f"{kind} csv {label}", files, 0, read, rej))
        for label, eol in [("CR", "\r"), ("CRLF", "\r\n")]:
            files, read, rej = dataset("jsonl", **{kind: jsonl_bytes(h, good, eol=eol)})
            read[kind], rej[kind] = n, 0
            add(Case(f"{kind} jsonl {label}", files, 0, read, rej))
        # LF header, CR rows: one long record with the wrong field count, rejected.
        mixed = ",".join(h).encode() + b"\n" + b"\r".join(
            ",".join(r).encode() for r in good) + b"\r"
        files, read, rej = dataset("csv", **{kind: mixed})
        read[kind], rej[kind] = 1, 1
        if kind == "accounts":
            rej = {"accounts": 1}  # the others' rows name accounts that were not read
        add(Case(f"{kind} csv LF header, CR rows", files, 0, read, rej))

        # Blank lines and padding: accepted.
        body = csv_bytes(h, good).replace(b"\n", b"\n\n")
        files, read, rej = dataset("csv", **{kind: b"\n" + body + b"\n\r\n"})
        read[kind], rej[kind] = n, 0
        add(Case(f"{kind} csv blank lines", files, 0, read, rej))
        # A line of spaces is a record (one field), rejected for its field count.
        add(rows_case(f"{kind} csv line of spaces", kind, "csv", [b"   "], 1))

        # Unterminated quote: the rest of the file is one rejected record.
        last = list(good[0])
        last[1] = '"never closed'
        tail = [",".join(last).encode(), ",".join(good[0]).encode(), b"x,y"]
        data = csv_bytes(h, good + tail)
        files, read, rej = dataset("csv", **{kind: data})
        read[kind], rej[kind] = n + 1, 1
        # A second account row would reach other files' rows: only add to the end.
        add(Case(f"{kind} csv unterminated quote", files, 0, read, rej))

        # Wrong field counts.
        short = b",".join(v.encode() for v in good[0][:2])
        long_ = b",".join(v.encode() for v in good[0]) + b",extra,more"
        add(rows_case(f"{kind} csv wrong field counts", kind, "csv", [short, long_], 2))

        # NUL bytes, raw in CSV and escaped in JSON, in the last column (read by import
        # only for some kinds: the rule is the same for every leg).
        bad = b",".join(v.encode() for v in good[0][:-1]) + b",x\x00y"
        add(rows_case(f"{kind} csv NUL in a field", kind, "csv", [bad], 1))
        bad = row(kind, **{h[1]: "a\x00b"})
        add(rows_case(f"{kind} jsonl \\u0000 in a value", kind, "jsonl", [bad], 1))

        # Invalid UTF-8 in the id column.
        bad = b"\xff\xfe" + b"," + b",".join(v.encode() for v in good[0][1:])
        add(rows_case(f"{kind} csv invalid UTF-8", kind, "csv", [bad], 1))
        add(rows_case(f"{kind} jsonl invalid UTF-8", kind, "jsonl",
                      [b'{"' + h[0].encode() + b'":"\xff\xfe"}'], 1))

        # JSON Lines that are not objects, or not JSON; repeated keys; values of the wrong kind.
        add(rows_case(f"{kind} jsonl bad JSON", kind, "jsonl",
                      [b'{"' + h[0].encode() + b'": ', b"[1,2]", b"not json", b'"str"',
                       b'{"a":1} trailing'], 5))
        dup = json.dumps(dict(zip(h, good[0])))[:-1] + ', "' + h[1] + '": "again"}'
        add(rows_case(f"{kind} jsonl duplicate key", kind, "jsonl", [dup.encode()], 1))
        obj = json.dumps(dict(zip(h, good[0])))[:-1] + ', "' + h[1] + '": {"nested": [1]}}'
        add(rows_case(f"{kind} jsonl object value", kind, "jsonl", [obj.encode()], 1))

        # Empty, whitespace-only and header-only files; a missing required column.
        files, read, rej = dataset("csv", **{kind: b""})
        add(Case(f"{kind} csv empty file", files, 2, error=f"{kind}.csv"))
        files, read, rej = dataset("csv", **{kind: b"  \n\n"})
        add(Case(f"{kind} csv blank file", files, 2, error=f"{kind}.csv"))
        files, read, rej = dataset("jsonl", **{kind: b""})
        add(Case(f"{kind} jsonl empty file", files, 2, error=f"{kind}.jsonl"))
        files, read, rej = dataset("csv", **{kind: csv_bytes(h, [])})
        read[kind], rej[kind] = 0, 0
        if kind == "accounts":
            # No accounts: every other file's rows name unknown accounts.
            for k in KINDS[1:]:
                rej[k] = read[k]
        add(Case(f"{kind} csv header only", files, 0, read, rej))
        files, read, rej = dataset("csv", **{kind: csv_bytes(h[1:], [r[1:] for r in good])})
        add(Case(f"{kind} csv missing required column", files, 2, error=f"{kind}.csv"))
        # UTF-16: binary to us.
        files, read, rej = dataset("csv", **{kind: csv_bytes(h, good).decode().encode("utf-16")})
        add(Case(f"{kind} csv UTF-16", files, 2, error=f"{kind}.csv"))

        # Hostile but valid strings: accepted as they are.
        hostile = ['=cmd|"/c calc"!A1', "<script>alert(1)</script>", "+1-2", "@SUM(A1)",
                   "multi\nline, \"quoted\"", "\u202eevil\u202c", "😀" * 50, "NULL", "\\N",
                   " padded ", "tab\there"]
        col = h.index({"accounts": "name", "engagement": "detail", "triggers": "headline",
                       "deals": "stage"}[kind])
        extra = []
        for s in hostile:
            r = list(good[0])
            r[col] = s
            if kind == "accounts":
                r[0] = f"H{len(extra)}"
            if kind == "deals":
                r[0] = f"DH{len(extra)}"
            extra.append(r)
        add(rows_case(f"{kind} csv hostile strings", kind, "csv", extra, 0))
        add(rows_case(f"{kind} jsonl hostile strings", kind, "jsonl", extra, 0))
        # A huge field (2 MiB), quoted, in the free-text column.
        r = list(good[0])
        r[col] = "x, " * (700 << 10)
        if kind == "accounts":
            r[0] = "HUGE"
        if kind == "deals":
            r[0] = "DHUGE"
        add(rows_case(f"{kind} csv huge field", kind, "csv", [r], 0))

    # Out-of-range numbers and bad values.
    acc = lambda **v: row("accounts", **v)
    add(rows_case("accounts out-of-range numbers", "accounts", "csv", [
        acc(account_id="R1", employees="-5"), acc(account_id="R2", employees="12.5"),
        acc(account_id="R3", employees="1" + "0" * 26), acc(account_id="R4", annual_revenue="-1000"),
        acc(account_id="R5", founded_year="0"), acc(account_id="R6", founded_year="99999"),
        acc(account_id="R7", employees="abc"), acc(account_id="R8", annual_revenue="inf"),
        acc(account_id="R9", annual_revenue="NaN"), acc(account_id="R10", founded_year="19.5"),
        acc(account_id="R11", employees="100000001"),
    ], 11))
    add(rows_case("accounts in-range edges", "accounts", "csv", [
        acc(account_id="E1", employees="0", founded_year="1600"),
        acc(account_id="E2", employees="100000000", founded_year="2100", annual_revenue="0"),
        acc(account_id="E3", employees="1e3", annual_revenue="1.5e9"),
    ], 0))
    add(rows_case("accounts jsonl out-of-range numbers", "accounts", "jsonl", [
        b'{"account_id":"R1","employees":-5}', b'{"account_id":"R2","employees":12.5}',
        b'{"account_id":"R3","employees":1e26}', b'{"account_id":"R4","annual_revenue":-1000}',
        b'{"account_id":"R5","founded_year":0}', b'{"account_id":"R6","founded_year":99999}',
        b'{"account_id":"R7","employees":true}', b'{"account_id":"R8","employees":"many"}',
    ], 8))
    add(rows_case("accounts missing id", "accounts", "csv", [acc(account_id=""), acc(account_id="  ")], 2))
    add(rows_case("accounts duplicate id", "accounts", "csv", [acc(), acc(account_id="A2")], 2,
                  fresh_ids=False))
    ev = lambda **v: row("engagement", **v)
    add(rows_case("engagement bad dates", "engagement", "csv", [
        ev(occurred_at="2026-13-45"), ev(occurred_at="yesterday"), ev(occurred_at=""),
        ev(occurred_at="2026-02-30"), ev(occurred_at="2026-10-20T25:00:00"),
        ev(occurred_at="20261020"),
    ], 6))
    add(rows_case("engagement unknown account and type", "engagement", "csv", [
        ev(account_id="ZZZ"), ev(type="dance"), ev(account_id=""),
    ], 3))
    add(rows_case("engagement jsonl wrong types", "engagement", "jsonl", [
        b'{"account_id":"A1","occurred_at":12345,"type":"demo"}',
        b'{"account_id":1,"occurred_at":"2026-10-20","type":"demo"}',
    ], 2))
    tr = lambda **v: row("triggers", **v)
    add(rows_case("triggers bad values", "triggers", "csv", [
        tr(occurred_at="2026-02-30"), tr(type="alien_landing"), tr(account_id="ZZZ"),
        tr(strength="strong"),
    ], 4))
    dl = lambda **v: row("deals", **v)
    add(rows_case("deals bad values", "deals", "csv", [
        dl(deal_id="N1", amount="-10"), dl(deal_id="N2", amount="ten"),
        dl(deal_id="N3", created_at="nope"), dl(deal_id="N4", outcome="maybe"),
        dl(deal_id="N5", account_id="ZZZ"), dl(deal_id=""), dl(deal_id="N6", closed_at="2026-99-01"),
    ], 7))
    add(rows_case("deals duplicate deal_id", "deals", "csv", [dl(), dl(deal_id="D2", stage="x")], 2,
                  fresh_ids=False))
    add(rows_case("deals jsonl duplicate deal_id", "deals", "jsonl", [dl()], 1, fresh_ids=False))

    # Whole files missing.
    files, read, rej = dataset("csv", accounts=None)
    add(Case("accounts file missing", files, 2, error="accounts", import_exit=0))
    files, read, rej = dataset("csv", engagement=None, triggers=None, deals=None)
    add(Case("accounts only", files, 0, read, rej))
    return out


# ------------------------------------------------------------------------------------------
# Running

class Failure(Exception):
    pass


def physical_lines(data):
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # Bare CRs count as line ends (the binary reads such files as LF lines).
    first = min([i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0], default=-1)
    if first >= 0 and data[first:first + 1] == b"\r" and data[first + 1:first + 2] != b"\n":
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def kind_of(path):
    base = os.path.basename(path)
    for k in KINDS:
        if base.startswith(k + "."):
            return k
    return None


def read_rejected(path, case, d):
    """Rejected rows per kind, after checking each row's file, line, column and reason."""
    per = {k: 0 for k in KINDS}
    if not os.path.exists(path):
        return per
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if "\x00" in text:
        raise Failure(f"{path} holds a NUL byte")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return per
    if rows[0][:4] != ["file", "line", "column", "reason"]:
        raise Failure(f"{path}: unexpected header {rows[0]}")
    for r in rows[1:]:
        if len(r) < 5:
            raise Failure(f"{path}: short row {r}")
        file, line, column, reason = r[:4]
        kind = kind_of(file)
        name = os.path.basename(file)
        if kind is None or name not in case.files:
            raise Failure(f"rejected row names an unknown file {file!r}")
        if not line.isdigit() or not 1 <= int(line) <= max(1, physical_lines(case.files[name])):
            raise Failure(f"rejected row {r[:4]}: line is not a physical line of {name}")
        if not column.strip() or not reason.strip():
            raise Failure(f"rejected row {r[:4]}: no column or reason")
        per[kind] += 1
    return per


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check_exit(case, leg, rc, out, err):
    if rc == 101 or "panicked" in err:
        raise Failure(f"{leg}: panic (exit {rc}): {err.strip()[-300:]}")
    want = case.exit if leg == "segment" else case.import_exit
    if rc != want:
        raise Failure(f"{leg}: exit {rc}, expected {want}: {(err or out).strip()[-300:]}")
    if rc != 0:
        if case.error and case.error not in err:
            raise Failure(f"{leg}: the error does not name {case.error!r}: {err.strip()[-300:]}")
        return False
    return True


def check_counts(case, leg, read, rejected, accepted):
    """read/rejected/accepted: kind -> count (accepted only where the leg reports it)."""
    for kind in KINDS:
        r, j = read.get(kind), rejected.get(kind, 0)
        if r is None:
            if j:
                raise Failure(f"{leg}: {j} {kind} rows rejected but no {kind} read")
            continue
        if kind in case.read and r != case.read[kind]:
            raise Failure(f"{leg}: {kind}: {r} records read, the file holds {case.read[kind]}")
        if j > r:
            raise Failure(f"{leg}: {kind}: {j} rejected > {r} read")
        if kind in case.rejected and j != case.rejected[kind]:
            raise Failure(f"{leg}: {kind}: {j} rows rejected, expected {case.rejected[kind]}")
        if kind in accepted and accepted[kind] + j != r:
            raise Failure(f"{leg}: {kind}: accepted {accepted[kind]} + rejected {j} != read {r}")


def segment_leg(abm, case, d):
    out = os.path.join(d, "out")
    rc, so, se = run([abm, "--quiet", "segment", "data", "--as-of", AS_OF, "--out", out], d)
    if not check_exit(case, "segment", rc, so, se):
        return None
    with open(os.path.join(out, "cluster_summary.json"), encoding="utf-8") as f:
        s = json.load(f)
    rejected = read_rejected(os.path.join(out, "rejected_rows.csv"), case, d)
    if s.get("rejected_rows") != sum(rejected.values()):
        raise Failure(f"segment: summary says {s.get('rejected_rows')} rejected, "
                      f"rejected_rows.csv holds {sum(rejected.values())}")
    read = s.get("rows_read", {})
    check_counts(case, "segment", read, rejected, {"accounts": s.get("accounts")})
    return rejected


def import_leg(abm, case, d, db, leg):
    rej = os.path.join(d, f"rejected-{leg}.csv")
    rc, so, se = run([abm, "--quiet", "import", "data", "--database", db, "--rejected", rej,
                      "--json"], d)
    if not check_exit(case, leg, rc, so, se):
        return None
    try:
        rep = json.loads(so)
    except ValueError:
        raise Failure(f"{leg}: --json printed no JSON: {so[:200]!r}")
    rejected = read_rejected(rej, case, d)
    if rep.get("rejected") != sum(rejected.values()):
        raise Failure(f"{leg}: report says {rep.get('rejected')} rejected, the file holds "
                      f"{sum(rejected.values())}")
    names = {k: os.path.basename(p) for k, p in [(kind_of(n), n) for n in case.files]}
    read = {k: rep.get(f"{'events' if k == 'engagement' else k}_read", 0)
            for k in KINDS if k in names}
    # Rows kept waiting for their account are what `segment` rejects as unknown accounts.
    for k in ("engagement", "triggers", "deals"):
        rejected[k] = rejected.get(k, 0) + rep.get(
            f"{'events' if k == 'engagement' else k}_waiting", 0)
    # On a fresh database every accepted account and deal is new (repeats are rejected).
    accepted = {"accounts": rep.get("accounts_changed")}
    if "deals" in names:
        accepted["deals"] = rep.get("deals_changed")
    check_counts(case, leg, read, rejected, accepted)
    return rejected


def psql(url, sql):
    p = subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"psql: {p.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--abm", default=os.environ.get("ABM_BIN", "target/debug/abm"))
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--keep", help="keep every case's directory under this one")
    ap.add_argument("--jobs", type=int, default=4, help="cases run at once (default 4)")
    args = ap.parse_args()
    abm = os.path.abspath(args.abm)
    if not os.access(abm, os.X_OK):
        print(f"no abm binary at {abm} (build it with `cargo build -p abm-cli`, or pass --abm)")
        return 2

    pg = os.environ.get("ABM_TEST_PG_URL")
    if pg and not shutil.which("psql"):
        print("PostgreSQL leg SKIPPED: ABM_TEST_PG_URL is set but psql is not on the PATH")
        pg = None
    elif not pg:
        print("PostgreSQL leg SKIPPED: ABM_TEST_PG_URL is not set")

    all_cases = [c for c in cases() if args.filter in c.name]
    root = args.keep or tempfile.mkdtemp(prefix="abm-bad-input-")
    os.makedirs(root, exist_ok=True)
    schemas = [f"abm_bad_{os.getpid()}_{i}" for i in range(len(all_cases))]
    if pg:
        psql(pg, "; ".join(f"DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}"
                           for s in schemas))
    legs = ["segment", "sqlite"] + (["postgres"] if pg else [])

    def one(i):
        case = all_cases[i]
        d = os.path.join(root, f"{i:03d}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "data"))
        for name, data in case.files.items():
            with open(os.path.join(d, "data", name), "wb") as f:
                f.write(data)
        problems, results = [], {}
        runs = [("segment", lambda: segment_leg(abm, case, d)),
                ("sqlite", lambda: import_leg(abm, case, d, os.path.join(d, "abm.db"), "sqlite"))]
        if pg:
            sep = "&" if "?" in pg else "?"
            url = f"{pg}{sep}options=-csearch_path%3D{schemas[i]}"
            runs.append(("postgres", lambda: import_leg(abm, case, d, url, "postgres")))
        for leg, f in runs:
            try:
                results[leg] = f()
            except Failure as e:
                problems.append(str(e))
            except Exception as e:  # a harness error is a failure too, with its case
                problems.append(f"{leg}: harness error {type(e).__name__}: {e}")
        got = {k: v for k, v in results.items() if v is not None}
        if len(got) > 1 and len({tuple(sorted(v.items())) for v in got.values()}) > 1:
            problems.append("legs reject different rows: " + "; ".join(
                f"{leg} {dict((k, n) for k, n in v.items() if n)}" for leg, v in got.items()))
        return problems

    failures = []
    started = time.time()
    print(f"{len(all_cases)} cases, legs: {', '.join(legs)}; binary {abm}\n")
    print(f"{'case':<48} {'exit':>4} {'read':>16} {'rejected':>16}  result")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for case, problems in zip(all_cases, pool.map(one, range(len(all_cases)))):
                read = ",".join(str(case.read.get(k, "-")) for k in KINDS)
                rej = ",".join(str(case.rejected.get(k, "-")) for k in KINDS)
                status = "ok" if not problems else "FAIL"
                print(f"{case.name[:48]:<48} {case.exit:>4} {read:>16} {rej:>16}  {status}",
                      flush=True)
                for p in problems:
                    print(f"      {p}")
                    failures.append((case.name, p))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        if pg:
            for k in range(0, len(schemas), 16):  # a few at a time: each drop takes many locks
                psql(pg, "; ".join(f"DROP SCHEMA IF EXISTS {s} CASCADE" for s in schemas[k:k + 16]))
    took = time.time() - started
    print(f"\n{len(all_cases)} cases x {len(legs)} legs in {took:.1f} s: "
          f"{len(all_cases) - len({n for n, _ in failures})} passed, "
          f"{len({n for n, _ in failures})} failed"
          + ("" if pg else " (PostgreSQL leg skipped)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
