#!/usr/bin/env bash
# Prepare this machine for the lxc backend of `ctforge sim` (crates/ctforge-pve-sim).
#
# Idempotent, run as root:
#   1. installs lxc, mmdebstrap, debootstrap, apt-cacher-ng, iproute2, zstd when missing;
#   2. creates the bridge $CTFORGE_SIM_BRIDGE (default ctfbr0) with $CTFORGE_SIM_BRIDGE_ADDR
#      (default 10.151.0.1/24), a private range of our own; nothing is routed or NATed:
#      containers only reach the bridge address;
#   3. starts apt-cacher-ng listening on 127.0.0.1 and the bridge address, port 3142, with
#      its Debian backend set to http://deb.debian.org/debian/ (containers cannot reach the
#      mirror directly; the proxy can);
#   3b. puts a stand-in for the internet on the bridge (see below): a DNS server (dnsmasq)
#      answering every name with the bridge address, and 8.8.8.8 answering ping;
#   3c. lets guests reach the npm registry (https://registry.npmjs.org) through that stand-in:
#      haproxy on the bridge's port 443 passes TLS whose server name is the registry's through
#      to the real registry, untouched (the guest checks the registry's own certificate), and
#      closes every other TLS connection;
#   4. builds a Debian 12 (bookworm) root filesystem once (minbase + systemd, sshd, iproute2,
#      ca-certificates, iputils-ping as in Proxmox's standard template) and caches it as
#      $CTFORGE_SIM_CACHE/debian-12.tar.zst (rebuilt when its recipe version changes)
#      (default /var/cache/ctforge-sim): console-getty masked, machine-id emptied, no SSH
#      host keys (the simulator generates them per container).
#
# Prints the seconds each step took. `ctforge sim --backend lxc --setup-lxc` runs this
# same script (embedded in the binary).
set -euo pipefail
# dpkg -s also succeeds for a removed package whose configuration files remain: ask for "installed".
installed() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || return 1
  done
}

BRIDGE="${CTFORGE_SIM_BRIDGE:-ctfbr0}"
BRIDGE_ADDR="${CTFORGE_SIM_BRIDGE_ADDR:-10.151.0.1/24}"
BRIDGE_IP="${BRIDGE_ADDR%/*}"
CACHE="${CTFORGE_SIM_CACHE:-/var/cache/ctforge-sim}"
TEMPLATE="$CACHE/debian-12.tar.zst"
MIRROR="${CTFORGE_SIM_MIRROR:-http://deb.debian.org/debian/}"
ACNG_PORT=3142

log() { printf '== setup-lxc: %s\n' "$*"; }
die() { printf 'setup-lxc: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "must run as root (creates a bridge and starts apt-cacher-ng)"

if [ "$(stat -c '%a' /dev/null 2>/dev/null || echo 666)" != "666" ]; then
  printf 'setup-lxc: warning: /dev/null is not world-writable (%s); daemons are started with stdio redirected to files\n' \
    "$(ls -l /dev/null)" >&2
fi

# 1. packages
t0=$(now)
need=()
for p in lxc mmdebstrap debootstrap apt-cacher-ng iproute2 zstd openssh-client dnsmasq-base haproxy; do
  installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/tmp/ctforge-setup-lxc-apt.log 2>&1 \
    || { cat /tmp/ctforge-setup-lxc-apt.log >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >>/tmp/ctforge-setup-lxc-apt.log 2>&1 \
    || { tail -n 30 /tmp/ctforge-setup-lxc-apt.log >&2; die "apt-get install failed"; }
fi
log "packages ready ($(secs "$t0") s)"

# 2. bridge (ours only)
if ! ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  ip link add name "$BRIDGE" type bridge
fi
if ! ip -4 addr show dev "$BRIDGE" | grep -qw "inet $BRIDGE_ADDR"; then
  ip addr add "$BRIDGE_ADDR" dev "$BRIDGE"
fi
ip link set dev "$BRIDGE" up
log "bridge $BRIDGE $BRIDGE_ADDR up"

# 3. apt-cacher-ng on the bridge address
mkdir -p /etc/apt-cacher-ng
printf '%s\n' "$MIRROR" >/etc/apt-cacher-ng/backends_debian
cat >/etc/apt-cacher-ng/zz-ctforge.conf <<EOF
# Written by ctforge scripts/setup-lxc.sh: listen on loopback and the simulator bridge.
Port: $ACNG_PORT
BindAddress: 127.0.0.1 $BRIDGE_IP
EOF
acng_up() { (exec 3<>"/dev/tcp/$BRIDGE_IP/$ACNG_PORT") 2>/dev/null; }
if ! acng_up; then
  mkdir -p /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng
  chown apt-cacher-ng:apt-cacher-ng /run/apt-cacher-ng /var/cache/apt-cacher-ng /var/log/apt-cacher-ng 2>/dev/null || true
  # A stale instance (e.g. started by the package with another config) is ours to replace.
  if [ -s /run/apt-cacher-ng/pid ]; then
    kill "$(cat /run/apt-cacher-ng/pid)" 2>/dev/null || true
    sleep 1
  fi
  # stdio to files: /dev/null may not be writable for the unprivileged daemon.
  : >/var/log/apt-cacher-ng/ctforge.stdin
  start-stop-daemon --start --oknodo --chuid apt-cacher-ng --exec /usr/sbin/apt-cacher-ng -- \
    -c /etc/apt-cacher-ng pidfile=/run/apt-cacher-ng/pid SocketPath=/run/apt-cacher-ng/socket \
    </var/log/apt-cacher-ng/ctforge.stdin >/var/log/apt-cacher-ng/ctforge.out 2>&1
  for _ in $(seq 1 50); do acng_up && break; sleep 0.2; done
  acng_up || { cat /var/log/apt-cacher-ng/ctforge.out >&2 || true; die "apt-cacher-ng is not listening on $BRIDGE_IP:$ACNG_PORT"; }
fi
log "apt-cacher-ng on http://$BRIDGE_IP:$ACNG_PORT (backend $MIRROR)"

# 3b. A stand-in for the internet. Containers on a Proxmox node reach the internet; these
# cannot (nothing leaves the bridge). Templates check connectivity before they start (the
# library's 00-pre-checks.sh pings 8.8.8.8 and resolves github.com), so the bridge stands in
# for it: every name resolves to the bridge address (where only the apt proxy answers, so a
# download fails with "connection refused", as a blocked firewall would), and 8.8.8.8 is an
# address of the bridge, so it answers ping. The host's own resolver is untouched.
STANDIN_PING="${CTFORGE_SIM_PING_ADDR:-8.8.8.8}"
if ! ip -4 addr show dev "$BRIDGE" | grep -qw "inet $STANDIN_PING/32"; then
  ip addr add "$STANDIN_PING/32" dev "$BRIDGE"
fi
DNS_PID=/run/ctforge-sim-dnsmasq.pid
if ! { [ -s "$DNS_PID" ] && kill -0 "$(cat "$DNS_PID")" 2>/dev/null; }; then
  dnsmasq --conf-file=/dev/null --bind-interfaces --listen-address="$BRIDGE_IP" --port=53 \
    --no-resolv --no-hosts --address="/#/$BRIDGE_IP" --user=nobody --group=nogroup \
    --pid-file="$DNS_PID" </dev/null >/tmp/ctforge-setup-lxc-dnsmasq.log 2>&1 \
    || { cat /tmp/ctforge-setup-lxc-dnsmasq.log >&2; die "dnsmasq did not start on $BRIDGE_IP:53"; }
fi
log "internet stand-in: DNS on $BRIDGE_IP:53 (every name -> $BRIDGE_IP), $STANDIN_PING answers ping"

# 3c. The npm registry. Templates install Node.js packages from it (OpenClaw), and a guest
# on Proxmox reaches it directly. Here the DNS stand-in sends registry.npmjs.org to the bridge,
# where haproxy looks only at the TLS ClientHello's server name: the registry's is passed
# through to the real registry byte for byte (no certificate of ours: the guest verifies the
# registry's own), any other name is closed, as a firewall would.
NPM_REGISTRY_HOST="${CTFORGE_SIM_NPM_REGISTRY:-registry.npmjs.org}"
HAPROXY_DIR=/etc/ctforge-sim
HAPROXY_CFG="$HAPROXY_DIR/haproxy.cfg"
HAPROXY_PID=/run/ctforge-sim-haproxy.pid
mkdir -p "$HAPROXY_DIR"
cat >"$HAPROXY_CFG.new" <<EOF
# Written by ctforge scripts/setup-lxc.sh: TLS on $BRIDGE_IP:443 for $NPM_REGISTRY_HOST only.
global
    maxconn 512
defaults
    mode tcp
    timeout connect 10s
    timeout client 5m
    timeout server 5m
frontend standin_tls
    bind $BRIDGE_IP:443
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend npm_registry if { req_ssl_sni -i $NPM_REGISTRY_HOST }
    default_backend refused
backend npm_registry
    server registry $NPM_REGISTRY_HOST:443
backend refused
    tcp-request content reject
EOF
haproxy_up() { [ -s "$HAPROXY_PID" ] && kill -0 "$(head -n1 "$HAPROXY_PID")" 2>/dev/null; }
if haproxy_up && cmp -s "$HAPROXY_CFG.new" "$HAPROXY_CFG"; then
  rm -f "$HAPROXY_CFG.new"
else
  mv "$HAPROXY_CFG.new" "$HAPROXY_CFG"
  if haproxy_up; then kill "$(head -n1 "$HAPROXY_PID")" 2>/dev/null || true; sleep 0.5; fi
  haproxy -c -q -f "$HAPROXY_CFG" || die "haproxy rejects $HAPROXY_CFG"
  haproxy -D -f "$HAPROXY_CFG" -p "$HAPROXY_PID" </dev/null >/tmp/ctforge-setup-lxc-haproxy.log 2>&1 \
    || { cat /tmp/ctforge-setup-lxc-haproxy.log >&2; die "haproxy did not start on $BRIDGE_IP:443"; }
fi
log "npm registry through the stand-in: TLS for $NPM_REGISTRY_HOST on $BRIDGE_IP:443 passed through"

# 4. Debian 12 template, built once per recipe version (bump RECIPE when the list changes)
RECIPE=2
if [ -s "$TEMPLATE" ] && [ "$(cat "$TEMPLATE.recipe" 2>/dev/null || echo 1)" = "$RECIPE" ]; then
  log "template $TEMPLATE cached ($(du -h "$TEMPLATE" | cut -f1))"
else
  t1=$(now)
  mkdir -p "$CACHE"
  tmp="$CACHE/.debian-12.$$.tar.zst"
  trap 'rm -f "$tmp"' EXIT
  log "building $TEMPLATE with mmdebstrap (about a minute and a half)"
  mmdebstrap --variant=minbase --mode=root \
    --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates,procps,less,iputils-ping \
    --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/console-getty.service"' \
    --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/getty@tty1.service"' \
    --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/systemd-journald-audit.socket"' \
    --customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='printf "ctforge-template\n" > "$1/etc/hostname"' \
    bookworm "$tmp" "$MIRROR" </dev/null >/tmp/ctforge-setup-lxc-mmdebstrap.log 2>&1 \
    || { tail -n 40 /tmp/ctforge-setup-lxc-mmdebstrap.log >&2; die "mmdebstrap failed"; }
  mv -f "$tmp" "$TEMPLATE"
  printf '%s\n' "$RECIPE" >"$TEMPLATE.recipe"
  trap - EXIT
  log "template built in $(secs "$t1") s ($(du -h "$TEMPLATE" | cut -f1))"
fi
log "done in $(secs "$t0") s"
