#!/usr/bin/env bash
# Set everything up and run the whole test suite: lint, format, types, alert rules, systemd units,
# tests.
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
say "promtool check rules, test rules"
# promtool comes from Debian's prometheus package (scripts/promtool.sh); where it cannot be had
# (exit 3) the rules' structure and metric names are still checked by tests/test_alert_rules.py.
status=0
bash scripts/promtool.sh check rules deploy/prometheus/alerts.yml || status=$?
if [ "$status" -eq 0 ]; then
    bash scripts/promtool.sh test rules deploy/prometheus/alerts_test.yml
elif [ "$status" -eq 3 ]; then
    say "promtool unavailable: alert rules checked by pytest only"
else
    exit "$status"
fi
say "systemd-analyze verify deploy/systemd"
bash scripts/systemd_verify.sh
say "pytest"
pytest "$@"
