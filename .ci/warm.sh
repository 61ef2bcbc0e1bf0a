#!/usr/bin/env bash
# CI entry point: install and start what the tests need, then run the README's test command.
# Idempotent: safe to run again on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time is printed when the next one starts (scripts/test times its own).
ci_start=$SECONDS phase_name="" phase_start=$SECONDS
log() {
  [ -n "$phase_name" ] && printf '== %s took %ss\n' "$phase_name" "$((SECONDS - phase_start))"
  phase_name="$*" phase_start=$SECONDS
  printf '\n== %s\n' "$*"
}

need_pkgs=()
for pkg in postgresql-client redis-tools; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}"
fi

dpkg -s chromium >/dev/null 2>&1 || { log "installing chromium (headless browser tests)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || { log "installing python3-venv (schemathesis for the API tests)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip; }
command -v npm >/dev/null 2>&1 || { log "installing nodejs and npm (axe-core for the browser tests)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

if [ "$(stat -c '%a' /dev/null 2>/dev/null || echo 666)" != "666" ]; then
  echo "warning: /dev/null is not world-writable ($(ls -l /dev/null)); services that drop privileges may fail" >&2
fi

# deploy/build-image is run by the lxc test binary (podman from Debian; no registry is used).
# runc as well: crun refuses hosts with hybrid cgroups (the test picks runc when present).
dpkg -s podman runc >/dev/null 2>&1 || { log "installing podman and runc (the container image test)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc; }
# The lxc test builds ctforge's Debian package from the test build (cargo deb --no-build).
command -v cargo-deb >/dev/null 2>&1 || { log "installing cargo-deb (the .deb test)"; cargo install cargo-deb --locked; }

log "PostgreSQL"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start </dev/null >/tmp/ctforge-ci-pg.log 2>&1 || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

log "Redis"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

log "LXC bridge, apt proxy, OS template"
scripts/setup-lxc.sh  # bridge, apt proxy and Debian 12 template for the lxc e2e test (crates/ctforge-pve-sim)
log "QEMU/KVM and the Debian 12 guest disk"
scripts/setup-vm.sh  # qemu-system-x86 and a cached Debian 12 cloud disk for the real-VM tests (after setup-lxc: bridge, proxy)
log "test suite (README: scripts/test)"
echo "== setup took $((SECONDS - ci_start))s"
echo SETUP-DONE
