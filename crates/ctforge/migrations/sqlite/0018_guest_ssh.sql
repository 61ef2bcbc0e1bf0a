-- A VM's fallback SSH channel (used when its guest agent does not answer): the key pair ctforge
-- made for that guest (private half sealed, public half given to cloud-init's `sshkeys` for
-- `login_user`) and the guest's SSH host key, pinned on first contact and enforced from then on.
CREATE TABLE guest_ssh_keys (
    container_id  BIGINT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    key_sealed    TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    login_user    TEXT NOT NULL,
    host_key      TEXT,
    created_at    BIGINT NOT NULL
);
