#!/usr/bin/env bash
# Run Prometheus's promtool (`bash scripts/promtool.sh check rules deploy/prometheus/alerts.yml`).
#
# Uses promtool from PATH if there is one. Otherwise takes it out of Debian's `prometheus`
# package into .tools/bin, without installing the package: installing it would start a
# Prometheus server (port 9090) that nothing here needs. Exits 3 if promtool cannot be had
# (no Debian package source reachable), so callers can fall back to a weaker check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[promtool]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[promtool] %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v promtool >/dev/null 2>&1; then
    exec promtool "$@"
fi
local_promtool=.tools/bin/promtool
if [ ! -x "$local_promtool" ]; then
    command -v apt-get >/dev/null 2>&1 || { say "apt-get not found: cannot fetch promtool"; exit 3; }
    say "fetching promtool from Debian's prometheus package (not installing it)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"  # apt's download user must be able to write here
    if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
        # No package lists yet (a fresh machine): read them, as root or through sudo.
        (as_root apt-get -o DPkg::Lock::Timeout=600 update -qq) >/dev/null 2>&1 || true
        (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1) || { say "prometheus package not available"; exit 3; }
    fi
    dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
    mkdir -p .tools/bin
    mv "$work/usr/bin/promtool" "$local_promtool"
fi
exec "$local_promtool" "$@"
