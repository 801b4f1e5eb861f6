#!/bin/bash
# Entry point of the local RabbitMQ image (scripts/compose_smoke.sh), made from Debian's
# rabbitmq-server package where no registry serves rabbitmq:3.13. It takes what compose.yaml
# gives the official image (RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS, RABBITMQ_DEFAULT_VHOST;
# data in /var/lib/rabbitmq) and runs the node in the foreground.
set -euo pipefail
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 5672
loopback_users = none
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
default_vhost = $RABBITMQ_DEFAULT_VHOST
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
CONF
mkdir -p /var/lib/rabbitmq/mnesia /var/log/rabbitmq
# One Erlang cookie for the node and for the CLI tools the healthcheck runs (as root).
cookie=/var/lib/rabbitmq/.erlang.cookie
[ -s "$cookie" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$cookie"
cp "$cookie" /root/.erlang.cookie
chmod 400 "$cookie" /root/.erlang.cookie
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
exec runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq rabbitmq-server
