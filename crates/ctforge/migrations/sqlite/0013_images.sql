-- Images (bake once): a Proxmox CT template baked from a ctforge template version (content
-- hash) for one OS template on one node and storage, its state (building, ready, failed,
-- superseded) and the containers made from it (`containers.image_id` is not a column: the
-- count is kept here, so the containers table stays as it is).
CREATE TABLE images (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id    INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    template_name TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    ostemplate    TEXT NOT NULL,
    node          TEXT NOT NULL,
    storage       TEXT NOT NULL,
    vmid          BIGINT,
    state         TEXT NOT NULL,
    size_bytes    BIGINT,
    containers    BIGINT NOT NULL DEFAULT 0,
    job_id        BIGINT,
    error         TEXT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX images_lookup ON images (cluster_id, template_name, node, storage, state);
-- One bake at a time per template version, node and storage.
CREATE UNIQUE INDEX images_one_build ON images (cluster_id, template_name, content_hash, node, storage)
    WHERE state = 'building';
