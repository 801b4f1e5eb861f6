#!/usr/bin/env bash
# Set everything up and run web (gunicorn), worker and beat together in the foreground.
# Ctrl-C (or closing the terminal) stops all three.
#
# Environment: PORT (default 8000) and WEB_CONCURRENCY (gunicorn workers, default 2) are read
# here; everything else is read by the settings, from the environment or from .env.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
mkdir -p .run

export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}
export PORT=${PORT:-8000}
export PATH="$PWD/.venv/bin:$PATH"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[run] %s\033[0m\n' "$*" >&2; exit 1; }

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT is already in use (another run?); stop it or choose another: PORT=8001 bash scripts/run.sh"
fi

say "applying migrations"
python manage.py migrate --no-input
python manage.py collectstatic --no-input -v 0
say "loading demo data; log in with:"
python manage.py seed_demo

cat <<EOT

  API       http://127.0.0.1:$PORT/api/v1/
  API docs  http://127.0.0.1:$PORT/api/docs/
  Admin     http://127.0.0.1:$PORT/admin/     (log in as the staff user above)
  Ready?    http://127.0.0.1:$PORT/readyz

  Starting web, worker and beat. Press Ctrl-C to stop all three.

EOT
exec python scripts/run_procfile.py Procfile
