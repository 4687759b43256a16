-- A run's transition matrix against the run before it (issue 18), counted by the run that
-- writes it: one row per non-empty cell, from_cluster NULL for accounts without a row at the
-- previous run (new accounts, the first run). The runs recorded before this migration are
-- counted from the snapshot history by the step in Rust that follows this file (migrate.rs).
CREATE TABLE run_transitions (
    run          BIGINT NOT NULL,
    from_cluster TEXT,
    to_cluster   TEXT NOT NULL,
    accounts     BIGINT NOT NULL
);
CREATE INDEX run_transitions_run ON run_transitions (run);
