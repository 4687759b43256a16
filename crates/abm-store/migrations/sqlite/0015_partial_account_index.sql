-- The index of events by account serves only the events newer than the accounts' packs (every
-- read of an account's events takes its pack, then its rows with a greater id): a first load
-- builds it over the rows above its own (`events_account ... WHERE id > N`) and keeps N here.
-- Every by-account query states `id > N` (a planner uses a partial index only when the query
-- implies its condition). 0: the whole index, as every database before this one has it.
INSERT INTO meta (key, value) VALUES ('events_account_from', 0);
