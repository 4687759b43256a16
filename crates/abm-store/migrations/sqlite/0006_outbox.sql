-- CRM sync (issue 19): every write to a CRM is an outbox item, keyed for idempotency, stored
-- before it is sent; and the watermark of each incremental pull.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    crm        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    remote_id  TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (crm, status, id);
CREATE INDEX outbox_target ON outbox (crm, kind, target, id);

CREATE TABLE sync_watermarks (
    crm        TEXT NOT NULL,
    object     TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (crm, object)
);
