#!/usr/bin/env bash
# ctforge config-manager (run on every boot by ctforge-apply.service; written by ctforge).
# Re-applies the template ctforge pushed into /var/lib/ctforge in the library's order —
# scripts, then files, then packages — with the library's lock and exit codes:
#   0 ok, 1 error, 2 another run holds the lock, 3 configuration error,
#   4 the template (source) is unavailable, 5 conflict (a managed file changed both here and
#     in the template: nothing is applied).
# `--record` only records the checksums of the managed files (ctforge calls it after
# provisioning). State: last-apply (Unix time of the last success), last-result
# ("<time> <code>"), conflicts (one target per line), log in /var/log/config-manager/sync.log.
set -uo pipefail

STATE=/var/lib/ctforge
MANIFEST="$STATE/manifest"
RUNTIME=/usr/local/lib/ctforge/runtime-v1.sh
CONFIG=/etc/config-manager/config.env
LOG=/var/log/config-manager/sync.log
LOCK=/run/config-manager.lock

mkdir -p "$(dirname "$LOG")" "$STATE"
exec > >(tee -a "$LOG") 2>&1

say() { printf '[%s] [%-7s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$1" "$2"; }
finish() {
    printf '%s %s\n' "$(date +%s)" "$1" >"$STATE/last-result"
    [ "$1" = 0 ] && date +%s >"$STATE/last-apply"
    say INFO "config-manager finished with exit code $1"
    exit "$1"
}
sum() { if [ -e "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo absent; fi; }

# Checksums of the managed files: target, staged copy's sum, target's sum.
record() {
    local tmp="$STATE/checksums.new" name staged target policy
    : >"$tmp"
    while IFS=$'\t' read -r name staged target policy; do
        [ -n "$name" ] || continue
        printf '%s\t%s\t%s\n' "$target" "$(sum "$staged")" "$(sum "$target")" >>"$tmp"
    done <"$MANIFEST/files"
    mv -f "$tmp" "$STATE/checksums"
}

exec 9>"$LOCK" || finish 1
if ! flock -n 9; then
    say WARNING "another run holds $LOCK"
    exit 2
fi
if [ ! -r "$CONFIG" ] || ! (set -a && . "$CONFIG") >/dev/null 2>&1; then
    say ERROR "the configuration $CONFIG is missing or unreadable"
    finish 3
fi
set -a
. "$CONFIG"
set +a
if [ ! -r "$RUNTIME" ] || [ ! -f "$MANIFEST/files" ] || [ ! -f "$MANIFEST/scripts" ]; then
    say ERROR "the template ctforge pushed is not in $STATE (runtime or manifest missing)"
    finish 4
fi
if [ "${1:-}" = "--record" ]; then
    record
    say INFO "checksums of the managed files recorded"
    exit 0
fi

say INFO "config-manager run (ctforge runtime $RUNTIME)"
# Conflicts: a managed file changed here (target differs from its recorded sum) and in the
# template (staged copy differs from its recorded sum).
: >"$STATE/conflicts.new"
if [ -f "$STATE/checksums" ]; then
    while IFS=$'\t' read -r target staged_sum target_sum; do
        staged="$(awk -F'\t' -v t="$target" '$3 == t { print $2; exit }' "$MANIFEST/files")"
        [ -n "$staged" ] || continue
        if [ "$(sum "$staged")" != "$staged_sum" ] && [ "$(sum "$target")" != "$target_sum" ]; then
            say ERROR "conflict: $target was changed here and in the template"
            printf '%s\n' "$target" >>"$STATE/conflicts.new"
        fi
    done <"$STATE/checksums"
fi
mv -f "$STATE/conflicts.new" "$STATE/conflicts"
if [ -s "$STATE/conflicts" ]; then
    say ERROR "nothing applied: resolve the conflicts (keep or discard the local change) first"
    finish 5
fi

# 1. Scripts, in order; a failing script stops the run.
while IFS= read -r script; do
    [ -n "$script" ] || continue
    say INFO "running $(basename "$script")"
    if ! BASH_ENV="$RUNTIME" bash "$script"; then
        say ERROR "$(basename "$script") failed"
        finish 1
    fi
done <"$MANIFEST/scripts"

# 2. Files, by policy.
stamp="$(date +%Y%m%d%H%M%S)"
while IFS=$'\t' read -r name staged target policy; do
    [ -n "$name" ] || continue
    mkdir -p "$(dirname "$target")"
    case "$policy" in
        default) [ -e "$target" ] || cp "$staged" "$target" ;;
        backup)
            if [ -e "$target" ] && ! cmp -s "$staged" "$target"; then
                cp -p "$target" "$target.bak.$stamp"
            fi
            cp "$staged" "$target"
            ;;
        *) cp "$staged" "$target" ;;
    esac || finish 1
done <"$MANIFEST/files"

# 3. Packages.
if [ -f "$MANIFEST/packages.sh" ]; then
    if ! BASH_ENV="$RUNTIME" bash "$MANIFEST/packages.sh"; then
        say ERROR "installing packages failed"
        finish 1
    fi
fi

record
. "$RUNTIME"
mark_first_run_complete
finish 0
