-- +goose Up
-- The next nonce to use per EVM sender, so concurrent transfers (and nodes) never share one.
CREATE TABLE evm_nonces (
    network TEXT NOT NULL,
    address TEXT NOT NULL,
    next    BIGINT NOT NULL,
    PRIMARY KEY (network, address)
);

-- One row per transfer; raw_tx is the signed transaction, stored before it is broadcast so a
-- retried job resends the same bytes and never signs a second, different transaction.
CREATE TABLE transfers (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    wallet_id           TEXT NOT NULL REFERENCES wallets(id),
    network             TEXT NOT NULL,
    requester_user_id   TEXT NOT NULL,
    requester_token_id  TEXT NOT NULL,
    request_body        BYTEA NOT NULL,
    asset_symbol        TEXT NOT NULL,
    asset_decimals      BIGINT NOT NULL,
    asset_verified      BIGINT NOT NULL,
    status              TEXT NOT NULL,
    reason              TEXT,
    nonce               BIGINT NOT NULL,
    raw_tx              BYTEA NOT NULL,
    tx_hash             TEXT NOT NULL,
    fee                 TEXT,
    external_id         TEXT,
    created_at          BIGINT NOT NULL,
    broadcasted_at      BIGINT,
    confirmed_at        BIGINT
);
CREATE INDEX transfers_wallet ON transfers (wallet_id, id);
CREATE UNIQUE INDEX transfers_external_id ON transfers (org_id, external_id) WHERE external_id IS NOT NULL;

-- +goose Down
DROP TABLE transfers;
DROP TABLE evm_nonces;
