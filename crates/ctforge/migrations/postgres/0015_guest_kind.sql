-- Virtual machines: what a record is, a container (`lxc`, every record before this) or a QEMU
-- virtual machine (`qemu`), so creation, lifecycle and pages use the matching endpoints.
ALTER TABLE containers ADD COLUMN kind TEXT NOT NULL DEFAULT 'lxc';
