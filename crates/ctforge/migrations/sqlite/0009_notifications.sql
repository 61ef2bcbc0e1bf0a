-- Notification targets (webhook, ntfy, Gotify, e-mail) with the events they want, and every
-- delivery attempt with its outcome. (SQLite)
CREATE TABLE notification_targets (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('webhook', 'ntfy', 'gotify', 'email')),
    -- Non-secret settings (URL, SMTP host/port/security/user, from, to) as JSON.
    settings_json  TEXT NOT NULL,
    -- Event kinds and their parameters as JSON.
    rules_json     TEXT NOT NULL,
    -- HMAC key, access token or SMTP password, sealed with the keyring.
    secret_sealed  TEXT,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    source         TEXT NOT NULL CHECK (source IN ('settings', 'configuration')),
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE TABLE notification_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id    INTEGER REFERENCES notification_targets(id) ON DELETE SET NULL,
    target_name  TEXT NOT NULL,
    event_kind   TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    title        TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'suppressed')),
    error        TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX notification_deliveries_target ON notification_deliveries (target_id, id);
