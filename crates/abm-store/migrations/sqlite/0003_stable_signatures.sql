-- abm-store schema, version 3 (SQLite). Never edit a migration once it is released: add a new one.
--
-- Stable signatures: a proposal's and a conflict's `checkpoints.signature` is built from codes, ids
-- and instants, never from wording (abm_core::movement::signature, abm_core::Conflict::code). The
-- stored ones are rebuilt from each checkpoint's rule and evidence by the migration runner right
-- after this file, in the same transaction (migrate::stable_signatures).
--
-- The current state between runs: a review decision shows at once in export, summary and history,
-- as of the run that proposed it, without touching the run's snapshot rows.
--   proposal_rows: for every account with a proposal pending after the latest run, the snapshot row
--                  that run gives it once the proposal is approved, and once it is rejected
--                  (computed by abm-core in the run; only the latest run's are kept);
--   current_rows:  the rows a decision made current (copied from proposal_rows), which replace the
--                  latest run's snapshot rows of those accounts until the next run.
-- The next run computes the same rows (same data, config and state), so it agrees with them.

CREATE TABLE proposal_rows (
    run                INTEGER NOT NULL,
    account            INTEGER NOT NULL,
    outcome            TEXT NOT NULL,      -- approved | rejected
    candidate          TEXT NOT NULL,
    cluster            TEXT NOT NULL,
    previous           TEXT,
    movement           TEXT NOT NULL,
    rule               INTEGER NOT NULL,   -- texts.id
    evidence           TEXT NOT NULL,
    tier               TEXT NOT NULL,
    score              REAL NOT NULL,
    engagement         TEXT NOT NULL,
    has_triggers       INTEGER NOT NULL,
    promotion_triggers TEXT NOT NULL,
    program            TEXT NOT NULL,
    micro_segment      INTEGER NOT NULL,   -- texts.id
    next_action        INTEGER NOT NULL,   -- texts.id
    checkpoint         TEXT NOT NULL,
    rationale          TEXT NOT NULL,
    PRIMARY KEY (run, account, outcome)
) WITHOUT ROWID;

CREATE TABLE current_rows (
    account            INTEGER PRIMARY KEY,
    run                INTEGER NOT NULL,    -- the run whose snapshot row it replaces
    decided            INTEGER NOT NULL,    -- checkpoints.id of the decision
    candidate          TEXT NOT NULL,
    cluster            TEXT NOT NULL,
    previous           TEXT,
    movement           TEXT NOT NULL,
    rule               INTEGER NOT NULL,   -- texts.id
    evidence           TEXT NOT NULL,
    tier               TEXT NOT NULL,
    score              REAL NOT NULL,
    engagement         TEXT NOT NULL,
    has_triggers       INTEGER NOT NULL,
    promotion_triggers TEXT NOT NULL,
    program            TEXT NOT NULL,
    micro_segment      INTEGER NOT NULL,   -- texts.id
    next_action        INTEGER NOT NULL,   -- texts.id
    checkpoint         TEXT NOT NULL,
    rationale          TEXT NOT NULL,
    UNIQUE (run, account)
);
