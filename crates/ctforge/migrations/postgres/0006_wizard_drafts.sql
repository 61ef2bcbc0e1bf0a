-- Secrets typed into the creation wizard (the root password), sealed and kept server-side
-- between steps: later steps carry only the draft's opaque id, never the secret.
CREATE TABLE wizard_drafts (
    id_hash       TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX wizard_drafts_expiry ON wizard_drafts (expires_at);
