-- Containers by template: the template page's "N containers use it", the delete check and the
-- ON DELETE SET NULL of a deleted template read them without scanning every container.
CREATE INDEX containers_template ON containers (template_id);
