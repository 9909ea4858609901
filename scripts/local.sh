#!/usr/bin/env bash
# The local service without Docker: moto's S3 server, the database migrated and seeded, and the
# service on :5240. State (pids, logs, the generated JWT secret) lives in .stack/.
# Usage: scripts/local.sh up|down|status|logs
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=.stack
BIN=.venv/bin
mkdir -p "${STACK}"

[[ -f "${STACK}/env" ]] || {
  echo "JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "${STACK}/env"
}
set -a
# shellcheck disable=SC1091
source "${STACK}/env"
: "${DATABASE_URL:=postgresql://postgres@127.0.0.1:5432/messaging}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
: "${S3_ENDPOINT_URL:=http://127.0.0.1:9000}"
: "${AWS_S3_BUCKET:=chat-uploads}"
: "${AWS_ACCESS_KEY_ID:=local}"
: "${AWS_SECRET_ACCESS_KEY:=local-secret}"
: "${PORT:=5240}"
BUILD_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# the scenario runner reads the secret and the database (to seed a scenario's volume) from here too
grep -q '^DATABASE_URL=' "${STACK}/env" || echo "DATABASE_URL=${DATABASE_URL}" >> "${STACK}/env"
set +a

running() { [[ -f "${STACK}/$1.pid" ]] && kill -0 "$(cat "${STACK}/$1.pid")" 2>/dev/null; }
answers() { curl -fs -o /dev/null --max-time 2 "$1" 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 0.5; done
  echo "$2 did not come up; see ${STACK}/$3.log" >&2
  return 1
}

start_s3() {
  if answers "${S3_ENDPOINT_URL}/moto-api/" || running s3; then return; fi
  local port=${S3_ENDPOINT_URL##*:}
  nohup "${BIN}/python" -m moto.server -H 127.0.0.1 -p "${port%%/*}" > "${STACK}/s3.log" 2>&1 &
  echo $! > "${STACK}/s3.pid"
  wait_for "${S3_ENDPOINT_URL}/moto-api/" "S3 server (moto)" s3
}

prepare_db() {
  local name=${DATABASE_URL##*/} admin=${DATABASE_URL%/*}/postgres
  if ! psql "${admin}" -tAc "SELECT 1 FROM pg_database WHERE datname = '${name}'" | grep -q 1; then
    psql "${admin}" -qc "CREATE DATABASE \"${name}\""
  fi
  "${BIN}/python" -m sut migrate up
  if [[ "$(psql "${DATABASE_URL}" -tAc 'SELECT count(*) FROM conversations')" == "0" ]]; then
    "${BIN}/python" -m sut seed --customers 500 --artists 100 --conversations 2000 --messages 50000 --no-progress
  fi
}

start_sut() {
  if running sut; then echo "service already running (pid $(cat "${STACK}/sut.pid"))"; return; fi
  if answers "http://127.0.0.1:${PORT}/health"; then
    echo "port ${PORT} is taken by another process; set PORT=... or stop it" >&2
    return 1
  fi
  nohup "${BIN}/python" -m sut serve --port "${PORT}" > "${STACK}/sut.log" 2>&1 &
  echo $! > "${STACK}/sut.pid"
  wait_for "http://127.0.0.1:${PORT}/health" "the service" sut
}

up() {
  start_s3
  "${BIN}/python" -m sut init-storage
  prepare_db
  start_sut
  local token
  token=$("${BIN}/python" -m sut token --user 1 --role customer --ttl 86400)
  cat <<MSG

The service is up:
  API        http://127.0.0.1:${PORT}/messaging/conversations   (Authorization: Bearer <token>)
  health     http://127.0.0.1:${PORT}/health
  metrics    http://127.0.0.1:${PORT}/metrics
  OpenAPI    http://127.0.0.1:${PORT}/openapi.json
  S3 (moto)  ${S3_ENDPOINT_URL}
  logs       ${STACK}/sut.log  (make logs)

A token for customer 1 (seeded), valid 24 h:
  export TOKEN=${token}
  curl -s -H "Authorization: Bearer \$TOKEN" "http://127.0.0.1:${PORT}/messaging/conversations?limit=2"

Load tests: python -m scenarios run NAME (make run SCENARIO=NAME); scenarios: python -m scenarios list
  load generator metrics  http://127.0.0.1:9646/metrics   (while a run lasts)
  Locust web UI           http://127.0.0.1:8089            (python -m scenarios run NAME --web)
  run folders             runs/<time>-<scenario>/report.html

Stop it with: make down
MSG
}

down() {
  for svc in sut s3; do
    if running "${svc}"; then
      kill "$(cat "${STACK}/${svc}.pid")" && echo "stopped ${svc}"
    fi
    rm -f "${STACK}/${svc}.pid"
  done
}

status() {
  for svc in sut s3; do
    if running "${svc}"; then echo "${svc}: running (pid $(cat "${STACK}/${svc}.pid"))"; else echo "${svc}: stopped"; fi
  done
  curl -s --max-time 3 "http://127.0.0.1:${PORT}/health" && echo || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) tail -f "${STACK}/sut.log" ;;
  *) echo "usage: $0 up|down|status|logs" >&2; exit 2 ;;
esac
