#!/usr/bin/env bash
# Sets ctforge up inside a new LXC container on a Proxmox VE host, like the community scripts:
# run it on the host as root. Idempotent: an existing container with the same VMID is reused.
#
#   CTFORGE_DEB=/path/to/ctforge_<version>_amd64.deb deploy/install-in-ct.sh [VMID]
#
# It installs ctforge's Debian package (`cargo deb -p ctforge`; default: the newest
# target/debian/ctforge_*.deb of this checkout) in the CT: the package creates the `ctforge`
# user, the hardened systemd units and /etc/ctforge/ctforge.toml (a conffile); the script sets
# `listen` there if it is unset and starts the service the package enabled.
#
# Settings (environment): CT_HOSTNAME (ctforge), CT_STORAGE (local-lvm), CT_BRIDGE (vmbr0),
# CT_TEMPLATE (a debian-12 vztmpl volume; the newest one on `local` by default),
# CT_MEMORY (512), CT_CORES (1), CT_DISK (4).
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }
command -v pct >/dev/null || die "pct not found: run this on a Proxmox VE host"
[ "$(id -u)" -eq 0 ] || die "run as root"
SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
DEB="${CTFORGE_DEB:-$(ls -t "$SCRIPT_DIR"/../target/debian/ctforge_*.deb 2>/dev/null | head -n1 || true)}"
[ -n "$DEB" ] && [ -f "$DEB" ] || die "set CTFORGE_DEB to ctforge's Debian package (cargo install cargo-deb; cargo deb -p ctforge)"

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

pct push "$VMID" "$DEB" /tmp/ctforge.deb --perms 0644
# apt resolves the package's dependencies (all part of a Debian 12 CT already); an installed
# ctforge is upgraded in place, keeping its data and edited configuration.
pct exec "$VMID" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  -o Dpkg::Options::=--force-confold /tmp/ctforge.deb
pct exec "$VMID" -- rm -f /tmp/ctforge.deb
# Reachable from the network by default in a CT (the package's default is loopback only); a
# listen line the admin wrote is kept. Top of the file: before any [table].
pct exec "$VMID" -- sh -c 'grep -q "^listen *=" /etc/ctforge/ctforge.toml || sed -i "1i listen = \"0.0.0.0:8080\"" /etc/ctforge/ctforge.toml'
pct exec "$VMID" -- systemctl enable ctforge
pct exec "$VMID" -- systemctl restart ctforge

IP=""
for _ in $(seq 1 30); do
  IP="$(pct exec "$VMID" -- sh -c "hostname -I 2>/dev/null | awk '{print \$1}'" || true)"
  [ -n "$IP" ] && break; sleep 1
done
echo "ctforge is running in CT $VMID: http://${IP:-<container-ip>}:8080"
echo "add your cluster to /etc/ctforge/ctforge.toml inside the CT ([[clusters]], see README.md) and restart it"
