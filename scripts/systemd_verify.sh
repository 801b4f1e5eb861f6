#!/usr/bin/env bash
# Check the systemd units in deploy/systemd with `systemd-analyze verify`: every directive known
# and well-formed, every command present and executable. The units name their installed paths
# (/opt/orders/venv, /opt/orders/app, /etc/orders/orders.env); they are checked with those paths
# pointing at this repository, its .venv and deploy/systemd/orders.env. Any message fails the
# check: systemd-analyze only warns about an unknown or malformed directive, and exits 0.
# Installs Debian's systemd package (systemd-analyze) when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[systemd]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[systemd] %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
[ -x .venv/bin/gunicorn ] || die "run scripts/bootstrap.sh first (the units' commands come from .venv)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in deploy/systemd/*.service; do
    sed -e "s#/opt/orders/venv#$PWD/.venv#g" \
        -e "s#/opt/orders/app#$PWD#g" \
        -e "s#/etc/orders/orders.env#$PWD/deploy/systemd/orders.env#g" \
        "$unit" > "$work/$(basename "$unit")"
done
if ! output=$(systemd-analyze verify "$work"/*.service 2>&1) || [ -n "$output" ]; then
    printf '%s\n' "${output//$work\//deploy/systemd/}" >&2
    die "systemd-analyze verify found problems in deploy/systemd"
fi
say "deploy/systemd: $(cd deploy/systemd && echo *.service) verified"
