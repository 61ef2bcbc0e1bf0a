#!/bin/bash
# Node.js 22. The script decides where it comes from: Debian's own nodejs when its candidate
# is 22 or newer, otherwise NodeSource's signed repository for the 22.x line (Debian 13 ships
# Node.js 20, so NodeSource is what it uses today). Nothing happens when node 22+ is there.
set -euo pipefail
major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }
if [ "$(major || echo 0)" -ge 22 ] 2>/dev/null; then
    log_info "Node.js $(node --version) is installed"
    exit 0
fi
candidate="$(apt-cache policy nodejs | awk '/Candidate:/ { print $2 }' | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')"
if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && [ "$candidate" -ge 22 ] 2>/dev/null; then
    log_info "Node.js $candidate from Debian"
else
    log_info "Debian offers Node.js ${candidate:-none}: using NodeSource's 22.x repository"
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
        | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_22.x nodistro main" \
        >/etc/apt/sources.list.d/nodesource.list
    wait_for_apt_lock
    apt-get update
fi
wait_for_apt_lock
DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs
log_info "Node.js $(node --version), npm $(npm --version)"
