-- +goose Up
-- One row per broadcast transaction (POST /wallets/{id}/transactions). Like transfers,
-- raw_tx is the signed transaction, stored with its nonce before anything is sent, so the
-- job that broadcasts it only ever resends the same bytes.
CREATE TABLE transactions (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    wallet_id           TEXT NOT NULL REFERENCES wallets(id),
    network             TEXT NOT NULL,
    requester_user_id   TEXT NOT NULL,
    requester_token_id  TEXT NOT NULL,
    request_body        BYTEA NOT NULL,
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
CREATE INDEX transactions_wallet ON transactions (wallet_id, id);
CREATE UNIQUE INDEX transactions_external_id ON transactions (org_id, external_id) WHERE external_id IS NOT NULL;

-- A nonce whose transaction the network refused for good is filled by a signed 0-value
-- self-transfer, so later nonces of the sender are not blocked forever. One filler per
-- nonce (the primary key); replaces is the transfer or transaction that was refused.
CREATE TABLE evm_nonce_fills (
    network      TEXT NOT NULL,
    address      TEXT NOT NULL,
    nonce        BIGINT NOT NULL,
    replaces     TEXT NOT NULL,
    raw_tx       BYTEA NOT NULL,
    tx_hash      TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    PRIMARY KEY (network, address, nonce)
);

-- +goose Down
DROP TABLE evm_nonce_fills;
DROP TABLE transactions;
