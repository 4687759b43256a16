-- History that grows with change (issue 15). A snapshot row now holds from its run until the
-- account's next row: a run writes one only for an account whose assessment changed, so
-- "the assessment of account X at run N" is its row with the greatest run <= N.
-- account_state keeps the run and the content hash of the account's latest row (the hash is
-- what a run compares; a row converted here has none, so the first run after this migration
-- writes one row per account).
ALTER TABLE account_state ADD COLUMN snapshot_run INTEGER;
ALTER TABLE account_state ADD COLUMN snapshot_hash BLOB;

CREATE INDEX snapshots_account ON snapshots (account, run);

-- Existing rows equal to the same account's previous row say nothing new: drop them.
DELETE FROM snapshots WHERE (run, account) IN (
    SELECT run, account FROM (
        SELECT run, account,
            candidate IS LAG(candidate) OVER w AND cluster IS LAG(cluster) OVER w
            AND previous IS LAG(previous) OVER w AND movement IS LAG(movement) OVER w
            AND rule IS LAG(rule) OVER w AND evidence IS LAG(evidence) OVER w
            AND tier IS LAG(tier) OVER w AND score IS LAG(score) OVER w
            AND engagement IS LAG(engagement) OVER w AND has_triggers IS LAG(has_triggers) OVER w
            AND promotion_triggers IS LAG(promotion_triggers) OVER w
            AND program IS LAG(program) OVER w AND micro_segment IS LAG(micro_segment) OVER w
            AND next_action IS LAG(next_action) OVER w AND checkpoint IS LAG(checkpoint) OVER w
            AND rationale IS LAG(rationale) OVER w AS same
        FROM snapshots
        WINDOW w AS (PARTITION BY account ORDER BY run)
    ) x WHERE same
);

UPDATE account_state SET snapshot_run =
    (SELECT MAX(s.run) FROM snapshots s WHERE s.account = account_state.account);

-- The identities of events and triggers (and of the rows waiting for their account) are kept
-- unique by a named index instead of a UNIQUE column constraint, so a first load into an empty
-- table can drop it and build it once from sorted keys (issue 15).
CREATE TABLE events_new (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL,             -- hash of event_id, else of the content
    account     INTEGER NOT NULL,          -- accounts.id
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    event_id    TEXT,
    detail      TEXT,
    import_id   INTEGER NOT NULL
);
INSERT INTO events_new SELECT * FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE UNIQUE INDEX events_ident ON events (ident);

CREATE TABLE triggers_new (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL,             -- content hash
    account     INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    source      TEXT,
    headline    TEXT,
    strength    REAL,
    import_id   INTEGER NOT NULL
);
INSERT INTO triggers_new SELECT * FROM triggers;
DROP TABLE triggers;
ALTER TABLE triggers_new RENAME TO triggers;
CREATE UNIQUE INDEX triggers_ident ON triggers (ident);

CREATE TABLE waiting_events_new (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL,
    account_id  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    event_id    TEXT,
    detail      TEXT,
    import_id   INTEGER NOT NULL
);
INSERT INTO waiting_events_new SELECT * FROM waiting_events;
DROP TABLE waiting_events;
ALTER TABLE waiting_events_new RENAME TO waiting_events;
CREATE UNIQUE INDEX waiting_events_ident ON waiting_events (ident);
CREATE INDEX waiting_events_account ON waiting_events (account_id);

CREATE TABLE waiting_triggers_new (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL,
    account_id  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    source      TEXT,
    headline    TEXT,
    strength    REAL,
    import_id   INTEGER NOT NULL
);
INSERT INTO waiting_triggers_new SELECT * FROM waiting_triggers;
DROP TABLE waiting_triggers;
ALTER TABLE waiting_triggers_new RENAME TO waiting_triggers;
CREATE UNIQUE INDEX waiting_triggers_ident ON waiting_triggers (ident);
CREATE INDEX waiting_triggers_account ON waiting_triggers (account_id);
