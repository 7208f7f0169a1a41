#!/bin/sh
# Writes RabbitMQ's HTTP auth backend URLs for ATA Gateway's cluster mode, then runs the command it
# was given (docker-compose.cluster.yml: the official image's docker-entrypoint.sh rabbitmq-server).
#
# The gateways check the shared secret as HTTP Basic authentication, which RabbitMQ 3.10's HTTP
# client sends from a URL's user info (docs/cluster.md, "The endpoints are no oracle"); rabbitmq.conf
# cannot read it from the environment on 3.10, so the URLs are written here, at every start, into a
# conf.d file that RabbitMQ reads after rabbitmq.conf (RABBITMQ_CONFIG_FILES, /etc/rabbitmq/conf.d/*.conf
# by default). The requests go to the load balancer's internal port, which spreads them over the
# gateways that answer /readyz.
#
# ATA_RABBITMQ_AUTH_SECRET  the gateways' cluster.rabbitmq.secret (required)
# ATA_RABBITMQ_AUTH_USER    their cluster.rabbitmq.username (default rabbitmq)
# ATA_RABBITMQ_AUTH_BASE    where the endpoints are (default http://lb:8081/api/v1/cluster/rabbitmq)
# ATA_RABBITMQ_AUTH_CONF    the file written (default /etc/rabbitmq/conf.d/90-ata-auth-http.conf)
set -eu

secret="${ATA_RABBITMQ_AUTH_SECRET:?set ATA_RABBITMQ_AUTH_SECRET to the secret of cluster.rabbitmq on the gateways}"
user="${ATA_RABBITMQ_AUTH_USER:-rabbitmq}"
base="${ATA_RABBITMQ_AUTH_BASE:-http://lb:8081/api/v1/cluster/rabbitmq}"
out="${ATA_RABBITMQ_AUTH_CONF:-/etc/rabbitmq/conf.d/90-ata-auth-http.conf}"

# The gateway accepts only these characters (src/cluster/config.ts), none of which a URL must escape.
case "$user$secret" in
  *[!A-Za-z0-9_.~-]*)
    echo "ATA_RABBITMQ_AUTH_USER and ATA_RABBITMQ_AUTH_SECRET: only A-Z a-z 0-9 _ . ~ -" >&2
    exit 1
    ;;
esac

scheme="${base%%://*}"
rest="${base#*://}"
mkdir -p "$(dirname "$out")"
# Readable by RabbitMQ only: it holds the secret.
umask 077
{
  echo "# Written by rabbitmq-auth-http.sh at start; holds the shared secret."
  for endpoint in user vhost resource topic; do
    echo "auth_http.${endpoint}_path = ${scheme}://${user}:${secret}@${rest}/${endpoint}"
  done
} >"$out"
# The image's entrypoint starts RabbitMQ as the rabbitmq user.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown rabbitmq:rabbitmq "$out"; fi

if [ "$#" -gt 0 ]; then exec "$@"; fi
