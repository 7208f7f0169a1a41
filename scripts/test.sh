#!/usr/bin/env bash
# The whole test suite, as CI runs it: provisions what the tests need, then types, lint, the compose
# file and every test against real services (MQTT over TCP, influxd, RabbitMQ, HTTP, WebSocket,
# Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# Cluster mode's tests start their own RabbitMQ node (MQTT and HTTP auth plugins ship with it).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# Cluster mode's state tests start their own PostgreSQL server (test/helpers/postgres.ts).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "The tests need these Debian packages: ${need[*]}"
    echo "Install them with: sudo apt-get install --no-install-recommends ${need[*]}"
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci: exactly the lock, from a clean node_modules, or fail if package.json and the lock
  # disagree. The lock holds every platform's optional binaries (biome, esbuild, rolldown), so it
  # installs on any machine. After changing package.json, npm install updates the lock: commit both.
  npm ci --no-audit --no-fund
fi

echo "== types"; npx tsc --noEmit && npx tsc -p web
echo "== lint"; npx biome check .
echo "== docker-compose.yml"; ATA_ADMIN_TOKEN=validate-only-token docker-compose -f docker-compose.yml config -q
echo "== docker-compose.cluster.yml"; ATA_ADMIN_TOKEN=validate-only-token ATA_POSTGRES_USER=ata \
  ATA_POSTGRES_PASSWORD=validateonly ATA_RABBITMQ_COOKIE=validateonly ATA_RABBITMQ_USER=ata-gateway \
  ATA_RABBITMQ_PASSWORD=validateonly ATA_RABBITMQ_AUTH_SECRET=validate-only-secret-0123456789abcdef \
  ATA_TOKEN_KEY=dmFsaWRhdGUtb25seS10b2tlbi1rZXktMDEyMzQ1Njc4OQ== \
  docker-compose -f docker-compose.cluster.yml config -q
echo "== tests"
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
rm -f "$report"
exit $status
