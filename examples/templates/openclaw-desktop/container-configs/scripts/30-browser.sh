#!/bin/bash
# The browser. Chromium comes from Debian (packages/desktop.apt) and is the default. Google
# Chrome is the option: set BROWSER=google-chrome in files/desktop.env (deployed to
# /etc/openclaw-desktop/desktop.env) and this script adds Google's signed repository and
# installs google-chrome-stable, then makes it the default browser.
set -euo pipefail
. /etc/openclaw-desktop/desktop.env
browser="${BROWSER:-chromium}"
if [ "$browser" = chromium ]; then
    update-alternatives --set x-www-browser /usr/bin/chromium 2>/dev/null || true
    log_info "browser: Chromium from Debian"
elif [ "$browser" = google-chrome ]; then
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://dl.google.com/linux/linux_signing_key.pub \
        | gpg --dearmor --yes -o /etc/apt/keyrings/google-chrome.gpg
    echo "deb [arch=amd64 signed-by=/etc/apt/keyrings/google-chrome.gpg] https://dl.google.com/linux/chrome/deb/ stable main" \
        >/etc/apt/sources.list.d/google-chrome.list
    wait_for_apt_lock
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y google-chrome-stable
    update-alternatives --set x-www-browser /usr/bin/google-chrome-stable 2>/dev/null || true
    log_info "browser: Google Chrome from Google's repository"
else
    log_error "BROWSER must be chromium or google-chrome, not ${browser}"
    exit 1
fi
