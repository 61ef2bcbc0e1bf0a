-- Presets: named, saved sets of creation answers for a template (`values_json` holds any
-- field of the create request). A preset belongs to its owner; `shared` ones (set by an
-- admin) are visible to everyone. Permissions are checked when a preset is used. (SQLite)
CREATE TABLE presets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    template    TEXT NOT NULL,
    values_json TEXT NOT NULL,
    owner       TEXT NOT NULL,
    shared      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
