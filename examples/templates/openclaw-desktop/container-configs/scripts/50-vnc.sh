#!/bin/bash
# TigerVNC as a systemd service showing the desktop user's XFCE session on VNC_DISPLAY (:1 =
# TCP 5901). Its password is generated once and saved as the credential `vnc-password`
# (ctforge stores it sealed and shows it on the VM's page); later runs keep it.
set -euo pipefail
[ -n "${CONTAINER_USER:-}" ] || detect_container_user
. /etc/openclaw-desktop/desktop.env
display="${VNC_DISPLAY:-:1}"
home="$(getent passwd "$CONTAINER_USER" | cut -d: -f6 || true)"
home="${home:-/home/$CONTAINER_USER}"
install -d -m 0700 -o "$CONTAINER_USER" -g "$CONTAINER_USER" "$home/.vnc"
if [ ! -s "$home/.vnc/passwd" ]; then
    password="$(generate_password 12)"
    # VNC passwords are at most 8 characters: the first 8 are what counts.
    password="${password:0:8}"
    printf '%s\n' "$password" | vncpasswd -f >"$home/.vnc/passwd"
    chown "$CONTAINER_USER:$CONTAINER_USER" "$home/.vnc/passwd"
    chmod 600 "$home/.vnc/passwd"
    save_credential vnc-password "$password"
    log_info "VNC password generated and saved as the credential vnc-password"
fi
cat >/etc/systemd/system/openclaw-vnc.service <<UNIT
[Unit]
Description=TigerVNC server for the OpenClaw desktop ($CONTAINER_USER, display $display)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$CONTAINER_USER
WorkingDirectory=$home
ExecStartPre=-/usr/bin/tigervncserver -kill $display
ExecStart=/usr/bin/tigervncserver $display -fg -localhost no -SecurityTypes VncAuth -PasswordFile $home/.vnc/passwd -xstartup /usr/bin/startxfce4
ExecStop=/usr/bin/tigervncserver -kill $display
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable openclaw-vnc.service
systemctl restart openclaw-vnc.service
log_info "VNC serves display $display for $CONTAINER_USER"
