-- Indexed scope selection (issue 15): a run that scales with change reads the accounts due by
-- its as_of (or with no due instant) through this index instead of walking every state; the
-- others are counted by one aggregate. (0012 is taken by another change.)
CREATE INDEX account_state_due ON account_state (due_at);
