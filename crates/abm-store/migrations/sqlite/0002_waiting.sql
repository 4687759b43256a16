-- Rows that name an account not imported yet (issue 14): kept, not rejected, and moved into
-- events / triggers / deals by the import in which their account arrives.
CREATE TABLE waiting_events (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL UNIQUE,
    account_id  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    event_id    TEXT,
    detail      TEXT,
    import_id   INTEGER NOT NULL
);
CREATE INDEX waiting_events_account ON waiting_events (account_id);

CREATE TABLE waiting_triggers (
    id          INTEGER PRIMARY KEY,
    ident       BLOB NOT NULL UNIQUE,
    account_id  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    type        TEXT NOT NULL,
    source      TEXT,
    headline    TEXT,
    strength    REAL,
    import_id   INTEGER NOT NULL
);
CREATE INDEX waiting_triggers_account ON waiting_triggers (account_id);

CREATE TABLE waiting_deals (
    id                   INTEGER PRIMARY KEY,
    deal_id              TEXT NOT NULL UNIQUE,
    account_id           TEXT NOT NULL,
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
CREATE INDEX waiting_deals_account ON waiting_deals (account_id);
