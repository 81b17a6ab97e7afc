-- +goose Up
-- Delegated keys (dfns-api.md §4.4, §4.5): a key delegated to an end user signs only with
-- that user's user action; the organization keeps read access. Delegation is one-way, so
-- the columns are set once and never cleared. A wallet is delegated through its key.
ALTER TABLE keys ADD COLUMN delegated_to TEXT;
ALTER TABLE keys ADD COLUMN delegated_at BIGINT;
CREATE INDEX keys_delegated ON keys (org_id, delegated_to, id);

-- +goose Down
DROP INDEX keys_delegated;
ALTER TABLE keys DROP COLUMN delegated_at;
ALTER TABLE keys DROP COLUMN delegated_to;
