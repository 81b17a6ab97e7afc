-- +goose Up
-- Times are Unix milliseconds (UTC); booleans are states in TEXT so both dialects read alike.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One row at most: the first start's organization. The primary key makes the bootstrap
-- race between several nodes safe: exactly one INSERT wins.
CREATE TABLE bootstrap (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id),
    username            TEXT NOT NULL,
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    is_service_account  INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL,
    is_registered       INTEGER NOT NULL DEFAULT 0,
    external_id         TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
-- Service accounts may share names; people may not share a username.
CREATE UNIQUE INDEX users_username ON users (org_id, username) WHERE is_service_account = 0;
CREATE UNIQUE INDEX users_external_id ON users (org_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE credentials (
    uuid        TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    cred_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    public_key  BYTEA NOT NULL,
    algorithm   TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, cred_id)
);
CREATE INDEX credentials_user ON credentials (user_id);

CREATE TABLE access_tokens (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    user_id          TEXT NOT NULL REFERENCES users(id),
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    credential_uuid  TEXT NOT NULL REFERENCES credentials(uuid),
    external_id      TEXT,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
CREATE UNIQUE INDEX access_tokens_external_id ON access_tokens (org_id, kind, external_id) WHERE external_id IS NOT NULL;

-- A user action goes pending (challenge issued) -> signed (token issued) -> used.
-- The token itself is never stored, only its SHA-256.
CREATE TABLE user_actions (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    token_id          TEXT NOT NULL,
    challenge         TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    payload           BYTEA NOT NULL,
    server_kind       TEXT NOT NULL,
    state             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    token_hash        BYTEA UNIQUE,
    credential_uuid   TEXT,
    client_data       BYTEA,
    signature         BYTEA,
    signed_at         BIGINT,
    token_expires_at  BIGINT,
    used_at           BIGINT
);

CREATE TABLE audit_log (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    token_id         TEXT NOT NULL,
    credential_uuid  TEXT NOT NULL,
    user_action_id   TEXT NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    body_hash        TEXT NOT NULL,
    client_data      BYTEA NOT NULL,
    signature        BYTEA NOT NULL,
    status           INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX audit_log_org_time ON audit_log (org_id, created_at);

-- Server signing keys (JWT), sealed under the KEK of the master key file.
CREATE TABLE server_keys (
    id              TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    public_key      BYTEA NOT NULL,
    sealed_private  BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);

-- +goose Down
DROP TABLE server_keys;
DROP TABLE audit_log;
DROP TABLE user_actions;
DROP TABLE access_tokens;
DROP TABLE credentials;
DROP TABLE users;
DROP TABLE bootstrap;
DROP TABLE orgs;
