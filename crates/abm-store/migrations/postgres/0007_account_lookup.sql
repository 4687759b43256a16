-- One account's facts by index (`abm explain ID` on the database, issue 12): its events,
-- triggers and deals without reading the whole tables.
CREATE INDEX events_account ON events (account);
CREATE INDEX triggers_account ON triggers (account);
CREATE INDEX deals_account ON deals (account);
