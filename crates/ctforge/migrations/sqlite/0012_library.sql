-- The template library: deploy keys of ssh git sources (sealed with the keyring; only the
-- public fingerprint is ever shown) with the pinned host key, and the config-manager's state
-- as monitoring last read it from a container (shown on the container page).
CREATE TABLE git_source_keys (
    url               TEXT PRIMARY KEY,
    deploy_key_sealed TEXT NOT NULL,
    key_fingerprint   TEXT NOT NULL,
    host_key          TEXT,
    updated_at        BIGINT NOT NULL
);
CREATE TABLE container_config_manager (
    container_id INTEGER PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    state_json   TEXT NOT NULL,
    checked_at   BIGINT NOT NULL
);
