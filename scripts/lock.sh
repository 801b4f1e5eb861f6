#!/usr/bin/env bash
# Make the locks: requirements.lock from requirements.txt (production) and
# requirements-dev.lock from requirements-dev.txt (development and tests), each the full set of
# packages with their versions and hashes (pip-tools). Run after changing either input file:
#   bash scripts/lock.sh             keep every locked version that still fits the inputs
#   bash scripts/lock.sh --upgrade   take the newest versions the inputs allow
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[lock]\033[0m %s\n' "$*"; }

[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
if ! .venv/bin/python -c "import piptools" 2>/dev/null; then
    say "installing pip-tools into .venv"
    .venv/bin/python -m pip install --quiet pip-tools==7.6.2
fi
# Against PyPI alone, whatever this machine's pip configuration adds (mirrors, folders of local
# wheels): the hashes in the locks must be those of the files every other machine downloads.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL
compile() {
    say "$2 from $1"
    # --allow-unsafe: pin pip and setuptools too when something depends on them, so an
    # install with --require-hashes never needs an unhashed package.
    .venv/bin/python -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links --resolver backtracking --output-file "$2" "${@:3}" "$1"
}
compile requirements.txt requirements.lock "$@"
compile requirements-dev.txt requirements-dev.lock "$@"
