-- +goose Up
-- The last block the history indexer has read, per EVM network, with its hash: the next
-- block must name it as parent, or the chain changed under the indexer (a rebuilt dev
-- chain, a reorg deeper than the confirmations waited for).
CREATE TABLE chain_cursors (
    network     TEXT PRIMARY KEY,
    block       INTEGER NOT NULL,
    block_hash  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per value movement seen on chain for a wallet (GET /wallets/{id}/history): a
-- wallet-to-wallet transfer is one Out row on the sender and one In row on the receiver.
-- sort_key orders a wallet's history by chain position (block, transaction, log) and is the
-- pagination token; the unique index makes indexing idempotent (reruns, several nodes).
-- log_index is -1 for native transfers.
CREATE TABLE wallet_history (
    wallet_id     TEXT NOT NULL REFERENCES wallets(id),
    sort_key      TEXT NOT NULL,
    org_id        TEXT NOT NULL,
    network       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    direction     TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    tx_index      INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    block_number  INTEGER NOT NULL,
    block_time    INTEGER NOT NULL,
    from_address  TEXT NOT NULL,
    to_address    TEXT NOT NULL,
    value         TEXT NOT NULL,
    fee           TEXT,
    contract      TEXT,
    symbol        TEXT NOT NULL,
    decimals      INTEGER NOT NULL,
    verified      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, sort_key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX wallet_history_event ON wallet_history (wallet_id, tx_hash, kind, log_index, direction);

-- The indexer finds the networks that have wallets, and their wallets, by network.
CREATE INDEX wallets_network ON wallets (network);

-- +goose Down
DROP INDEX wallets_network;
DROP TABLE wallet_history;
DROP TABLE chain_cursors;
