-- +goose Up
-- Speed-up and cancel of EVM transfers and broadcast requests (dfns-api.md §4.4): the
-- replacement is a broadcast request of its own (kind SpeedUpTransaction or
-- CancelTransaction) signed with the same nonce; replaces names the transfer or
-- transaction it replaces, and that one's replacement_id names its newest replacement.
ALTER TABLE transfers ADD COLUMN replacement_id TEXT;
ALTER TABLE transactions ADD COLUMN replacement_id TEXT;
ALTER TABLE transactions ADD COLUMN replaces TEXT;
CREATE INDEX transactions_replaces ON transactions (replaces, id) WHERE replaces IS NOT NULL;

-- +goose Down
DROP INDEX transactions_replaces;
ALTER TABLE transactions DROP COLUMN replaces;
ALTER TABLE transactions DROP COLUMN replacement_id;
ALTER TABLE transfers DROP COLUMN replacement_id;
