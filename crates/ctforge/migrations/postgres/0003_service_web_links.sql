-- Web links of services: what answered on the service's port (probed by monitoring).
-- url (from 0001) becomes https://… when TLS answered; these columns stay NULL until probed.
ALTER TABLE container_services ADD COLUMN web_title TEXT;
ALTER TABLE container_services ADD COLUMN web_answered BOOLEAN;
ALTER TABLE container_services ADD COLUMN web_checked_at BIGINT;
