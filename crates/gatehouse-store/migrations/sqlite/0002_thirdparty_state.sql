-- Third-party `state` values that were redeemed: a state works once. Rows are kept until the state expires.
CREATE TABLE used_states (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_states_expires_at_idx ON used_states (expires_at);
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);
