#!/bin/bash
# Node.js NODE_MAJOR (files/desktop.env, 22 by default) with npm. The script decides where it
# comes from, in this order:
#   1. Debian's own nodejs (and npm) when its candidate is NODE_MAJOR or newer;
#   2. otherwise NodeSource's signed repository for the NODE_MAJOR.x line (Debian 13 ships
#      Node.js 20, so this is what a guest with the internet uses today);
#   3. when NodeSource cannot be reached (a network that allows only Debian's mirror and the
#      npm registry), the official Node.js binaries the npm registry publishes as the package
#      node-linux-<arch> (the newest NODE_MAJOR.x), with npm's own package, both checked
#      against the sha512 integrity the registry records, unpacked under /usr/local.
# Nothing happens when node NODE_MAJOR or newer is already there.
set -euo pipefail
. /etc/openclaw-desktop/desktop.env
want="${NODE_MAJOR:-22}"
case "$want" in
    '' | *[!0-9]*) log_error "NODE_MAJOR must be a number, not ${want}"; exit 1 ;;
esac
major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }
if [ "$(major || echo 0)" -ge "$want" ] 2>/dev/null; then
    log_info "Node.js $(node --version) is installed"
    exit 0
fi

from_debian() {
    wait_for_apt_lock
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
}

from_nodesource() {
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL --max-time 60 https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
        | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg.new || return 1
    mv /etc/apt/keyrings/nodesource.gpg.new /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_${want}.x nodistro main" \
        >/etc/apt/sources.list.d/nodesource.list
    wait_for_apt_lock
    if ! apt-get update; then
        rm -f /etc/apt/sources.list.d/nodesource.list
        return 1
    fi
    wait_for_apt_lock
    # NodeSource's nodejs package carries npm.
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs
}

# The npm registry's package of the official Node.js binaries. python3 (there with cloud-init)
# reads the registry's JSON and checks each tarball's sha512 before anything is unpacked.
from_npm_registry() {
    local registry="${NPM_REGISTRY:-https://registry.npmjs.org}" arch work
    case "$(dpkg --print-architecture)" in
        amd64) arch=x64 ;;
        arm64) arch=arm64 ;;
        *) log_error "no Node.js binary package for $(dpkg --print-architecture)"; return 1 ;;
    esac
    command -v python3 >/dev/null || { log_error "python3 is needed to read the npm registry"; return 1; }
    work="$(mktemp -d)"
    # The newest release of the wanted line, and the newest npm whose engines allow it.
    if ! python3 - "$registry" "node-linux-$arch" "$want" "$work" <<'PY'; then
import base64, hashlib, json, re, sys, urllib.request
registry, package, major, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def fetch(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()

def newest(doc, keep):
    found = []
    for v in doc["versions"]:
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", v)
        if m and keep(int(m.group(1))):
            found.append(tuple(int(x) for x in m.groups()))
    if not found:
        return None
    return "%d.%d.%d" % max(found)

def download(doc, version, name):
    dist = doc["versions"][version]["dist"]
    algo, _, digest = dist["integrity"].partition("-")
    if algo != "sha512":
        sys.exit(f"{name}: the registry gives no sha512 integrity ({algo})")
    data = fetch(dist["tarball"])
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != digest:
        sys.exit(f"{name} {version}: the tarball does not match the registry's sha512")
    with open(f"{work}/{name}.tgz", "wb") as f:
        f.write(data)
    print(f"{name} {version}: {len(data)} bytes, sha512 checked")
    with open(f"{work}/{name}.version", "w") as f:
        f.write(version)

def parse(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3]) + (0,) * (3 - len(re.findall(r"\d+", v)[:3]))

def satisfies(version, spec):
    # npm's engines ranges as npm publishes them: `||` of space-separated `^`, `~`, `>=`,
    # `>`, `<=`, `<`, `=` or bare versions (`x` parts count as 0).
    v = parse(version)
    for alternative in spec.split("||"):
        ok = True
        for c in alternative.split():
            m = re.fullmatch(r"(\^|~|>=|<=|>|<|=)?v?([\dx.*]+)", c)
            if not m:
                ok = False
                break
            op, b = m.group(1) or "=", parse(m.group(2).replace("x", "0").replace("*", "0"))
            ok = {
                "^": b <= v and (v[0] == b[0] if b[0] else v[:2] == b[:2]),
                "~": b <= v and v[:2] == b[:2],
                ">=": v >= b, ">": v > b, "<=": v <= b, "<": v < b,
                "=": v[: len(m.group(2).split("."))] == b[: len(m.group(2).split("."))],
            }[op]
            if not ok:
                break
        if ok:
            return True
    return False

node = json.loads(fetch(f"{registry}/{package}"))
version = newest(node, lambda m: m == major)
if version is None:
    sys.exit(f"the registry has no {package} {major}.x")
download(node, version, "node")
npm = json.loads(fetch(f"{registry}/npm"))
fits = [
    v for v, meta in npm["versions"].items()
    if re.fullmatch(r"\d+\.\d+\.\d+", v)
    and satisfies(version, (meta.get("engines") or {}).get("node", "*").replace("*", ">=0"))
]
if not fits:
    sys.exit(f"no npm release supports Node.js {version}")
download(npm, max(fits, key=parse), "npm")
PY
        rm -rf "$work"
        return 1
    fi
    local version dest
    version="$(cat "$work/node.version")"
    dest="/usr/local/lib/nodejs/v$version"
    rm -rf "$dest.new"
    install -d -m 0755 "$dest.new"
    tar -xzf "$work/node.tgz" -C "$dest.new" --strip-components=1 --no-same-owner
    install -d -m 0755 "$dest.new/lib/node_modules/npm"
    tar -xzf "$work/npm.tgz" -C "$dest.new/lib/node_modules/npm" --strip-components=1 --no-same-owner
    # These binaries trust only the CAs built into Node.js; Debian's nodejs trusts the system's
    # store, where an administrator adds a site's CA (a TLS-inspecting proxy). npm's built-in
    # config points it at that store too.
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$dest.new/lib/node_modules/npm/npmrc"
    fi
    rm -rf "$dest" "$work"
    mv "$dest.new" "$dest"
    ln -sfn "$dest/bin/node" /usr/local/bin/node
    ln -sfn "$dest/lib/node_modules/npm/bin/npm-cli.js" /usr/local/bin/npm
    ln -sfn "$dest/lib/node_modules/npm/bin/npx-cli.js" /usr/local/bin/npx
    hash -r
}

candidate="$(apt-cache policy nodejs | awk '/Candidate:/ { print $2 }' | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')"
if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && [ "$candidate" -ge "$want" ] 2>/dev/null; then
    log_info "Node.js $candidate from Debian"
    from_debian
elif log_info "Debian offers Node.js ${candidate:-none}: using NodeSource's ${want}.x repository" \
    && from_nodesource; then
    :
else
    log_warn "NodeSource cannot be reached: using the official Node.js ${want}.x binaries from the npm registry"
    from_npm_registry || { log_error "Node.js ${want} could not be installed from Debian, NodeSource or the npm registry"; exit 1; }
fi
if [ "$(major || echo 0)" -lt "$want" ] 2>/dev/null; then
    log_error "node is $(node --version 2>/dev/null || echo missing) after the install, not ${want} or newer"
    exit 1
fi
log_info "Node.js $(node --version), npm $(npm --version)"
