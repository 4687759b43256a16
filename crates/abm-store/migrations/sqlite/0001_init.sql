-- abm-store schema, version 1 (SQLite). Never edit a migration once it is released: add a new one.
-- Instants are INTEGER microseconds since the Unix epoch (UTC); wall-clock times are RFC 3339 text.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- data_version: bumped by every import that changed data; state_version: by every run and decision.
INSERT INTO meta (key, value) VALUES ('data_version', 0), ('state_version', 0);

CREATE TABLE imports (
    id               INTEGER PRIMARY KEY,
    created_at       TEXT NOT NULL,
    sources          TEXT NOT NULL,
    accounts_read    INTEGER NOT NULL,
    accounts_changed INTEGER NOT NULL,
    events_read      INTEGER NOT NULL,
    events_added     INTEGER NOT NULL,
    triggers_read    INTEGER NOT NULL,
    triggers_added   INTEGER NOT NULL,
    deals_read       INTEGER NOT NULL,
    deals_changed    INTEGER NOT NULL,
    rejected         INTEGER NOT NULL,
    data_version     INTEGER NOT NULL
);

-- Every account column ever imported, in first-seen order (the account schema of a run).
CREATE TABLE account_columns (
    position INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE
);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    account_id     TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    fields         TEXT NOT NULL,          -- JSON object: column -> value, as imported
    employees      REAL,
    annual_revenue REAL,
    icp_score      REAL,
    icp_tier       TEXT,
    founded_year   INTEGER,
    row_hash       BLOB NOT NULL,
    import_id      INTEGER NOT NULL
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL UNIQUE,      -- hash of event_id, else of the content
    account     INTEGER NOT NULL,          -- accounts.id
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    event_id    TEXT,
    detail      TEXT,
    import_id   INTEGER NOT NULL
);

CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL UNIQUE,      -- content hash
    account     INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    source      TEXT,
    headline    TEXT,
    strength    REAL,
    import_id   INTEGER NOT NULL
);

CREATE TABLE deals (
    id                   INTEGER PRIMARY KEY,
    deal_id              TEXT NOT NULL UNIQUE,
    account              INTEGER NOT NULL,
    stage                TEXT NOT NULL,
    amount               REAL,
    created_at           INTEGER NOT NULL,
    closed_at            INTEGER,
    last_stage_change_at INTEGER,
    outcome              TEXT NOT NULL,
    product              TEXT,
    owner                TEXT,
    row_hash             BLOB NOT NULL,
    import_id            INTEGER NOT NULL
);

CREATE TABLE runs (
    id                 INTEGER PRIMARY KEY,
    as_of              INTEGER NOT NULL,
    started_at         TEXT NOT NULL,
    config_hash        TEXT NOT NULL,
    data_version       INTEGER NOT NULL,
    state_version      INTEGER NOT NULL,   -- meta.state_version after this run
    accounts           INTEGER NOT NULL,
    cluster_icp        INTEGER NOT NULL,
    future_pipeline    INTEGER NOT NULL,
    active_focus       INTEGER NOT NULL,
    monitor_only       INTEGER NOT NULL,
    promotions         INTEGER NOT NULL,
    demotions          INTEGER NOT NULL,
    proposals_opened   INTEGER NOT NULL,
    checkpoints_opened INTEGER NOT NULL,
    checkpoints_closed INTEGER NOT NULL,
    events_read        INTEGER NOT NULL,
    events_after_as_of INTEGER NOT NULL,
    summary            TEXT NOT NULL       -- JSON: capacity status, warnings
);

-- Long, repetitive texts of snapshot rows (rules, next actions, micro-segments), stored once.
CREATE TABLE texts (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);

-- One row per account per run.
CREATE TABLE snapshots (
    run                INTEGER NOT NULL,
    account            INTEGER NOT NULL,
    candidate          TEXT NOT NULL,
    cluster            TEXT NOT NULL,      -- effective cluster after the run
    previous           TEXT,
    movement           TEXT NOT NULL,
    rule               INTEGER NOT NULL,   -- texts.id
    evidence           TEXT NOT NULL,      -- JSON array of {kind, detail, at}
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
    PRIMARY KEY (run, account)
) WITHOUT ROWID;

CREATE TABLE movements (
    id           INTEGER PRIMARY KEY,
    run          INTEGER NOT NULL,         -- the run whose as_of the move takes effect at
    account      INTEGER NOT NULL,
    as_of        INTEGER NOT NULL,
    from_cluster TEXT NOT NULL,
    to_cluster   TEXT NOT NULL,
    direction    TEXT NOT NULL,            -- promotion | demotion
    rule         TEXT NOT NULL,
    evidence     TEXT NOT NULL,
    checkpoint   INTEGER,                  -- the approved proposal, if the move needed one
    created_at   TEXT NOT NULL
);
CREATE INDEX movements_account ON movements (account);
CREATE INDEX movements_as_of ON movements (as_of);

CREATE TABLE checkpoints (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    account      INTEGER,                  -- NULL for capacity
    run          INTEGER NOT NULL,
    as_of        INTEGER NOT NULL,
    from_cluster TEXT,
    to_cluster   TEXT,
    rule         TEXT,
    signature    TEXT,
    evidence     TEXT NOT NULL,
    status       TEXT NOT NULL,            -- pending | approved | rejected | closed
    reviewer     TEXT,
    comment      TEXT,
    reason       TEXT,                     -- why it was closed
    created_at   TEXT NOT NULL,
    decided_at   TEXT,
    decided_run  INTEGER
);
CREATE INDEX checkpoints_status ON checkpoints (status, kind);
CREATE INDEX checkpoints_account ON checkpoints (account);

-- The audit trail: every approve, reject and close, never updated.
CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY,
    checkpoint INTEGER NOT NULL,
    action     TEXT NOT NULL,              -- approve | reject | close
    actor      TEXT NOT NULL,
    comment    TEXT,
    decided_at TEXT NOT NULL,
    run        INTEGER
);
CREATE INDEX decisions_checkpoint ON decisions (checkpoint);

-- Each account's effective state between runs.
CREATE TABLE account_state (
    account     INTEGER PRIMARY KEY,
    cluster     TEXT NOT NULL,
    entered_at  INTEGER NOT NULL,
    floor       INTEGER,                   -- as_of of the last demotion
    updated_run INTEGER NOT NULL
);
