-- ctforge roles (admin, editor, auditor) granted to cluster-qualified identities
-- (`root@pam` signed in to cluster 1), and the cluster an API token acts on. (SQLite)
CREATE TABLE role_grants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT NOT NULL,
    cluster_id  INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'auditor')),
    granted_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (username, cluster_id, role)
);
-- NULL: a token created before tokens were tied to a cluster; it acts on the default cluster.
ALTER TABLE api_tokens ADD COLUMN cluster_id INTEGER REFERENCES clusters(id) ON DELETE CASCADE;
