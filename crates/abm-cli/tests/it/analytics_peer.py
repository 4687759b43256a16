"""An independent computation of `abm analyze`'s ROW figures in DuckDB SQL.

Usage: analytics_peer.py ACCOUNTS DEALS ASSIGNMENTS FROM TO MAP_JSON SEGMENT_SQL OUT_JSON [ENGAGEMENT]

- ACCOUNTS, DEALS: the input files (CSV); MAP_JSON maps canonical deal columns to the file's
  headers ({"deal_id": "opportunity_id", ...}; canonical names where absent) and names the
  accounts' id column ({"accounts.account_id": "account"}).
- ASSIGNMENTS: `abm segment`'s cluster_assignments.csv as of the same instant (cluster, tier).
- FROM, TO: the period's days (both included).
- SEGMENT_SQL: a condition over the accounts' columns (alias a) defining the segment `seg`.

- ENGAGEMENT (optional): the engagement file (canonical columns), for the buying pattern.

Writes {"all": ROW, "by_cluster": {key: ROW}, "by_tier": {key: ROW}, "seg": ROW}, ROW as in
analytics.json, computed from the definitions of issue 16 alone; "seg_members" (the accounts
in `seg`); with ENGAGEMENT, "buying": {"all"|"seg": [wins, median contacts, median meetings]}:
per won deal of the period, the distinct contacts and the `meeting` events of its account from
90 days before the deal's creation to its close; "stages": {"all"|"seg"|"cluster:NAME": null |
{stage: [won deals, median days]}}: per won deal of the period with a `stage_history`, the whole
days (rounded down) from each open stage's entry to the next entry (the last one to the close),
up to its first winning entry (entries in time order, then as written), added up per stage; null when no won deal of the group has one.
"""
import json
import sys

import duckdb

accounts, deals, assign, d1, d2, mapping, seg_sql, out = sys.argv[1:9]
engagement = sys.argv[9] if len(sys.argv) > 9 else ""
m = json.loads(mapping)


def col(name):
    return '"' + m.get(name, name).replace('"', '""') + '"'


acc_id = '"' + m.get("accounts.account_id", "account_id") + '"'
con = duckdb.connect()
con.execute(f"CREATE TABLE a AS SELECT * FROM read_csv('{accounts}', all_varchar=true, header=true)")
con.execute(f"CREATE TABLE asg AS SELECT * FROM read_csv('{assign}', all_varchar=true, header=true)")
con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{deals}', all_varchar=true, header=true)")
cols = [r[0] for r in con.execute("DESCRIBE raw").fetchall()]
outcome_col = m.get("outcome", "outcome")
outcome = (
    f"lower(trim(\"{outcome_col}\"))"
    if outcome_col in cols
    else f"CASE WHEN lower(trim({col('stage')})) IN ('won', 'closedwon', 'closed won') THEN 'won' "
    f"WHEN lower(trim({col('stage')})) IN ('lost', 'closedlost', 'closed lost') THEN 'lost' ELSE 'open' END"
)
# Deals the engine accepts: a deal id, a known account, a creation date.
con.execute(
    f"""
    CREATE TABLE d AS
    SELECT trim(r.{col('account_id')}) AS account_id,
           {outcome} AS outcome,
           TRY_CAST(NULLIF(trim(r.{col('amount')}), '') AS DOUBLE) AS amount,
           CAST(NULLIF(trim(r.{col('created_at')}), '') AS TIMESTAMP) AS created_at,
           CAST(NULLIF(trim(r.{col('closed_at')}), '') AS TIMESTAMP) AS closed_at,
           {"NULLIF(trim(r." + col('product') + "), '')" if m.get('product', 'product') in cols else 'NULL'} AS product,
           {"NULLIF(trim(r." + col('stage_history') + "), '')" if m.get('stage_history', 'stage_history') in cols else 'NULL'} AS history
    FROM raw r
    WHERE NULLIF(trim(r.{col('deal_id')}), '') IS NOT NULL
      AND NULLIF(trim(r.{col('created_at')}), '') IS NOT NULL
      AND trim(r.{col('account_id')}) IN (SELECT trim({acc_id}) FROM a)
    """
)
lo = f"TIMESTAMP '{d1} 00:00:00'"
hi = f"(TIMESTAMP '{d2} 00:00:00' + INTERVAL 1 DAY)"  # exclusive
con.execute(
    f"""
    CREATE TABLE per_account AS
    SELECT trim(x.{acc_id}) AS account_id, s.cluster, s.tier, ({seg_sql.replace('a.', 'x.')}) AS in_seg
    FROM a x JOIN asg s ON s.account_id = trim(x.{acc_id})
    """
)
con.execute(
    f"""
    CREATE TABLE facts AS
    SELECT d.*,
      (outcome = 'won' AND closed_at >= {lo} AND closed_at < {hi}) AS won_in,
      (outcome = 'lost' AND closed_at >= {lo} AND closed_at < {hi}) AS lost_in,
      (created_at < {hi} AND (outcome = 'open' OR closed_at >= {hi})) AS open_at_end,
      (outcome = 'won' AND closed_at < {hi}) AS won_by_end
    FROM d
    """
)
Z = 1.959963984540054


def rows(group_sql):
    q = f"""
    WITH g AS (SELECT account_id, {group_sql} AS key FROM per_account),
    acc AS (
      SELECT g.key, count(*) AS accounts,
             count(*) FILTER (WHERE EXISTS (SELECT 1 FROM facts f WHERE f.account_id = g.account_id AND f.won_by_end)) AS customers
      FROM g GROUP BY g.key
    ),
    dl AS (
      SELECT g.key,
        count(*) FILTER (WHERE won_in) AS won,
        count(*) FILTER (WHERE lost_in) AS lost,
        count(*) FILTER (WHERE open_at_end) AS open,
        sum(amount) FILTER (WHERE won_in) AS rev,
        count(amount) FILTER (WHERE won_in) AS rev_n,
        median(floor((epoch_us(closed_at) - epoch_us(created_at)) / 86400000000.0)) FILTER (WHERE won_in) AS cycle,
        sum(amount) FILTER (WHERE open_at_end) AS pipe,
        count(amount) FILTER (WHERE open_at_end) AS pipe_n
      FROM g JOIN facts f ON f.account_id = g.account_id GROUP BY g.key
    )
    SELECT acc.key, acc.accounts, acc.customers,
           coalesce(won, 0), coalesce(lost, 0), coalesce(open, 0),
           rev, coalesce(rev_n, 0), cycle, pipe, coalesce(pipe_n, 0)
    FROM acc LEFT JOIN dl ON dl.key IS NOT DISTINCT FROM acc.key
    """
    out = {}
    for key, accounts, customers, won, lost, open_, rev, rev_n, cycle, pipe, pipe_n in con.execute(q).fetchall():
        n = won + lost
        if n:
            p = won / n
            den = 1 + Z * Z / n
            c = (p + Z * Z / (2 * n)) / den
            h = Z * ((p * (1 - p) / n + Z * Z / (4 * n * n)) ** 0.5) / den
            ci = [0.0 if won == 0 else max(0.0, c - h), 1.0 if won == n else min(1.0, c + h)]
        out[str(key)] = {
            "accounts": accounts,
            "customers": customers,
            "won": won,
            "lost": lost,
            "open": open_,
            "win_rate": won / n if n else None,
            "win_rate_ci": ci if n else None,
            "won_revenue": (rev or 0.0) if (won == 0 or rev_n > 0) else None,
            "avg_won_deal": rev / rev_n if rev_n else None,
            "median_cycle_days": float(cycle) if cycle is not None else None,
            "open_pipeline": (pipe or 0.0) if (open_ == 0 or pipe_n > 0) else None,
        }
    return out


result = {
    "all": rows("'all'")["all"],
    "by_cluster": rows("cluster"),
    "by_tier": rows("tier"),
    "seg": rows("in_seg").get("True"),
}
total = result["all"]["won_revenue"]
for part in [result["by_cluster"], result["by_tier"], {"all": result["all"]}, {"seg": result["seg"]}]:
    for r in part.values():
        if r is not None:
            r["revenue_share"] = (
                r["won_revenue"] / total if (r["won_revenue"] is not None and total) else None
            )
# Cross-sell: customers holding each product (a won deal for it closed by the end), and pairs.
con.execute(
    """CREATE TABLE held AS SELECT DISTINCT f.account_id, f.product FROM facts f
       JOIN per_account p ON p.account_id = f.account_id
       WHERE f.won_by_end AND f.product IS NOT NULL"""
)
result["holders"] = dict(con.execute("SELECT product, count(*) FROM held GROUP BY product").fetchall())
result["pairs"] = {
    f"{a}|{b}": n
    for a, b, n in con.execute(
        "SELECT x.product, y.product, count(*) FROM held x JOIN held y "
        "ON x.account_id = y.account_id AND x.product < y.product GROUP BY 1, 2"
    ).fetchall()
}
# Typical stage durations before a win, from the won deals' stage histories.
con.execute(
    """CREATE TABLE hw AS
       SELECT row_number() OVER () AS w, f.closed_at, f.history, p.in_seg, p.cluster
       FROM facts f JOIN per_account p ON p.account_id = f.account_id
       WHERE f.won_in AND f.history IS NOT NULL"""
)
con.execute(
    """CREATE TABLE he AS
       SELECT w, closed_at, k, trim(regexp_extract(e, '^(.*)@[^@]*$', 1)) AS stage,
              CAST(trim(regexp_extract(e, '@([^@]*)$', 1)) AS TIMESTAMP) AS ts
       FROM (SELECT w, closed_at, unnest(string_split(history, ';')) AS e,
                    generate_subscripts(string_split(history, ';'), 1) AS k FROM hw)
       WHERE trim(e) <> ''"""
)
con.execute(
    """CREATE TABLE per_deal AS
       WITH o AS (
         SELECT *, lead(ts) OVER (PARTITION BY w ORDER BY ts, k) AS nxt,
                row_number() OVER (PARTITION BY w ORDER BY ts, k) AS pos,
                lower(stage) IN ('won', 'closedwon', 'closed won') AS is_won,
                lower(stage) IN ('lost', 'closedlost', 'closed lost') AS is_lost
         FROM he),
       f AS (SELECT *, min(pos) FILTER (WHERE is_won) OVER (PARTITION BY w) AS won_pos FROM o)
       SELECT w, stage,
              sum(floor((epoch_us(coalesce(nxt, closed_at)) - epoch_us(ts)) / 86400000000.0)) AS days
       FROM f WHERE NOT is_won AND NOT is_lost AND (won_pos IS NULL OR pos < won_pos)
       GROUP BY w, stage"""
)


def stages(key_sql, keys):
    out = {}
    for k in keys:
        cond = key_sql.format(k=k)
        n = con.execute(f"SELECT count(*) FROM hw WHERE {cond}").fetchone()[0]
        if n == 0:
            out[k] = None
            continue
        out[k] = {
            stage: [cnt, float(med)]
            for stage, cnt, med in con.execute(
                f"SELECT stage, count(*), median(days) FROM per_deal JOIN hw USING (w) "
                f"WHERE {cond} GROUP BY stage"
            ).fetchall()
        }
    return out


clusters = [r[0] for r in con.execute("SELECT DISTINCT cluster FROM per_account").fetchall()]
result["stages"] = {
    **stages("true", ["all"]),
    **stages("in_seg", ["seg"]),
    **{f"cluster:{k}": v for k, v in stages("cluster = '{k}'", clusters).items()},
}
result["seg_members"] = sorted(
    r[0] for r in con.execute("SELECT account_id FROM per_account WHERE in_seg").fetchall()
)
if engagement:
    con.execute(
        f"CREATE TABLE e AS SELECT trim(account_id) AS account_id, CAST(occurred_at AS TIMESTAMP) AS at, "
        f"trim(type) AS type, NULLIF(trim(contact_id), '') AS contact "
        f"FROM read_csv('{engagement}', all_varchar=true, header=true)"
    )
    con.execute(
        """CREATE TABLE wins AS
           SELECT row_number() OVER () AS w, f.account_id, f.created_at, f.closed_at, p.in_seg
           FROM facts f JOIN per_account p ON p.account_id = f.account_id WHERE f.won_in"""
    )
    q = """
      SELECT count(*), median(contacts), median(meetings) FROM (
        SELECT w.w,
          count(DISTINCT e.contact) AS contacts,
          count(e.at) FILTER (WHERE e.type = 'meeting') AS meetings
        FROM wins w LEFT JOIN e ON e.account_id = w.account_id
          AND e.at >= w.created_at - INTERVAL 90 DAY AND e.at <= w.closed_at
        WHERE {cond} GROUP BY w.w)"""
    result["buying"] = {
        k: [float(x) if x is not None else None for x in con.execute(q.format(cond=c)).fetchone()]
        for k, c in [("all", "true"), ("seg", "w.in_seg")]
    }
json.dump(result, open(out, "w"), indent=1)
