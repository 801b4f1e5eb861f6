#!/usr/bin/env bash
# Create the virtualenv (.venv, Python 3.11), install requirements-dev.lock (production's packages
# and the development and test tools, every one pinned and checked against its hash) when it
# changed, and make the services ready. Sourced by run.sh and test.sh; safe to run again and again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_python() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ]; then
    PYTHON=$(find_python) || die "Python 3.11 is required"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
    say "created .venv with $("$PYTHON" --version)"
fi

stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements-dev.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    say "installing Python dependencies (requirements-dev.lock)"
    # --require-hashes: a package whose file is not the one locked is refused, not installed.
    .venv/bin/python -m pip install --quiet --require-hashes -r requirements-dev.lock
    echo "$wanted" > "$stamp"
fi

bash scripts/services.sh
