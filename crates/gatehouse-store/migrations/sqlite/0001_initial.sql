-- Gatehouse schema, SQLite dialect. Times are unix milliseconds; ids are UUID text; flags are 0/1 integers
-- (sqlx's Any driver cannot read SQLite's BOOLEAN affinity).
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    given_name  TEXT,
    family_name TEXT,
    picture     TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE emails (
    id         TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    verified   INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX emails_address_key ON emails (lower(address));
CREATE INDEX emails_user_id_idx ON emails (user_id);

CREATE TABLE primary_emails (
    id         TEXT PRIMARY KEY,
    email_id   TEXT NOT NULL UNIQUE REFERENCES emails (id),
    user_id    TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE identities (
    id               TEXT PRIMARY KEY,
    provider_id      TEXT NOT NULL,
    provider_user_id TEXT NOT NULL,
    data             TEXT,
    email_id         TEXT REFERENCES emails (id) ON DELETE SET NULL,
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (provider_id, provider_user_id)
);
CREATE INDEX identities_user_id_idx ON identities (user_id);

CREATE TABLE tokens (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    value_hash         TEXT NOT NULL UNIQUE,
    identity_id        TEXT REFERENCES identities (id) ON DELETE CASCADE,
    code_verifier_hash TEXT,
    is_flow            INTEGER NOT NULL DEFAULT 0,
    user_created       INTEGER NOT NULL DEFAULT 0,
    expires_at         BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT,
    ip_address TEXT,
    expires_at BIGINT NOT NULL,
    last_used  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);

CREATE TABLE jwks (
    kid        TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    key_data   BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE flows (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 0,
    csrf_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit_logs (
    id                   TEXT PRIMARY KEY,
    type                 TEXT NOT NULL,
    error                TEXT,
    meta_http_request_id TEXT,
    meta_source_ip       TEXT,
    meta_user_agent      TEXT,
    actor_user_id        TEXT,
    actor_email          TEXT,
    details              TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX audit_logs_type_idx ON audit_logs (type);
CREATE INDEX audit_logs_actor_user_id_idx ON audit_logs (actor_user_id);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
