# ctforge script runtime, version 1 (ctforge's own implementation of the contract in
# SCRIPT-RUNTIME.md: the variables and functions that templates written for the library's
# config-manager call). Sourced by bash before every template script (BASH_ENV), by
# provisioning, re-apply and the boot unit alike. Written by ctforge; do not edit: the next
# provisioning or re-apply replaces it.

CONFIG_MANAGER_VERSION="ctforge-runtime-1"
CONFIG_MANAGER_ROOT="${CONFIG_MANAGER_ROOT:-/var/lib/ctforge}"
CONFIG_MANAGER_LOG="${CONFIG_MANAGER_LOG:-/var/log/config-manager/sync.log}"
CTFORGE_FIRST_RUN_MARKER="/var/log/config-manager/.first-run-complete"
CTFORGE_CREDENTIALS_FILE="${CTFORGE_CREDENTIALS_FILE:-/etc/infrahaus/credentials}"
export CONFIG_MANAGER_VERSION CONFIG_MANAGER_ROOT CONFIG_MANAGER_LOG

# The boot unit's configuration (also where a template's TEMPLATE_CONTAINER_USER lands as
# CONFIG_CONTAINER_USER); values already in the environment win.
if [ -r /etc/config-manager/config.env ] && [ -z "${CONFIG_CONTAINER_USER+set}" ]; then
    CONFIG_CONTAINER_USER="$(sed -n 's/^CONFIG_CONTAINER_USER=//p' /etc/config-manager/config.env | tail -n 1 | tr -d '"'"'")"
fi

_ctforge_log() {
    local level="$1"
    shift
    printf '[%s] [%-7s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$level" "$*"
}
log_info() { _ctforge_log INFO "$@"; }
log_warn() { _ctforge_log WARNING "$@"; }
log_error() { _ctforge_log ERROR "$@"; }

detect_container_os() {
    local id="" like="" version=""
    if [ -r /etc/os-release ]; then
        id="$(. /etc/os-release && printf '%s' "${ID:-}")"
        like="$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")"
        version="$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")"
    fi
    case "$id" in
        debian | ubuntu | alpine | fedora) ;;
        *)
            case " $like " in
                *" debian "* | *" ubuntu "*) id=debian ;;
                *" rhel "* | *" fedora "* | *" centos "*) id=fedora ;;
                *) id="${id:-unknown}" ;;
            esac
            ;;
    esac
    CONTAINER_OS="$id"
    CONTAINER_OS_VERSION="$version"
    export CONTAINER_OS CONTAINER_OS_VERSION
}

detect_container_user() {
    local user="${CONFIG_CONTAINER_USER:-}"
    if [ -z "$user" ]; then
        user="$(awk -F: '$3 >= 1000 && $3 <= 65533 && $7 !~ /(nologin|false)$/ && $7 != "" { print $1; exit }' /etc/passwd 2>/dev/null)"
    fi
    if [ -z "$user" ]; then
        local d
        for d in /home/*/; do
            [ -d "$d" ] || continue
            user="$(basename "$d")"
            break
        done
    fi
    CONTAINER_USER="${user:-coder}"
    export CONTAINER_USER
}

detect_package_manager() {
    if command -v apt-get >/dev/null 2>&1; then
        _PKG_MGR=apt
    elif command -v apk >/dev/null 2>&1; then
        _PKG_MGR=apk
    elif command -v dnf >/dev/null 2>&1; then
        _PKG_MGR=dnf
    elif command -v yum >/dev/null 2>&1; then
        _PKG_MGR=yum
    else
        _PKG_MGR=unknown
    fi
    export _PKG_MGR
}

detect_first_run() {
    if [ -f "$CTFORGE_FIRST_RUN_MARKER" ]; then
        CONFIG_MANAGER_FIRST_RUN=false
    else
        CONFIG_MANAGER_FIRST_RUN=true
    fi
    export CONFIG_MANAGER_FIRST_RUN
}

mark_first_run_complete() {
    mkdir -p "$(dirname "$CTFORGE_FIRST_RUN_MARKER")" &&
        date '+%Y-%m-%d %H:%M:%S' >"$CTFORGE_FIRST_RUN_MARKER"
}

export_script_env() {
    detect_container_os
    detect_container_user
    detect_package_manager
    detect_first_run
}

is_installed() {
    if [ "$#" -ne 1 ]; then
        log_error "is_installed: exactly one argument expected"
        return 2
    fi
    command -v "$1" >/dev/null 2>&1
}

wait_for_apt_lock() {
    local waited=0
    while _ctforge_apt_locked; do
        if [ "$waited" -ge 120 ]; then
            log_warn "the dpkg/apt lock is still held after ${waited}s"
            return 1
        fi
        [ "$waited" -eq 0 ] && log_info "waiting for the dpkg/apt lock"
        sleep 2
        waited=$((waited + 2))
    done
    return 0
}

_ctforge_apt_locked() {
    local f
    for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
        [ -e "$f" ] || continue
        if command -v fuser >/dev/null 2>&1; then
            fuser "$f" >/dev/null 2>&1 && return 0
        elif pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

ensure_installed() {
    if [ "$#" -ne 1 ]; then
        log_error "ensure_installed: exactly one argument expected"
        return 2
    fi
    local pkg="$1"
    if command -v "$pkg" >/dev/null 2>&1; then
        return 0
    fi
    [ -n "${_PKG_MGR:-}" ] || detect_package_manager
    log_info "installing $pkg with $_PKG_MGR"
    case "$_PKG_MGR" in
        apt)
            wait_for_apt_lock || return 1
            DEBIAN_FRONTEND=noninteractive apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
            ;;
        apk) apk add --no-cache "$pkg" ;;
        dnf) dnf install -y "$pkg" ;;
        yum) yum install -y "$pkg" ;;
        *)
            log_error "ensure_installed: no package manager found for $pkg"
            return 1
            ;;
    esac
}

run_as_user() {
    [ -n "${CONTAINER_USER:-}" ] || detect_container_user
    local home="/home/$CONTAINER_USER" path node
    path="$home/.local/bin:$home/.foundry/bin:$home/.npm-global/bin"
    for node in "$home"/.nvm/versions/node/*/bin; do
        [ -d "$node" ] && path="$path:$node"
        break
    done
    path="$path:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    local extra=()
    [ -n "${EXTENSIONS_GALLERY:-}" ] && extra+=("EXTENSIONS_GALLERY=$EXTENSIONS_GALLERY")
    if command -v sudo >/dev/null 2>&1; then
        sudo -u "$CONTAINER_USER" env HOME="$home" USER="$CONTAINER_USER" PATH="$path" "${extra[@]}" "$@"
    else
        # Without sudo (minimal images): su with the same environment.
        local cmd="" a
        for a in "$@"; do cmd="$cmd $(printf '%q' "$a")"; done
        su -s /bin/bash "$CONTAINER_USER" -c "export HOME=$(printf '%q' "$home") USER=$(printf '%q' "$CONTAINER_USER") PATH=$(printf '%q' "$path") ${extra[*]:+$(printf '%q ' "${extra[@]}")}; $cmd"
    fi
}

generate_password() {
    local len="${1:-16}"
    case "$len" in '' | *[!0-9]*) len=16 ;; esac
    local out=""
    while [ "${#out}" -lt "$len" ]; do
        out="$out$(head -c 256 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"
    done
    printf '%s\n' "${out:0:$len}"
}

save_credential() {
    if [ "$#" -ne 2 ]; then
        log_error "save_credential: KEY and VALUE expected"
        return 2
    fi
    local key="$1" value="$2" file="$CTFORGE_CREDENTIALS_FILE"
    case "$key" in
        '' | *[!A-Za-z0-9_.-]*)
            log_error "save_credential: invalid key: $key"
            return 2
            ;;
    esac
    if [ -d "$file" ]; then
        # An older layout made this path a directory: one file per credential.
        (umask 077 && printf '%s\n' "$value" >"$file/$key")
        return
    fi
    mkdir -p "$(dirname "$file")"
    if [ ! -f "$file" ]; then
        (umask 077 && printf '# Credentials saved by template scripts (KEY=VALUE).\n# Collected by ctforge and stored sealed; keep this file private.\n# Written with save_credential.\n' >"$file")
    fi
    chmod 600 "$file"
    printf '%s=%s\n' "$key" "$value" >>"$file"
}

export_script_env
