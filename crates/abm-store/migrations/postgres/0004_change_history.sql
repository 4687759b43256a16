-- History that grows with change (issue 15). A snapshot row now holds from its run until the
-- account's next row: a run writes one only for an account whose assessment changed, so
-- "the assessment of account X at run N" is its row with the greatest run <= N.
-- account_state keeps the run and the content hash of the account's latest row (the hash is
-- what a run compares; a row converted here has none, so the first run after this migration
-- writes one row per account).
ALTER TABLE account_state ADD COLUMN snapshot_run BIGINT;
ALTER TABLE account_state ADD COLUMN snapshot_hash BYTEA;

CREATE INDEX snapshots_account ON snapshots (account, run);

-- Existing rows equal to the same account's previous row say nothing new: drop them.
DELETE FROM snapshots WHERE (run, account) IN (
    SELECT run, account FROM (
        SELECT run, account,
            candidate IS NOT DISTINCT FROM LAG(candidate) OVER w AND cluster IS NOT DISTINCT FROM LAG(cluster) OVER w
            AND previous IS NOT DISTINCT FROM LAG(previous) OVER w AND movement IS NOT DISTINCT FROM LAG(movement) OVER w
            AND rule IS NOT DISTINCT FROM LAG(rule) OVER w AND evidence IS NOT DISTINCT FROM LAG(evidence) OVER w
            AND tier IS NOT DISTINCT FROM LAG(tier) OVER w AND score IS NOT DISTINCT FROM LAG(score) OVER w
            AND engagement IS NOT DISTINCT FROM LAG(engagement) OVER w AND has_triggers IS NOT DISTINCT FROM LAG(has_triggers) OVER w
            AND promotion_triggers IS NOT DISTINCT FROM LAG(promotion_triggers) OVER w
            AND program IS NOT DISTINCT FROM LAG(program) OVER w AND micro_segment IS NOT DISTINCT FROM LAG(micro_segment) OVER w
            AND next_action IS NOT DISTINCT FROM LAG(next_action) OVER w AND checkpoint IS NOT DISTINCT FROM LAG(checkpoint) OVER w
            AND rationale IS NOT DISTINCT FROM LAG(rationale) OVER w AS same
        FROM snapshots
        WINDOW w AS (PARTITION BY account ORDER BY run)
    ) x WHERE same
);

UPDATE account_state SET snapshot_run =
    (SELECT MAX(s.run) FROM snapshots s WHERE s.account = account_state.account);
