#!/usr/bin/env bash
# Run the benchmarks (bench/) against the system under production settings; print one table.
# Arguments go to python -m bench (for example: bash scripts/bench.sh --quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh

say() { printf '\033[1m[bench]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[bench] %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v wrk >/dev/null 2>&1 || apt_install wrk
exec .venv/bin/python -m bench "$@"
