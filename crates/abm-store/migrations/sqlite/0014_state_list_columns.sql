-- The account list's filters read the account's state row alone (issue 17): the tier,
-- engagement level, candidate cluster and micro-segment of the account's latest snapshot row
-- (the one of its snapshot_run) are kept beside its current cluster, so a filtered page walks
-- the states in account order without a snapshot lookup per account it skips.
ALTER TABLE account_state ADD COLUMN tier TEXT;
ALTER TABLE account_state ADD COLUMN engagement TEXT;
ALTER TABLE account_state ADD COLUMN candidate TEXT;
ALTER TABLE account_state ADD COLUMN micro_segment INTEGER;
UPDATE account_state SET (tier, engagement, candidate, micro_segment) = (
    SELECT s.tier, s.engagement, s.candidate, s.micro_segment FROM snapshots s
    WHERE s.run = account_state.snapshot_run AND s.account = account_state.account)
WHERE snapshot_run IS NOT NULL;
