#!/usr/bin/env bash
# Build the image (deploy/Dockerfile) and run the compose stack (deploy/compose.yaml) for real,
# with podman, then place an order through it and wait until a worker has reserved it.
#
#   bash scripts/compose_smoke.sh           everything is removed afterwards
#   bash scripts/compose_smoke.sh --keep    leave the stack running (it prints how to stop it)
#
# Needs root (or sudo) the first time: installs Debian's podman, runc, podman-compose and
# debootstrap. Where no image registry can be reached, the images the compose file names
# (python:3.11-slim-bookworm, postgres, rabbitmq, redis) are made here instead, once, from
# Debian's packages with debootstrap (a few minutes), and passed to compose in BASE_IMAGE,
# POSTGRES_IMAGE, RABBITMQ_IMAGE and REDIS_IMAGE; with a registry, set SMOKE_PUBLIC_IMAGES=1 to
# use the public ones. Takes 3 to 6 minutes after that; not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[smoke]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[smoke] %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=0
[ "${1:-}" = "--keep" ] && keep=1
project=orders-smoke
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# --- tools --------------------------------------------------------------------------------------
missing=()
for tool in podman runc podman-compose debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
as_root true  # podman runs as root here: rootless podman needs subordinate ids this may lack

# runc and cgroupfs: what works without systemd managing the containers' cgroups (as in a
# container or a CI sandbox); no default ulimits, which an unprivileged sandbox may not raise.
mkdir -p .tools/podman
cat > .tools/podman/containers.conf <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF=$PWD/.tools/podman/containers.conf
podman() { as_root env CONTAINERS_CONF="$CONTAINERS_CONF" podman "$@"; }
compose() { as_root env "${compose_env[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" podman-compose -p "$project" -f deploy/compose.yaml "$@"; }

# --- images -------------------------------------------------------------------------------------
image_exists() { podman image exists "$1"; }

# debootstrap Debian 12 with PACKAGES into a directory, then import it as IMAGE.
bootstrap_image() {
    local image=$1 packages=$2 root
    root=$(mktemp -d /var/tmp/orders-rootfs.XXXXXX)
    say "making $image from Debian 12 packages ($packages); a few minutes, once"
    as_root debootstrap --variant=minbase --include="$packages" bookworm "$root" "$debian_mirror" >"$root.log" 2>&1 ||
        die "debootstrap failed; see $root.log"
    # Trust what this machine trusts (a proxy's own certificate authority, where there is one).
    as_root cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    as_root tar -C "$root" -c . | podman import \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" --change 'CMD ["bash"]' - "$image" >/dev/null
    as_root rm -rf "$root" "$root.log"
}

# A small image FROM the services' Debian image, with an entry point of scripts/images/.
service_image() {
    local image=$1 containerfile=$2
    printf '%s\n' "FROM localhost/orders-smoke-services:bookworm" "$containerfile" |
        podman build --quiet -t "$image" -f - scripts/images >/dev/null
}

if [ "${SMOKE_PUBLIC_IMAGES:-0}" = 1 ]; then
    compose_env=()
else
    image_exists localhost/orders-smoke-base:bookworm ||
        bootstrap_image localhost/orders-smoke-base:bookworm python3,python3-venv,python-is-python3,ca-certificates
    image_exists localhost/orders-smoke-services:bookworm ||
        bootstrap_image localhost/orders-smoke-services:bookworm postgresql-15,rabbitmq-server,redis-server,redis-tools,procps,ca-certificates
    image_exists localhost/orders-smoke-postgres:15 || service_image localhost/orders-smoke-postgres:15 "$(cat <<'EOF'
COPY postgres-entrypoint.sh /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
EOF
)"
    image_exists localhost/orders-smoke-rabbitmq:3.10 || service_image localhost/orders-smoke-rabbitmq:3.10 "$(cat <<'EOF'
COPY rabbitmq-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/rabbitmq-entrypoint.sh"]
EOF
)"
    image_exists localhost/orders-smoke-redis:7 || service_image localhost/orders-smoke-redis:7 "CMD [\"redis-server\"]"
    compose_env=(
        BASE_IMAGE=localhost/orders-smoke-base:bookworm
        POSTGRES_IMAGE=localhost/orders-smoke-postgres:15
        RABBITMQ_IMAGE=localhost/orders-smoke-rabbitmq:3.10
        REDIS_IMAGE=localhost/orders-smoke-redis:7
    )
fi

# --- the stack's secrets and port ------------------------------------------------------------------
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
web_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
compose_env+=(
    ORDERS_IMAGE=localhost/orders:smoke
    DJANGO_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(64))')"
    PAYMENT_WEBHOOK_SECRET="whsec_$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')"
    METRICS_TOKEN="$(random)"
    POSTGRES_PASSWORD="$(random)"
    RABBITMQ_PASSWORD="$(random)"
    REDIS_PASSWORD="$(random)"
    WEB_PORT="$web_port"
    SENTRY_DSN=
)

base_image=python:3.11-slim-bookworm
for assignment in "${compose_env[@]}"; do
    case $assignment in BASE_IMAGE=*) base_image=${assignment#BASE_IMAGE=} ;; esac
done
say "building the image (deploy/Dockerfile, BASE_IMAGE=$base_image)"
started=$SECONDS
podman build --quiet -f deploy/Dockerfile --build-arg BASE_IMAGE="$base_image" -t localhost/orders:smoke . >/dev/null
say "image built in $((SECONDS - started))s: $(podman image inspect --format '{{.Size}}' localhost/orders:smoke | awk '{printf "%.0f MB", $1/1e6}')"

cleanup() {
    if [ "$keep" = 1 ]; then
        say "left running: the API at http://127.0.0.1:$web_port/api/v1/"
        say "stop and remove it: CONTAINERS_CONF=$CONTAINERS_CONF podman-compose -p $project -f deploy/compose.yaml down -v"
        return
    fi
    say "removing the stack"
    compose down -v >/dev/null 2>&1 || true
    podman volume rm -f "${project}_postgres-data" "${project}_rabbitmq-data" >/dev/null 2>&1 || true
    podman network rm -f "${project}_default" >/dev/null 2>&1 || true
}
compose down -v >/dev/null 2>&1 || true  # a stack left by an earlier run
trap cleanup EXIT

# --- up, in the order compose.yaml's depends_on gives (podman-compose 1.0 ignores its conditions) --
await_health() {
    local container=${project}_$1_1 deadline=$((SECONDS + $2))
    until podman healthcheck run "$container" >/dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || { podman logs --tail 30 "$container" >&2 || true; die "$1 not healthy after $2s"; }
        sleep 2
    done
    say "$1 is healthy"
}
started=$SECONDS
say "starting PostgreSQL, RabbitMQ and Redis"
compose up -d postgres rabbitmq redis >/dev/null 2>&1
await_health postgres 120
await_health redis 60
await_health rabbitmq 180
say "migrating (the one-shot migrate service)"
compose up -d --no-deps migrate >/dev/null 2>&1 || compose up -d migrate >/dev/null 2>&1
status=$(podman wait "${project}_migrate_1")
[ "$status" = 0 ] || { podman logs "${project}_migrate_1" >&2; die "migrate exited $status"; }
say "starting web, worker and beat"
compose up -d --no-deps web worker beat >/dev/null 2>&1 || compose up -d web worker beat >/dev/null 2>&1
await_health web 120
await_health worker 120
say "stack up in $((SECONDS - started))s"

# --- an order through it -------------------------------------------------------------------------
say "the first admin (createsuperuser), a product (as staff, over the API), a customer"
staff_password=$(random)
customer_password=$(random)
podman exec -e DJANGO_SUPERUSER_PASSWORD="$staff_password" "${project}_web_1" \
    python manage.py createsuperuser --no-input --username admin --email admin@example.com >/dev/null
podman exec -e CUSTOMER_PASSWORD="$customer_password" "${project}_web_1" python manage.py shell --no-imports -c \
    "import os; from django.contrib.auth.models import User; User.objects.create_user('customer', 'customer@example.com', os.environ['CUSTOMER_PASSWORD'])"

API="http://127.0.0.1:$web_port" STAFF_PASSWORD="$staff_password" CUSTOMER_PASSWORD="$customer_password" python3 - <<'EOF'
import json, os, time, urllib.error, urllib.request, uuid

api = os.environ["API"]


def call(method, path, body=None, token=None, headers=None):
    request = urllib.request.Request(f"{api}{path}", method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def token(username, password):
    status, body = call("POST", "/api/v1/auth/token/", {"username": username, "password": password})
    assert status == 200, (status, body)
    return body["token"]


status, ready = call("GET", "/readyz")
print(f"[smoke] /readyz {status} {ready['status']}")
assert status == 200 and ready["status"] == "ok", ready
staff = token("admin", os.environ["STAFF_PASSWORD"])
status, body = call("POST", "/api/v1/products/", {"sku": "SMOKE-1", "name": "Smoke test", "price": "12.50", "stock": 5}, staff)
assert status == 201, (status, body)
customer = token("customer", os.environ["CUSTOMER_PASSWORD"])
status, order = call("POST", "/api/v1/orders/", {"items": [{"sku": "SMOKE-1", "quantity": 2}]}, customer,
                     {"Idempotency-Key": str(uuid.uuid4())})
assert status == 202, (status, order)
print(f"[smoke] order {order['id']} accepted: 202, {order['status']}")
placed = time.monotonic()
while time.monotonic() - placed < 120:
    status, order = call("GET", f"/api/v1/orders/{order['id']}/", token=customer)
    if order["status"] != "pending":
        break
    time.sleep(0.5)
assert order["status"] == "reserved", order
print(f"[smoke] order {order['id']} reserved by the worker {time.monotonic() - placed:.1f}s after it was placed; "
      f"payment due {order['expires_at']}")
status, product = call("GET", "/api/v1/products/SMOKE-1/", token=customer)
assert product["available"] == 3, product
print("[smoke] stock 5 -> 3")
EOF
podman exec "${project}_web_1" python manage.py reconcile_stock >/dev/null
say "stock ledger balanced (reconcile_stock)"
say "the compose stack works: image built, migrated, an order placed and reserved"
