-- A container's newest job (the container page links its creation job) without scanning jobs.
CREATE INDEX jobs_container ON jobs (container_id, id);
