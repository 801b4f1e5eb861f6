#!/usr/bin/env bash
# Set everything up and run the whole test suite: lint, format, types, tests.
# Extra arguments go to pytest (for example: bash scripts/test.sh -k idempotency).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE=config.settings.test

say() { printf '\033[1m[test]\033[0m %s\n' "$*"; }
say "ruff check"
ruff check .
say "ruff format --check"
ruff format --check .
say "mypy"
mypy
say "pytest"
pytest "$@"
