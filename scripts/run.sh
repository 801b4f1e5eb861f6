#!/usr/bin/env bash
# Set everything up and run web (gunicorn), worker and beat together in the foreground.
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
mkdir -p .run

export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}
export PORT=${PORT:-8000}
export PATH="$PWD/.venv/bin:$PATH"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }
say "applying migrations"
python manage.py migrate --no-input
python manage.py collectstatic --no-input -v 0
say "loading demo data"
python manage.py seed_demo

cat <<EOT

  API       http://127.0.0.1:$PORT/api/v1/
  API docs  http://127.0.0.1:$PORT/api/docs/
  Admin     http://127.0.0.1:$PORT/admin/
  Ready?    http://127.0.0.1:$PORT/readyz

  Demo credentials are printed above by seed_demo. Press Ctrl-C to stop web, worker and beat.

EOT
exec honcho start --no-prefix -f Procfile
