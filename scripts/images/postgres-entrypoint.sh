#!/bin/bash
# Entry point of the local PostgreSQL image (scripts/compose_smoke.sh), made from Debian's
# postgresql-15 package where no registry serves postgres:15-bookworm. It takes what compose.yaml
# gives the official image: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, data in
# /var/lib/postgresql/data (initialised on first start), and runs the server in the foreground.
set -euo pipefail
data=/var/lib/postgresql/data
mkdir -p "$data" /run/postgresql
chown -R postgres:postgres "$data" /run/postgresql
chmod 700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
    printf '%s' "$POSTGRES_PASSWORD" > /tmp/pwfile
    chown postgres /tmp/pwfile
    runuser -u postgres -- initdb -D "$data" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f /tmp/pwfile
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
    runuser -u postgres -- pg_ctl -D "$data" -w -o "-c listen_addresses=''" start >/dev/null
    runuser -u postgres -- createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    runuser -u postgres -- pg_ctl -D "$data" -w -m fast stop >/dev/null
fi
# exec: PostgreSQL is PID 1's child no more; it gets the container's SIGTERM (a smart shutdown).
exec runuser -u postgres -- postgres -D "$data" -c listen_addresses='*'
