-- Settings saved through the admin API (one JSON document per name, secrets sealed inside it). `version` grows by
-- one with every save: instances poll it to apply changes, and a save names the version it read.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Admin API keys created with `gatehouse admin-key new`; only a SHA-256 hash of each key is kept.
CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX users_created_at_idx ON users (created_at);
