#!/bin/bash
# XFCE with LightDM logging the desktop user in automatically on boot.
set -euo pipefail
[ -n "${CONTAINER_USER:-}" ] || detect_container_user
. /etc/openclaw-desktop/desktop.env
mkdir -p /etc/lightdm/lightdm.conf.d
cat >/etc/lightdm/lightdm.conf.d/50-openclaw-autologin.conf <<CONF
[Seat:*]
autologin-user=$CONTAINER_USER
autologin-user-timeout=0
autologin-session=xfce
user-session=xfce
CONF
# LightDM's auto-login needs the user in the autologin group.
getent group autologin >/dev/null || groupadd --system autologin
usermod -aG autologin "$CONTAINER_USER"
systemctl set-default graphical.target
systemctl enable lightdm
log_info "XFCE with auto-login for $CONTAINER_USER"
