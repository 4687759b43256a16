-- abm-store schema, version 8 (PostgreSQL). Never edit a migration once it is released: add a new one.
--
-- Runs that scale with change (issue 15). Per account, the earliest instant its assessment could
-- change on its own (`due_at`, microseconds; NULL: assess it at the next run) and its computed
-- score (NULL when the score came from the input), so that a run can count and note the accounts
-- it does not assess. A run assesses the accounts with rows added or changed since the previous
-- run (found from the marks it leaves in `meta`: a greater id, a later import), with a decision
-- or a re-evaluation since (both set `due_at` to NULL), or with a due instant; all of them when
-- the config, the account columns or the product catalog (customers' whitespace) changed, or when a mark is unknown (-1, as here: the first
-- run after this migration assesses everything).
ALTER TABLE account_state ADD COLUMN due_at BIGINT;
ALTER TABLE account_state ADD COLUMN score DOUBLE PRECISION;
CREATE INDEX accounts_import ON accounts (import_id);
CREATE INDEX deals_import ON deals (import_id);
INSERT INTO meta (key, value) VALUES
    ('run_mark_accounts', -1), ('run_mark_events', -1), ('run_mark_triggers', -1),
    ('run_mark_deals', -1), ('run_mark_import', -1), ('run_mark_columns', -1),
    ('run_mark_catalog', -1);
-- A deal that moves to another account changes the account it left too.
CREATE FUNCTION abm_deal_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account_state SET due_at = NULL WHERE account = OLD.account;
    RETURN NULL;
END
$$;
CREATE TRIGGER deals_moved AFTER UPDATE OF account ON deals FOR EACH ROW
    WHEN (OLD.account IS DISTINCT FROM NEW.account) EXECUTE FUNCTION abm_deal_moved();
