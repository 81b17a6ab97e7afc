-- +goose Up
-- Signing keys: the private part is sealed by internal/keys under the master key file's KEK.
CREATE TABLE keys (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    scheme          TEXT NOT NULL,
    curve           TEXT NOT NULL,
    public_key      BLOB NOT NULL,
    sealed_private  BLOB NOT NULL,
    name            TEXT,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX keys_org ON keys (org_id, id);

CREATE TABLE wallets (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    network     TEXT NOT NULL,
    address     TEXT,
    key_id      TEXT NOT NULL REFERENCES keys(id),
    name        TEXT,
    status      TEXT NOT NULL,
    external_id TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER,
    UNIQUE (key_id, network)
);
CREATE INDEX wallets_org ON wallets (org_id, id);
CREATE UNIQUE INDEX wallets_external_id ON wallets (org_id, external_id) WHERE external_id IS NOT NULL;

-- One row per signature request, by key (and wallet when made through one).
CREATE TABLE signature_requests (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    key_id              TEXT NOT NULL REFERENCES keys(id),
    wallet_id           TEXT,
    network             TEXT,
    requester_user_id   TEXT NOT NULL,
    requester_token_id  TEXT NOT NULL,
    request_body        BLOB NOT NULL,
    status              TEXT NOT NULL,
    reason              TEXT,
    signature           TEXT,
    signed_data         TEXT,
    external_id         TEXT,
    created_at          INTEGER NOT NULL,
    signed_at           INTEGER
) WITHOUT ROWID;
CREATE INDEX signature_requests_key ON signature_requests (key_id, id);
CREATE INDEX signature_requests_wallet ON signature_requests (wallet_id, id) WHERE wallet_id IS NOT NULL;
CREATE UNIQUE INDEX signature_requests_external_id ON signature_requests (org_id, external_id) WHERE external_id IS NOT NULL;

-- +goose Down
DROP TABLE signature_requests;
DROP TABLE wallets;
DROP TABLE keys;
