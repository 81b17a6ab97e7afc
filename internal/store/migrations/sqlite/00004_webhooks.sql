-- +goose Up
-- Webhook subscriptions. The signing secret is sealed under the master key file's KEK
-- (AAD binds org and webhook), like key material: a copy of the database alone cannot
-- forge deliveries.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL, -- JSON array of kinds, or ["*"]
    status        TEXT NOT NULL,
    description   TEXT,
    sealed_secret BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhooks_org ON webhooks (org_id, id);

-- One row per delivery attempt (dfns-api.md §5.5: a retry is a new event with retry_of set).
-- Rows are written in the same transaction as the state change they report (outbox); a
-- River job delivers each. status is '' until the attempt was made.
CREATE TABLE webhook_events (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    kind             TEXT NOT NULL,
    data             TEXT NOT NULL,
    event_date       INTEGER NOT NULL,
    delivery_attempt INTEGER NOT NULL,
    retry_of         TEXT,
    first_attempt_at INTEGER,
    status           TEXT NOT NULL,
    error            TEXT,
    delivery_failed  INTEGER NOT NULL,
    timestamp_sent   INTEGER,
    next_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id, id);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

-- +goose Down
DROP TABLE webhook_events;
DROP TABLE webhooks;
