#!/usr/bin/env bash
# Sets ctforge up inside a new LXC container on a Proxmox VE host, like the community scripts:
# run it on the host as root. Idempotent: an existing container with the same VMID is reused.
#
#   CTFORGE_BINARY=/path/to/ctforge deploy/install-in-ct.sh [VMID]
#
# Settings (environment): CT_HOSTNAME (ctforge), CT_STORAGE (local-lvm), CT_BRIDGE (vmbr0),
# CT_TEMPLATE (a debian-12 vztmpl volume; the newest one on `local` by default),
# CT_MEMORY (512), CT_CORES (1), CT_DISK (4).
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }
command -v pct >/dev/null || die "pct not found: run this on a Proxmox VE host"
[ "$(id -u)" -eq 0 ] || die "run as root"
BIN="${CTFORGE_BINARY:-$(command -v ctforge || true)}"
[ -n "$BIN" ] && [ -x "$BIN" ] || die "set CTFORGE_BINARY to a built ctforge binary (cargo build --release)"

VMID="${1:-$(pvesh get /cluster/nextid)}"
HOSTNAME="${CT_HOSTNAME:-ctforge}"
STORAGE="${CT_STORAGE:-local-lvm}"
BRIDGE="${CT_BRIDGE:-vmbr0}"
TEMPLATE="${CT_TEMPLATE:-$(pveam list local 2>/dev/null | awk '/debian-12/ {print $1}' | sort | tail -n1)}"
[ -n "$TEMPLATE" ] || die "no debian-12 template on storage local: run 'pveam update && pveam download local debian-12-standard_12.7-1_amd64.tar.zst'"

if pct status "$VMID" >/dev/null 2>&1; then
  echo "container $VMID exists; reusing it"
else
  echo "creating container $VMID ($HOSTNAME) from $TEMPLATE"
  pct create "$VMID" "$TEMPLATE" --hostname "$HOSTNAME" --cores "${CT_CORES:-1}" --memory "${CT_MEMORY:-512}" \
    --rootfs "$STORAGE:${CT_DISK:-4}" --net0 "name=eth0,bridge=$BRIDGE,ip=dhcp" --unprivileged 1 --onboot 1 \
    --features nesting=1 --tags ctforge
fi
[ "$(pct status "$VMID" | awk '{print $2}')" = running ] || pct start "$VMID"
for _ in $(seq 1 60); do pct exec "$VMID" -- true 2>/dev/null && break; sleep 1; done

pct exec "$VMID" -- sh -c 'id ctforge >/dev/null 2>&1 || useradd --system --home /var/lib/ctforge --shell /usr/sbin/nologin ctforge'
pct exec "$VMID" -- install -d -m 0750 /etc/ctforge
pct push "$VMID" "$BIN" /usr/local/bin/ctforge --perms 0755
SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
pct push "$VMID" "$SCRIPT_DIR/ctforge.service" /etc/systemd/system/ctforge.service --perms 0644
pct exec "$VMID" -- sh -c '[ -f /etc/ctforge/ctforge.toml ] || printf "listen = \"0.0.0.0:8080\"\n" > /etc/ctforge/ctforge.toml; chown -R root:ctforge /etc/ctforge; chmod 0640 /etc/ctforge/ctforge.toml'
pct exec "$VMID" -- systemctl daemon-reload
pct exec "$VMID" -- systemctl enable --now ctforge
pct exec "$VMID" -- systemctl restart ctforge

IP=""
for _ in $(seq 1 30); do
  IP="$(pct exec "$VMID" -- sh -c "hostname -I 2>/dev/null | awk '{print \$1}'" || true)"
  [ -n "$IP" ] && break; sleep 1
done
echo "ctforge is running in CT $VMID: http://${IP:-<container-ip>}:8080"
echo "add your cluster to /etc/ctforge/ctforge.toml inside the CT ([[clusters]], see README.md) and restart it"
