-- A deal's stage history (issue 13: "stage history when given"): the deals file's
-- `stage_history` column, stored as lines `MICROS<TAB>open|won|lost<TAB>stage`, oldest first.
ALTER TABLE deals ADD COLUMN stage_history TEXT;
ALTER TABLE waiting_deals ADD COLUMN stage_history TEXT;
