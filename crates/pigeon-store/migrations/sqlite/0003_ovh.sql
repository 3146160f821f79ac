-- Credentials of the OVH API dialect: an application (key and secret) and its consumer key, one
-- account each. The secret and the consumer key are sealed (both sign requests); the consumer
-- key is also found by its digest.
CREATE TABLE ovh_credentials (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    application_key TEXT NOT NULL UNIQUE,
    application_secret_sealed TEXT NOT NULL,
    consumer_key_digest TEXT NOT NULL UNIQUE,
    consumer_key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ovh_credentials_user ON ovh_credentials (user_id);

-- Sender names an account may send as (OVH's senders).
CREATE TABLE senders (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, sender)
);

-- The HTTP method of a delivery (OVH's callbacks are GETs).
ALTER TABLE deliveries ADD COLUMN method TEXT NOT NULL DEFAULT 'POST';
