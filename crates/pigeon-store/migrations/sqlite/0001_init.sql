-- Pigeon's schema (DESIGN §3). Portable SQL: BIGINT epoch-millisecond timestamps, TEXT JSON,
-- INTEGER flags, `$n` placeholders in queries; the PostgreSQL migration keeps the same shape.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    api_key_digest TEXT NOT NULL UNIQUE,
    api_key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE settings (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE quotas (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    credit BIGINT NOT NULL DEFAULT 0,
    additional BIGINT NOT NULL DEFAULT 0,
    consumed BIGINT NOT NULL DEFAULT 0,
    report_unused INTEGER NOT NULL DEFAULT 0,
    report_unused_additional INTEGER NOT NULL DEFAULT 0,
    auto_renew INTEGER NOT NULL DEFAULT 0,
    renew_interval TEXT NOT NULL DEFAULT 'P1M',
    start_date BIGINT NOT NULL,
    expiration_date BIGINT NOT NULL,
    -- The quota_level / quota_reached alerts of the current period were sent.
    alerted_level INTEGER NOT NULL DEFAULT 0,
    alerted_reached INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE phones (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    adapter TEXT NOT NULL,
    adapter_data_sealed TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'unavailable', 'no_credit', 'limit_reached', 'disabled')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE phone_limits (
    id INTEGER PRIMARY KEY,
    phone_id BIGINT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    volume BIGINT NOT NULL,
    startpoint TEXT NOT NULL
);
CREATE INDEX phone_limits_phone ON phone_limits (phone_id);

CREATE TABLE phone_groups (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE phone_group_phones (
    phone_group_id BIGINT NOT NULL REFERENCES phone_groups (id) ON DELETE CASCADE,
    phone_id BIGINT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    PRIMARY KEY (phone_group_id, phone_id)
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    number TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX contacts_number ON contacts (user_id, number);

CREATE TABLE contact_groups (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE group_contacts (
    group_id BIGINT NOT NULL REFERENCES contact_groups (id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX group_contacts_contact ON group_contacts (contact_id);

CREATE TABLE conditional_groups (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    expression TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE media (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A campaign is RaspiSMS's "scheduled": it stays after dispatch as the origin of its messages.
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    at BIGINT NOT NULL,
    phone_id BIGINT REFERENCES phones (id) ON DELETE SET NULL,
    phone_group_id BIGINT REFERENCES phone_groups (id) ON DELETE SET NULL,
    flash INTEGER NOT NULL DEFAULT 0,
    mms INTEGER NOT NULL DEFAULT 0,
    tag TEXT,
    status TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'dispatched')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaigns_user ON campaigns (user_id, status, id);
CREATE INDEX campaigns_due ON campaigns (status, at);

CREATE TABLE campaign_numbers (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaign_numbers_campaign ON campaign_numbers (campaign_id);

CREATE TABLE campaign_contacts (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, contact_id)
);

CREATE TABLE campaign_groups (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES contact_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, group_id)
);

CREATE TABLE campaign_conditional_groups (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    conditional_group_id BIGINT NOT NULL REFERENCES conditional_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, conditional_group_id)
);

CREATE TABLE campaign_media (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    media_id BIGINT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, media_id)
);

-- One SMS, outbound or inbound.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_id BIGINT REFERENCES phones (id) ON DELETE SET NULL,
    -- Outbound: the group the phone is picked from, and whether the user fixed the phone.
    phone_group_id BIGINT REFERENCES phone_groups (id) ON DELETE SET NULL,
    phone_fixed INTEGER NOT NULL DEFAULT 0,
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    origin TEXT,
    destination TEXT,
    text TEXT NOT NULL,
    encoding TEXT NOT NULL DEFAULT 'gsm7',
    segments BIGINT NOT NULL DEFAULT 1,
    flash INTEGER NOT NULL DEFAULT 0,
    mms INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    provider_id TEXT,
    adapter TEXT,
    campaign_id BIGINT,
    tag TEXT,
    client_ref TEXT,
    callback_url TEXT,
    valid_until BIGINT,
    max_tries BIGINT NOT NULL DEFAULT 1,
    tries BIGINT NOT NULL DEFAULT 0,
    -- The send queue: a queued message may be claimed from next_try_at; a claimed one
    -- ("sending") belongs to its sender until lease_until, then goes back to the queue.
    next_try_at BIGINT,
    lease_until BIGINT,
    at BIGINT NOT NULL,
    error_code TEXT,
    error_text TEXT,
    price TEXT,
    is_read INTEGER NOT NULL DEFAULT 0,
    command INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX messages_user_direction ON messages (user_id, direction, id);
CREATE INDEX messages_destination ON messages (user_id, destination);
CREATE INDEX messages_phone_at ON messages (phone_id, at);
CREATE INDEX messages_campaign ON messages (campaign_id);
CREATE INDEX messages_queue ON messages (status, phone_id, next_try_at);
CREATE INDEX messages_provider ON messages (provider_id);

CREATE TABLE message_history (
    id INTEGER PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    detail TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX message_history_message ON message_history (message_id, id);

CREATE TABLE message_media (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    media_id BIGINT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, media_id)
);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_id BIGINT REFERENCES phones (id) ON DELETE SET NULL,
    uid TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    origin TEXT,
    destination TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    type TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    -- Since when every delivery failed (cleared by a success); past a limit the webhook is
    -- disabled until its owner enables it again.
    failing_since BIGINT,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_user ON webhooks (user_id, type);

-- The webhook outbox: one row per (event, webhook), written in the transaction of the change
-- that caused the event, with the request fully rendered; the delivery worker claims due rows
-- with a lease, like the send queue.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The webhook it is for; NULL for a per-message or per-device notification URL.
    webhook_id BIGINT REFERENCES webhooks (id) ON DELETE CASCADE,
    -- What concurrency is bounded per: `webhook:<id>` or `url:<host>`.
    endpoint TEXT NOT NULL,
    -- The Standard Webhooks secret the attempts are signed with.
    secret_sealed TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `webhook-id`: stable across retries.
    event_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'succeeded', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint, status, next_attempt_at);

CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    status_code BIGINT,
    duration_ms BIGINT NOT NULL,
    response_body TEXT,
    error TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- Astandes devices: each is the phone of an `agent` channel, paired with a 7-digit code.
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_id BIGINT NOT NULL UNIQUE REFERENCES phones (id) ON DELETE CASCADE,
    firstname TEXT NOT NULL DEFAULT '',
    lastname TEXT NOT NULL DEFAULT '',
    number TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    notification TEXT NOT NULL DEFAULT '',
    -- Signs the notifications of this device and of its messages.
    secret_sealed TEXT NOT NULL,
    attached INTEGER NOT NULL DEFAULT 0,
    token_digest TEXT UNIQUE,
    last_seen_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX devices_user ON devices (user_id, id);

CREATE TABLE pairing_codes (
    id INTEGER PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    code_digest TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX pairing_codes_code ON pairing_codes (code_digest);

-- Alerts of the phone reliability check (only messages after the last alert count).
CREATE TABLE phone_reliability_history (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_id BIGINT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('failed', 'unknown')),
    created_at BIGINT NOT NULL
);
CREATE INDEX phone_reliability_history_phone ON phone_reliability_history (phone_id, type, created_at);

-- Numbers that answered STOP.
CREATE TABLE stop_list (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, number)
);
