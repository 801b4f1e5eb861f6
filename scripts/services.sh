#!/usr/bin/env bash
# Make PostgreSQL, Redis and RabbitMQ ready on this machine. Safe to run again and again.
#
# The services are the ones DATABASE_URL, REDIS_URL and CELERY_BROKER_URL point at (from the
# environment, else from .env, else the development defaults on 127.0.0.1). For each one on this
# machine: install it from Debian's packages if it is missing, start it if it is stopped, wait
# until it answers. Then create the database and the RabbitMQ virtual hosts the URLs name, and
# the test suite's virtual host. A service on another machine is left alone.
# Installing and starting need root (or sudo); a machine where everything already runs does not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RABBITMQ_TEST_VHOST=${RABBITMQ_TEST_VHOST:-orders_test}
RABBITMQ_BENCH_VHOST=${RABBITMQ_BENCH_VHOST:-orders_bench}
WAIT_SECONDS=${SERVICES_WAIT_SECONDS:-90}

say() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[services] %s\033[0m\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -u postgres "$@"
    else die "need root to run as postgres: $*"
    fi
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
systemd_running() { [ -d /run/systemd/system ]; }

wait_for() {  # wait_for NAME COMMAND...
    local name=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$name did not answer within ${WAIT_SECONDS}s"
        sleep 1
    done
    say "$name is ready"
}

# setting NAME DEFAULT: the variable from the environment, else from .env (as the settings do).
setting() {
    local name=$1 default=$2 line
    if [ -n "${!name:-}" ]; then printf '%s\n' "${!name}"; return; fi
    if [ -f .env ] && line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$name=" .env | tail -n 1); then
        line=${line#*=}; line=${line%\"}; line=${line#\"}; line=${line%\'}; line=${line#\'}
        printf '%s\n' "$line"; return
    fi
    printf '%s\n' "$default"
}

# url_part URL PART DEFAULT_PORT: the host, port, user or path (without its first /) of URL.
url_part() {
    local python=python3
    [ -x .venv/bin/python ] && python=.venv/bin/python
    "$python" - "$@" <<'EOF'
import sys
from urllib.parse import unquote, urlsplit

url, part, default_port = sys.argv[1:4]
parts = urlsplit(url)
values = {
    "host": parts.hostname or "127.0.0.1",
    "port": str(parts.port or default_port),
    "user": unquote(parts.username or ""),
    "path": unquote(parts.path[1:]),
}
print(values[part])
EOF
}

on_this_machine() { case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

DATABASE_URL=$(setting DATABASE_URL postgres://postgres@127.0.0.1:5432/orders)
REDIS_URL=$(setting REDIS_URL redis://127.0.0.1:6379/0)
CELERY_BROKER_URL=$(setting CELERY_BROKER_URL amqp://guest:guest@127.0.0.1:5672//)
# A cluster's failover URL lists every node, separated by ";": its first node names the host and vhost.
CELERY_BROKER_URL=${CELERY_BROKER_URL%%;*}

# --- PostgreSQL ---------------------------------------------------------------------------
PG_HOST=$(url_part "$DATABASE_URL" host 5432)
PG_PORT=$(url_part "$DATABASE_URL" port 5432)
DB_NAME=$(url_part "$DATABASE_URL" path 5432)

pg_ok() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
psql_pg() {  # -w: never prompt for a password (it would wait for a keyboard)
    psql -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"
}
pg_cluster_on_port() {  # "VERSION NAME" of the Debian cluster configured for PG_PORT
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'
}

ensure_postgresql() {
    if ! on_this_machine "$PG_HOST"; then
        say "PostgreSQL is on $PG_HOST, not on this machine: leaving it alone"
        return
    fi
    # pg_lsclusters comes with the server; something may answer without it (a container).
    if ! have pg_lsclusters && ! port_open "$PG_PORT"; then
        apt_install postgresql postgresql-client
    elif ! have psql || ! have pg_isready; then
        apt_install postgresql-client
    fi
    if ! pg_ok; then
        local cluster
        cluster=$(pg_cluster_on_port)
        [ -n "$cluster" ] || die "no PostgreSQL cluster is set up for port $PG_PORT (see pg_lsclusters)"
        say "starting PostgreSQL cluster $cluster"
        # Under systemd pg_ctlcluster hands over to systemctl; elsewhere it starts the server.
        # shellcheck disable=SC2086  # "VERSION NAME" is two arguments
        as_root pg_ctlcluster $cluster start || true
    fi
    wait_for "PostgreSQL (port $PG_PORT)" pg_ok
    if ! psql_pg -c 'SELECT 1' >/dev/null 2>&1; then
        # A fresh Debian cluster asks for a password on TCP; development uses trust on loopback
        # only, as DATABASE_URL's default (postgres://postgres@127.0.0.1:5432/orders) expects.
        local hba
        hba=$(as_postgres psql -p "$PG_PORT" -qtA -c 'SHOW hba_file')
        if ! as_root grep -q '^host all all 127.0.0.1/32 trust$' "$hba"; then
            say "allowing password-less loopback connections in $hba (development machine)"
            as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
            as_postgres psql -p "$PG_PORT" -qtA -c 'SELECT pg_reload_conf()' >/dev/null
            sleep 1
        fi
        psql_pg -c 'SELECT 1' >/dev/null || die "cannot connect to PostgreSQL as postgres on 127.0.0.1:$PG_PORT"
    fi
    [[ $DB_NAME =~ ^[A-Za-z0-9_]+$ ]] || die "unexpected database name '$DB_NAME' in DATABASE_URL"
    if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
        say "creating database $DB_NAME"
        psql_pg -c "CREATE DATABASE \"$DB_NAME\""
    fi
}

# --- Redis --------------------------------------------------------------------------------
REDIS_HOST=$(url_part "$REDIS_URL" host 6379)
REDIS_PORT=$(url_part "$REDIS_URL" port 6379)

redis_ok() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
    if ! on_this_machine "$REDIS_HOST"; then
        say "Redis is on $REDIS_HOST, not on this machine: leaving it alone"
        return
    fi
    if ! have redis-server && ! port_open "$REDIS_PORT"; then
        apt_install redis-server
    elif ! have redis-cli; then
        apt_install redis-tools
    fi
    if ! redis_ok; then
        if systemd_running && [ "$REDIS_PORT" = 6379 ]; then
            say "starting Redis"
            as_root systemctl start redis-server || true
        else
            # Redis is only a cache here: no snapshots, nothing to keep across restarts.
            say "starting Redis on port $REDIS_PORT"
            as_root mkdir -p /var/lib/redis /var/log/redis
            as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
                --appendonly no --dir /var/lib/redis --logfile "/var/log/redis/orders-$REDIS_PORT.log" || true
        fi
    fi
    wait_for "Redis (port $REDIS_PORT)" redis_ok
}

# --- RabbitMQ -----------------------------------------------------------------------------
AMQP_HOST=$(url_part "$CELERY_BROKER_URL" host 5672)
AMQP_PORT=$(url_part "$CELERY_BROKER_URL" port 5672)
AMQP_USER=$(url_part "$CELERY_BROKER_URL" user 5672)
AMQP_VHOST=$(url_part "$CELERY_BROKER_URL" path 5672)

rabbitmq_ok() { port_open "$AMQP_PORT" && as_root rabbitmqctl -q await_startup --timeout 5; }

ensure_vhost() {  # ensure_vhost VHOST USER: the virtual host exists and USER may use it
    local vhosts
    vhosts=$(as_root rabbitmqctl -q list_vhosts)
    if ! grep -qxF "$1" <<<"$vhosts"; then
        say "creating RabbitMQ virtual host $1"
        as_root rabbitmqctl -q add_vhost "$1"
    fi
    as_root rabbitmqctl -q set_permissions -p "$1" "$2" '.*' '.*' '.*' >/dev/null ||
        die "cannot give RabbitMQ user '$2' access to virtual host $1 (does the user exist?)"
}

ensure_rabbitmq() {
    if ! on_this_machine "$AMQP_HOST"; then
        say "RabbitMQ is on $AMQP_HOST, not on this machine: leaving it alone"
        return
    fi
    have rabbitmq-server || apt_install rabbitmq-server
    if ! port_open "$AMQP_PORT"; then
        say "starting RabbitMQ"
        if systemd_running; then as_root systemctl start rabbitmq-server || true
        else as_root rabbitmq-server -detached || true
        fi
    fi
    wait_for "RabbitMQ (port $AMQP_PORT)" rabbitmq_ok
    # The test suite's and the benchmarks' virtual hosts, then the one of the URL.
    ensure_vhost "$RABBITMQ_TEST_VHOST" guest
    ensure_vhost "$RABBITMQ_BENCH_VHOST" guest
    if [ -n "$AMQP_VHOST" ] && [ "$AMQP_VHOST" != "/" ]; then
        ensure_vhost "$AMQP_VHOST" "${AMQP_USER:-guest}"
    fi
}

ensure_postgresql
ensure_redis
ensure_rabbitmq
say "PostgreSQL, Redis and RabbitMQ are ready"
