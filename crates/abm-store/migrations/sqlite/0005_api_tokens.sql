-- API tokens (issue 17): `abm serve`'s bearer tokens, stored as the SHA-256 of the secret.
-- A revoked token keeps its row (decisions name it); a name is unique among live tokens.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,              -- viewer | reviewer | admin
    hash       TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the secret
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
