-- +goose Up
-- People: WebAuthn state of credentials, login/registration ceremonies and one-time codes.

-- What a credential needs beyond its public key: the WebAuthn signature counter and flags
-- (Fido2), where it was registered, and the client-encrypted private key that some kinds
-- keep with us (RecoveryKey, PasswordProtectedKey; opaque to the server).
CREATE TABLE credential_details (
    uuid                   TEXT PRIMARY KEY REFERENCES credentials(uuid),
    sign_count             BIGINT NOT NULL DEFAULT 0,
    flags                  INTEGER NOT NULL DEFAULT 0,
    aaguid                 BYTEA,
    rp_id                  TEXT NOT NULL DEFAULT '',
    origin                 TEXT NOT NULL DEFAULT '',
    encrypted_private_key  TEXT
);

-- A registration, login, credential or recovery ceremony: a challenge that is used once.
-- The handle the client holds (temporaryAuthenticationToken / challengeIdentifier) is a
-- bearer secret, so only its SHA-256 is stored.
CREATE TABLE auth_ceremonies (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    handle_hash  BYTEA NOT NULL UNIQUE,
    challenge    TEXT NOT NULL,
    cred_kind    TEXT NOT NULL DEFAULT '',
    cred_uuid    TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);

-- One-time codes (registration, credential, recovery), stored as SHA-256 only.
CREATE TABLE auth_codes (
    code_hash   BYTEA PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX auth_codes_user ON auth_codes (user_id, purpose);

-- +goose Down
DROP TABLE auth_codes;
DROP TABLE auth_ceremonies;
DROP TABLE credential_details;
