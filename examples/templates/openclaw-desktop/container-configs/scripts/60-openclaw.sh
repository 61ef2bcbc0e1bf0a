#!/bin/bash
# OpenClaw from npm, installed for the desktop user (npm's prefix in ~/.npm-global, which the
# runtime's run_as_user puts on PATH), not system-wide.
set -euo pipefail
[ -n "${CONTAINER_USER:-}" ] || detect_container_user
run_as_user npm config set prefix "/home/$CONTAINER_USER/.npm-global"
if run_as_user sh -c 'command -v openclaw' >/dev/null 2>&1; then
    log_info "OpenClaw is installed: $(run_as_user openclaw --version 2>/dev/null || echo unknown version)"
    exit 0
fi
run_as_user npm install --global openclaw
log_info "OpenClaw installed for $CONTAINER_USER: $(run_as_user openclaw --version 2>/dev/null || echo unknown version)"
