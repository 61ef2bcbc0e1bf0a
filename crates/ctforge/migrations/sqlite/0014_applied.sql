-- What ctforge last applied to each container (its creation or a re-apply): the template's
-- name and content hash and the template itself as JSON (files with their content, scripts,
-- packages), so drift compares the container and today's template against exactly that.
CREATE TABLE container_applied (
    container_id  INTEGER PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    template_name TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    template_json TEXT NOT NULL,
    job_id        BIGINT,
    applied_at    BIGINT NOT NULL
);
-- The managed files monitoring last found changed in each container (checksums against what
-- was applied; a JSON list of target paths), for the dashboard's drift badge and the
-- `drift_detected` notification.
CREATE TABLE container_drift (
    container_id INTEGER PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    files_json   TEXT NOT NULL,
    checked_at   BIGINT NOT NULL
);
