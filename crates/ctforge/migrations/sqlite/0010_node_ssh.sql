-- Per-node SSH of a cluster: an address/port override (NULL: the node's ip from
-- /cluster/status and the cluster's ssh_port) and the node's pinned host key. (SQLite)
CREATE TABLE node_ssh (
    cluster_id  INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    node        TEXT NOT NULL,
    address     TEXT,
    port        INTEGER,
    host_key    TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, node)
);
