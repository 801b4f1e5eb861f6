#!/usr/bin/env bash
# Make PostgreSQL, Redis and RabbitMQ ready on this machine. Safe to run again and again.
#
# For each service: install it from Debian's packages if it is missing, start it if it is
# stopped, wait until it answers. Then create the databases and the test virtual host.
# Installing and starting need root (or sudo); a machine where everything already runs does not.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
DB_NAME=${ORDERS_DB_NAME:-orders}
RABBITMQ_TEST_VHOST=${RABBITMQ_TEST_VHOST:-orders_test}
WAIT_SECONDS=${SERVICES_WAIT_SECONDS:-90}

say() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[services] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "$* missing and this is not a Debian-based machine; install it by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for NAME COMMAND...
    local name=$1; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$name did not answer within ${WAIT_SECONDS}s"
        sleep 1
    done
    say "$name is ready"
}

# --- PostgreSQL ---------------------------------------------------------------------------
pg_ok() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
psql_pg() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

ensure_postgresql() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_ok; then
        apt_install postgresql postgresql-client
    fi
    if ! pg_ok; then
        local version
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        [ -n "$version" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql"
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    wait_for PostgreSQL pg_ok
    if ! psql_pg -c 'SELECT 1' >/dev/null 2>&1; then
        # A fresh Debian cluster asks for a password on TCP; development uses trust on loopback
        # only, as DATABASE_URL's default (postgres://postgres@127.0.0.1:5432/orders) expects.
        local hba
        hba=$(as_root su postgres -c "psql -qtA -c 'SHOW hba_file'")
        say "allowing password-less loopback connections in $hba (development machine)"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_root su postgres -c "psql -qtA -c 'SELECT pg_reload_conf()'" >/dev/null
        sleep 1
        psql_pg -c 'SELECT 1' >/dev/null || die "cannot connect to PostgreSQL as postgres on $PG_HOST"
    fi
    if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
        say "creating database $DB_NAME"
        psql_pg -c "CREATE DATABASE \"$DB_NAME\""
    fi
}

# --- Redis --------------------------------------------------------------------------------
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }

ensure_redis() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    if ! redis_ok; then
        say "starting Redis"
        as_root mkdir -p /var/lib/redis /var/log/redis
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/orders.log
    fi
    wait_for Redis redis_ok
}

# --- RabbitMQ -----------------------------------------------------------------------------
rabbitmq_ok() { port_open 5672 && as_root rabbitmqctl -q await_startup --timeout 5; }

ensure_rabbitmq() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
    if ! port_open 5672; then
        say "starting RabbitMQ"
        as_root rabbitmq-server -detached || true
    fi
    wait_for RabbitMQ rabbitmq_ok
    if ! as_root rabbitmqctl -q list_vhosts | grep -qx "$RABBITMQ_TEST_VHOST"; then
        say "creating RabbitMQ virtual host $RABBITMQ_TEST_VHOST (used by the test suite)"
        as_root rabbitmqctl -q add_vhost "$RABBITMQ_TEST_VHOST"
    fi
    as_root rabbitmqctl -q set_permissions -p "$RABBITMQ_TEST_VHOST" guest '.*' '.*' '.*'
}

ensure_postgresql
ensure_redis
ensure_rabbitmq
say "PostgreSQL, Redis and RabbitMQ are ready"
