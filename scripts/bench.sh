#!/usr/bin/env bash
# Run the benchmarks (bench/) against the system under production settings; print one table.
# Arguments go to python -m bench (for example: bash scripts/bench.sh --quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
if ! command -v wrk >/dev/null 2>&1; then
    printf '\033[1m[bench]\033[0m installing wrk\n'
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; fi
fi
exec .venv/bin/python -m bench "$@"
