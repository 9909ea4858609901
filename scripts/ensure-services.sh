#!/usr/bin/env bash
# PostgreSQL and Redis run on this machine already; start them if they are down (root only),
# otherwise say how. Addresses come from TEST_DATABASE_ADMIN_URL / TEST_REDIS_URL defaults.
set -euo pipefail
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2; }
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]]; }
if ! pg_up; then
  if [[ $(id -u) -eq 0 ]] && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "PostgreSQL is not answering on 127.0.0.1:5432: start it (pg_ctlcluster 15 main start)" >&2; exit 1; }
fi
if ! redis_up; then
  if [[ $(id -u) -eq 0 ]] && command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "Redis is not answering on 127.0.0.1:6379: start it (redis-server --daemonize yes)" >&2; exit 1; }
fi
