-- Per-account event packs (issue 15): each account's stored events, in id order, encoded in one
-- blob (`packs.rs`), so a run decodes one row per account instead of reading its events row by
-- row. A pack holds exactly its account's events with id <= upto; every event with
-- id <= meta `packs_upto` is in its account's pack; newer events are read from `events` by id.
CREATE TABLE event_packs (
    account INTEGER PRIMARY KEY,   -- accounts.id
    upto    INTEGER NOT NULL,      -- the greatest events.id the pack covers
    events  INTEGER NOT NULL,      -- how many events it holds
    data    BLOB NOT NULL
);
INSERT INTO meta (key, value) VALUES ('packs_upto', 0);
