-- ctforge schema v1 (SQLite). Never edit once landed: add a new migration instead.
-- Timestamps are Unix milliseconds; sealed columns hold `v1:<key id>:<base64>`.

CREATE TABLE secret_keys (
    key_id      TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE clusters (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL UNIQUE,
    url                 TEXT NOT NULL,
    token_id            TEXT NOT NULL,
    token_secret_sealed TEXT,
    fingerprint         TEXT,
    ssh_user            TEXT NOT NULL DEFAULT 'root',
    ssh_port            INTEGER NOT NULL DEFAULT 22,
    ssh_password_sealed TEXT,
    ssh_key_sealed      TEXT,
    ssh_host_key        TEXT,
    is_default          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE cluster_nodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id  INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'unknown',
    last_seen   BIGINT,
    UNIQUE (cluster_id, name)
);

CREATE TABLE templates (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL CHECK (source IN ('filesystem', 'custom')),
    source_path   TEXT,
    app           TEXT NOT NULL DEFAULT '',
    description   TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '',
    config_json   TEXT NOT NULL DEFAULT '{}',
    content_hash  TEXT NOT NULL DEFAULT '',
    diverged      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE template_scripts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id  INTEGER NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    content      TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    UNIQUE (template_id, name)
);

CREATE TABLE template_files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id  INTEGER NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    target_dir   TEXT NOT NULL,
    policy       TEXT NOT NULL CHECK (policy IN ('replace', 'default', 'backup')),
    content      TEXT NOT NULL,
    UNIQUE (template_id, name)
);

CREATE TABLE template_packages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id  INTEGER NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    bucket       TEXT NOT NULL,
    manager      TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT,
    position     INTEGER NOT NULL
);
CREATE INDEX template_packages_template ON template_packages (template_id, bucket, position);

CREATE TABLE buckets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE bucket_packages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket_id  INTEGER NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    manager    TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT,
    UNIQUE (bucket_id, manager, name)
);

CREATE TABLE containers (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id             INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    node                   TEXT NOT NULL,
    vmid                   BIGINT NOT NULL,
    hostname               TEXT NOT NULL,
    template_id            INTEGER REFERENCES templates(id) ON DELETE SET NULL,
    status                 TEXT NOT NULL,
    ip                     TEXT,
    spec_json              TEXT NOT NULL DEFAULT '{}',
    root_password_sealed   TEXT,
    created_by             TEXT NOT NULL DEFAULT '',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    UNIQUE (cluster_id, vmid)
);

CREATE TABLE container_services (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    container_id  INTEGER NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    unit          TEXT NOT NULL,
    active_state  TEXT NOT NULL DEFAULT 'unknown',
    sub_state     TEXT NOT NULL DEFAULT '',
    enabled       BOOLEAN NOT NULL DEFAULT FALSE,
    port          INTEGER,
    url           TEXT,
    updated_at    BIGINT NOT NULL,
    UNIQUE (container_id, unit)
);

CREATE TABLE container_credentials (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    container_id  INTEGER NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    value_sealed  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (container_id, name)
);

CREATE TABLE container_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    container_id  INTEGER NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    actor         TEXT NOT NULL DEFAULT '',
    data_json     TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL
);
CREATE INDEX container_events_container ON container_events (container_id, id);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    container_id    INTEGER REFERENCES containers(id) ON DELETE SET NULL,
    node            TEXT,
    payload_json    TEXT NOT NULL DEFAULT '{}',
    current_step    TEXT,
    completed_steps TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    lease_owner     TEXT,
    lease_expires   BIGINT,
    created_by      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX jobs_state ON jobs (state, id);

CREATE TABLE job_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id    INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    step      TEXT,
    data      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (job_id, seq)
);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    data_sealed   TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT NOT NULL,
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    last_used   BIGINT,
    revoked_at  BIGINT,
    UNIQUE (username, name)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL DEFAULT 'ok',
    detail_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
