#!/usr/bin/env bash
# ctforge config-manager (run on every boot by ctforge-apply.service; written by ctforge).
# Re-applies the template ctforge pushed into /var/lib/ctforge in the library's order —
# scripts, then files, then packages — with the library's lock and exit codes:
#   0 ok, 1 error, 2 another run holds the lock, 3 configuration error,
#   4 the template (source) is unavailable, 5 conflict (a managed file changed both here and
#     in the template: nothing is applied).
# `--record` only records the checksums of the managed files (ctforge calls it after
# provisioning). State: last-apply (Unix time of the last success), last-result
# ("<time> <code>"), conflicts (one target per line), applied (what was applied: "commit <sha>"
# or "template <name> <hash>"), log in /var/log/config-manager/sync.log.
# Sync on boot (CONFIG_REPO_URL, CONFIG_BRANCH, CONFIG_PATH in config.env, the library's keys):
# the template is fetched with git into $STATE/repo (the cached copy is used when the fetch
# fails; none cached is exit 4) and applied from there: scripts/*.sh in order (minus the ones
# disabled at creation, manifest/skip-scripts), files/ with their .path/.policy sidecars,
# packages/*.apt|apk|dnf|npm|pip and *.custom.
set -uo pipefail
export LC_ALL=C GIT_TERMINAL_PROMPT=0

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

# Sync on boot: fetch the branch into $STATE/repo; 4 when nothing can be fetched or cached.
git_sync() {
    local repo="$STATE/repo"
    if ! command -v git >/dev/null 2>&1; then
        say INFO "installing git (sync on boot)"
        BASH_ENV="$RUNTIME" bash -c 'ensure_installed git' || true
    fi
    if ! command -v git >/dev/null 2>&1; then
        if [ -d "$repo/.git" ]; then
            say WARNING "git is missing: applying the cached copy"
            return 0
        fi
        say ERROR "git is not installed and no copy of the template is cached"
        return 4
    fi
    if [ -d "$repo/.git" ]; then
        if git -C "$repo" fetch -q --depth 1 origin "+refs/heads/$CONFIG_BRANCH:refs/remotes/origin/$CONFIG_BRANCH" &&
            git -C "$repo" reset -q --hard "origin/$CONFIG_BRANCH" --; then
            :
        else
            say WARNING "fetching $CONFIG_REPO_URL ($CONFIG_BRANCH) failed: applying the cached copy"
        fi
    else
        rm -rf "$repo"
        if ! git clone -q --depth 1 --single-branch --branch "$CONFIG_BRANCH" -- "$CONFIG_REPO_URL" "$repo"; then
            say ERROR "cannot fetch $CONFIG_REPO_URL ($CONFIG_BRANCH) and no copy is cached"
            return 4
        fi
    fi
    COMMIT="$(git -C "$repo" rev-parse HEAD)"
    say INFO "template from $CONFIG_REPO_URL ($CONFIG_BRANCH) at commit $COMMIT"
}

# The first non-blank line of a sidecar, trimmed.
first_line() { sed -e 's/\r$//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$1" | grep -m 1 -v '^$' || true; }

# Manifests of the fetched template, in the format ctforge pushes.
git_manifests() {
    local src="$STATE/repo/$CONFIG_PATH" out="$STATE/manifest-git" f name dir policy
    if [ ! -d "$src" ]; then
        say ERROR "$CONFIG_PATH is not in $CONFIG_REPO_URL ($CONFIG_BRANCH)"
        return 4
    fi
    rm -rf "$out"
    mkdir -p "$out"
    : >"$out/scripts"
    : >"$out/files"
    for f in "$src"/scripts/*.sh; do
        [ -f "$f" ] || continue
        if [ -f "$MANIFEST/skip-scripts" ] && grep -qxF "$(basename "$f")" "$MANIFEST/skip-scripts"; then
            say INFO "skipping $(basename "$f") (disabled when the container was created)"
            continue
        fi
        printf '%s\n' "$f" >>"$out/scripts"
    done
    for f in "$src"/files/*; do
        [ -f "$f" ] || continue
        name="$(basename "$f")"
        case "$name" in *.path | *.policy | .* | [Rr][Ee][Aa][Dd][Mm][Ee]*) continue ;; esac
        if [ ! -f "$f.path" ]; then
            say WARNING "files/$name has no $name.path: not deployed"
            continue
        fi
        dir="$(first_line "$f.path")"
        policy=replace
        [ -f "$f.policy" ] && policy="$(first_line "$f.policy")"
        printf '%s\t%s\t%s\t%s\n' "$name" "$f" "${dir%/}/$name" "${policy:-replace}" >>"$out/files"
    done
    MANIFEST="$out"
}

# The package phase of a fetched template: lists one name per line (# comments), .custom
# lines name|check|install[|timeout] (the check decides).
git_packages() {
    local dir="$STATE/repo/$CONFIG_PATH/packages" f name check install limit
    local -a names
    for f in "$dir"/*.apt "$dir"/*.apk "$dir"/*.dnf "$dir"/*.npm "$dir"/*.pip; do
        [ -f "$f" ] || continue
        mapfile -t names < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$f" | grep -v '^$')
        [ "${#names[@]}" -gt 0 ] || continue
        say INFO "installing $(basename "$f"): ${names[*]}"
        case "$f" in
            *.apt)
                BASH_ENV="$RUNTIME" bash -c 'wait_for_apt_lock' || true
                apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${names[@]}"
                ;;
            *.apk) apk add --no-cache "${names[@]}" ;;
            *.dnf) dnf install -y "${names[@]}" ;;
            *.npm) npm install -g "${names[@]}" ;;
            *.pip) pip3 install "${names[@]}" ;;
        esac || return 1
    done
    for f in "$dir"/*.custom; do
        [ -f "$f" ] || continue
        while IFS='|' read -r name check install limit; do
            name="$(printf '%s' "$name" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
            case "$name" in '' | '#'*) continue ;; esac
            if BASH_ENV="$RUNTIME" bash -c "$check" >/dev/null 2>&1; then
                say INFO "$name: already installed"
                continue
            fi
            say INFO "$name: installing"
            if ! BASH_ENV="$RUNTIME" timeout "${limit:-600}" bash -c "$install"; then
                say ERROR "$name: the install command failed"
                return 1
            fi
        done <"$f"
    done
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

# The first boot of a clone of an image (its first-boot program left the marker in /run): the
# image was baked by applying exactly this template, so this boot has nothing to re-apply (the
# next boots re-apply as after a creation from scratch, whose first boot comes before this
# unit exists). Sync on boot still fetches: the branch may have moved since the bake.
if [ -e /run/ctforge-clone-first-boot ] && [ -z "${CONFIG_REPO_URL:-}" ]; then
    say INFO "first boot of a clone of an image: the image applied this template when it was baked; nothing to re-apply"
    exit 0
fi
say INFO "config-manager run (ctforge runtime $RUNTIME)"
COMMIT=""
if [ -n "${CONFIG_REPO_URL:-}" ]; then
    CONFIG_BRANCH="${CONFIG_BRANCH:-main}"
    git_sync || finish "$?"
    git_manifests || finish "$?"
fi
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
if [ -n "$COMMIT" ]; then
    if ! git_packages; then
        say ERROR "installing packages failed"
        finish 1
    fi
elif [ -f "$MANIFEST/packages.sh" ]; then
    if ! BASH_ENV="$RUNTIME" bash "$MANIFEST/packages.sh"; then
        say ERROR "installing packages failed"
        finish 1
    fi
fi

record
[ -z "$COMMIT" ] || printf 'commit %s\n' "$COMMIT" >"$STATE/applied"
. "$RUNTIME"
mark_first_run_complete
finish 0
