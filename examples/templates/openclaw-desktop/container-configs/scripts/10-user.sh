#!/bin/bash
# The desktop user: TEMPLATE_CONTAINER_USER (CONTAINER_USER), created when cloud-init did not
# create it already (the wizard's cloud-init user may be another one), with sudo rights.
set -euo pipefail
[ -n "${CONTAINER_USER:-}" ] || detect_container_user
if ! id "$CONTAINER_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --groups sudo "$CONTAINER_USER"
    log_info "created the desktop user $CONTAINER_USER"
fi
systemctl enable --now qemu-guest-agent || log_warn "the guest agent unit could not be enabled"
