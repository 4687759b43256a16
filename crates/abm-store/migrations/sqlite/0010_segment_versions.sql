-- Segment definitions stored and versioned with each run (issue 16): a `[[segments]]`
-- definition is stored once per distinct content (name, description, criteria); a changed
-- definition is the segment's next version; each run names the versions it was made with.
CREATE TABLE segment_versions (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    definition  TEXT NOT NULL,             -- TOML: name, description, criteria
    first_run   INTEGER NOT NULL,
    UNIQUE (name, version),
    UNIQUE (name, fingerprint)
);

CREATE TABLE run_segments (
    run             INTEGER NOT NULL,
    position        INTEGER NOT NULL,      -- the definition's place in abm.toml
    segment_version INTEGER NOT NULL,      -- segment_versions.id
    PRIMARY KEY (run, position)
);
