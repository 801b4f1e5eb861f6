#!/usr/bin/env bash
# Make PgBouncer ready for the tests that run the system through it (tests/flows/pgbouncer/):
# /usr/sbin/pgbouncer from Debian's package. Safe to run again and again: a machine where it is
# installed only gets a check. Installing needs root (or sudo). The tests start PgBouncers of
# their own, on free ports; they never use the package's service (port 6432).
set -euo pipefail

say() { printf '\033[1m[pgbouncer]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[pgbouncer] %s\033[0m\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -x /usr/sbin/pgbouncer ]; then
    exit 0
fi
apt_install --no-install-recommends pgbouncer
[ -x /usr/sbin/pgbouncer ] || die "pgbouncer still missing after install"
say "$(/usr/sbin/pgbouncer --version | head -n 1)"
