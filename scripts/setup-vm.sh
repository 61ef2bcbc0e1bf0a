#!/usr/bin/env bash
# Prepare this machine for the real VM backend of `ctforge sim --backend lxc` (crates/ctforge-pve-sim):
# QEMU/KVM guests next to the LXC containers, on the same bridge with the same apt proxy.
#
# Idempotent, run as root, after scripts/setup-lxc.sh (bridge, apt-cacher-ng, DNS stand-in):
#   1. installs qemu-system-x86, qemu-utils, genisoimage, mmdebstrap, e2fsprogs when missing;
#   2. checks /dev/kvm;
#   3. builds a Debian 12 (bookworm) guest disk once from Debian packages only (no image
#      download): mmdebstrap through the apt proxy with the cloud kernel, cloud-init,
#      qemu-guest-agent, openssh-server, ifupdown and resolvconf (which puts the nameservers
#      cloud-init renders as `dns-nameservers` into /etc/resolv.conf), cloud-init's locale set
#      to the built-in C.UTF-8 (its default, en_US.UTF-8, is not generated here, and its locale
#      module failed the first boot); an ext4 filesystem labelled
#      `cloudimg-rootfs` made from that tree (`mkfs.ext4 -d`, no loop mounts), converted to
#      qcow2. The kernel and initrd are kept beside it: the backend boots them directly
#      (`-kernel/-initrd`, faster than a boot loader). The result is
#      $CTFORGE_SIM_CACHE/import/debian-12-genericcloud-amd64.qcow2 (+ .vmlinuz, .initrd),
#      the volume `local:import/debian-12-genericcloud-amd64.qcow2` of the simulator. It is
#      rebuilt when its recipe version changes. The Debian 13 volume name points at the same
#      disk (a symlink): the simulator's real backend has one guest OS;
#   4. probes whether KVM really runs a guest (boots the kernel for up to 20 s) and records
#      `kvm` or `tcg` in $CTFORGE_SIM_CACHE/import/accel, which the backend follows.
#
# Prints the seconds each step took.
set -euo pipefail

BRIDGE_ADDR="${CTFORGE_SIM_BRIDGE_ADDR:-10.151.0.1/24}"
BRIDGE_IP="${BRIDGE_ADDR%/*}"
CACHE="${CTFORGE_SIM_CACHE:-/var/cache/ctforge-sim}"
IMPORT="$CACHE/import"
NAME=debian-12-genericcloud-amd64
IMAGE="$IMPORT/$NAME.qcow2"
MIRROR="${CTFORGE_SIM_MIRROR:-http://deb.debian.org/debian/}"
ACNG_PORT=3142

log() { printf '== setup-vm: %s\n' "$*"; }
die() { printf 'setup-vm: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, builds the guest disk)"

# 1. packages
t0=$(now)
# Checked by the commands used, not by package (dpkg also knows removed packages).
tools="qemu-system-x86:qemu-system-x86_64 qemu-utils:qemu-img genisoimage:genisoimage mmdebstrap:mmdebstrap e2fsprogs:mkfs.ext4"
missing() { for t in $tools; do command -v "${t#*:}" >/dev/null 2>&1 || printf '%s ' "${t%%:*}"; done; }
need=($(missing))
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/tmp/ctforge-setup-vm-apt.log 2>&1 \
    || { cat /tmp/ctforge-setup-vm-apt.log >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >>/tmp/ctforge-setup-vm-apt.log 2>&1 \
    || { tail -n 30 /tmp/ctforge-setup-vm-apt.log >&2; die "apt-get install failed"; }
fi
# Installing Debian's qemu-system-x86 removes a newer qemu-utils a machine may have (from
# backports: the versions must match), and qemu-img with it: then install the matching one.
if ! command -v qemu-img >/dev/null; then
  log "qemu-img is gone (a qemu-utils of another version was removed): installing Debian's"
  apt-get install -y -qq --no-install-recommends qemu-utils </dev/null >>/tmp/ctforge-setup-vm-apt.log 2>&1 \
    || { tail -n 30 /tmp/ctforge-setup-vm-apt.log >&2; die "apt-get install qemu-utils failed"; }
fi
still="$(missing)"
[ -z "$still" ] || die "still missing after apt-get install: $still(see /tmp/ctforge-setup-vm-apt.log)"
log "packages ready ($(secs "$t0") s)"

# 2. KVM
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  log "/dev/kvm usable"
else
  printf 'setup-vm: warning: /dev/kvm is missing or not usable: VM tests will skip\n' >&2
fi

# Through the apt proxy when setup-lxc.sh started it (the same cache the guests use).
PROXY_MIRROR="$MIRROR"
if (exec 3<>"/dev/tcp/$BRIDGE_IP/$ACNG_PORT") 2>/dev/null; then
  PROXY_MIRROR="http://$BRIDGE_IP:$ACNG_PORT/${MIRROR#http://}"
fi

# 3. the guest disk, built once per recipe version (bump RECIPE when the recipe changes)
RECIPE=3
if [ -s "$IMAGE" ] && [ -s "$IMPORT/$NAME.vmlinuz" ] && [ -s "$IMPORT/$NAME.initrd" ] \
  && [ "$(cat "$IMAGE.recipe" 2>/dev/null || echo 0)" = "$RECIPE" ]; then
  log "guest disk $IMAGE cached ($(du -h "$IMAGE" | cut -f1))"
else
  t1=$(now)
  mkdir -p "$IMPORT"
  work="$CACHE/.vm-build.$$"
  rm -rf "$work"
  mkdir -p "$work"
  trap 'rm -rf "$work"' EXIT
  log "building $IMAGE with mmdebstrap (a few minutes)"
  mmdebstrap --variant=minbase --mode=root \
    --include=systemd,systemd-sysv,dbus,udev,kmod,linux-image-cloud-amd64,initramfs-tools,cloud-init,qemu-guest-agent,openssh-server,ifupdown,resolvconf,isc-dhcp-client,iproute2,ca-certificates,procps,less,iputils-ping,sudo,curl,e2fsprogs,cloud-guest-utils \
    --customize-hook='printf "LABEL=cloudimg-rootfs / ext4 defaults,discard 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='printf "datasource_list: [ NoCloud, None ]\n# C.UTF-8 is built in; en_US.UTF-8 is not generated in this minimal tree.\nlocale: C.UTF-8\n" > "$1/etc/cloud/cloud.cfg.d/90_ctforge.cfg"' \
    --customize-hook='printf "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n" > "$1/etc/network/interfaces"' \
    --customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='printf "debian\n" > "$1/etc/hostname"' \
    --customize-hook='cp "$1"/boot/vmlinuz-* "$1/../vmlinuz"; cp "$1"/boot/initrd.img-* "$1/../initrd"' \
    bookworm "$work/rootfs" "$PROXY_MIRROR" </dev/null >/tmp/ctforge-setup-vm-mmdebstrap.log 2>&1 \
    || { tail -n 40 /tmp/ctforge-setup-vm-mmdebstrap.log >&2; die "mmdebstrap failed"; }
  # The sources inside point at the real mirror; the guests reach it through the proxy
  # cloud-init configures.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" \
    >"$work/rootfs/etc/apt/sources.list"
  log "root filesystem built in $(secs "$t1") s ($(du -sh "$work/rootfs" | cut -f1))"
  t2=$(now)
  truncate -s 2G "$work/root.raw"
  mkfs.ext4 -q -L cloudimg-rootfs -d "$work/rootfs" "$work/root.raw" \
    || die "mkfs.ext4 -d failed"
  qemu-img convert -O qcow2 "$work/root.raw" "$work/$NAME.qcow2"
  mv -f "$work/vmlinuz" "$IMPORT/$NAME.vmlinuz"
  mv -f "$work/initrd" "$IMPORT/$NAME.initrd"
  mv -f "$work/$NAME.qcow2" "$IMAGE"
  printf '%s\n' "$RECIPE" >"$IMAGE.recipe"
  ln -sf "$NAME.qcow2" "$IMPORT/debian-13-genericcloud-amd64.qcow2"
  ln -sf "$NAME.vmlinuz" "$IMPORT/debian-13-genericcloud-amd64.vmlinuz"
  ln -sf "$NAME.initrd" "$IMPORT/debian-13-genericcloud-amd64.initrd"
  rm -rf "$work"
  trap - EXIT
  log "guest disk written in $(secs "$t2") s ($(du -h "$IMAGE" | cut -f1))"
fi
# 4. Does KVM run guests here? Some nested hosts offer /dev/kvm whose vCPUs never run; the
# backend then emulates (TCG, much slower). The answer is cached beside the disk.
ACCEL=tcg
if [ -c /dev/kvm ]; then
  probe="$(mktemp)"
  timeout 20 qemu-system-x86_64 -machine pc,accel=kvm -cpu host,-arch-capabilities -m 128 \
    -kernel "$IMPORT/$NAME.vmlinuz" -append "console=ttyS0 panic=-1" -no-reboot \
    -display none -nodefaults -serial "file:$probe" -nic none </dev/null >/dev/null 2>&1 || true
  grep -q "Linux version" "$probe" && ACCEL=kvm
  rm -f "$probe"
fi
printf '%s\n' "$ACCEL" >"$IMPORT/accel"
if [ "$ACCEL" = kvm ]; then
  log "KVM runs guests"
elif [ -d /sys/module/kvm_pvm ]; then
  # A nested host without VMX/SVM whose /dev/kvm is PVM (pagetable-based virtual machines):
  # it runs only kernels built as PVM guests (CONFIG_PVM_GUEST), and Debian's are not.
  printf 'setup-vm: warning: /dev/kvm is kvm-pvm (no VMX/SVM here), which boots only PVM guest kernels, not Debian'"'"'s; VMs are emulated (TCG, slow)\n' >&2
else
  printf 'setup-vm: warning: KVM does not run guests here; VMs are emulated (TCG, slow)\n' >&2
fi
log "done in $(secs "$t0") s"
