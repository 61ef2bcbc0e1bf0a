#!/bin/bash
# OpenClaw OPENCLAW_VERSION (files/desktop.env) from npm, installed for the desktop user (npm's
# prefix in ~/.npm-global, which the runtime's run_as_user puts on PATH), not system-wide. A
# run with the wanted version installed does nothing; another version is replaced.
# OpenClaw is about 600 npm packages: a slow link or an emulated guest takes long.
# ctforge-timeout: 60m
set -euo pipefail
[ -n "${CONTAINER_USER:-}" ] || detect_container_user
. /etc/openclaw-desktop/desktop.env
want="${OPENCLAW_VERSION:-latest}"
case "$want" in
    latest | [0-9]*) ;;
    *) log_error "OPENCLAW_VERSION must be a version or latest, not ${want}"; exit 1 ;;
esac
run_as_user npm config set prefix "/home/$CONTAINER_USER/.npm-global"
installed="$(run_as_user sh -c 'command -v openclaw >/dev/null && openclaw --version' 2>/dev/null || true)"
if [ -n "$installed" ] && { [ "$want" = latest ] || printf '%s' "$installed" | grep -qF "$want"; }; then
    log_info "OpenClaw is installed: $installed"
    exit 0
fi
# npm 12 and later run no package's install scripts unless allowed by name. OpenClaw's own
# (its bundled plugins) and those of the native modules it loads (koffi, tree-sitter-bash) and
# of protobufjs are needed; @google/genai's is a no-op. Older npm runs them all.
allow=()
if [ "$(run_as_user npm --version | cut -d. -f1)" -ge 12 ] 2>/dev/null; then
    allow=(--allow-scripts=openclaw,koffi,tree-sitter-bash,protobufjs)
fi
run_as_user npm install --global --no-audit --no-fund "${allow[@]}" "openclaw@$want"
log_info "OpenClaw installed for $CONTAINER_USER: $(run_as_user openclaw --version 2>/dev/null || echo unknown version)"
