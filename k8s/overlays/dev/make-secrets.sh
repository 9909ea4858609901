#!/usr/bin/env bash
# Writes secrets.env and deps.env (never committed) with random values, unless they exist: the dev overlay's
# Secrets sut-secrets (the service's) and deps-secrets (its in-cluster PostgreSQL and MinIO).
set -euo pipefail
cd "$(dirname "$0")"
random() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
if [[ ! -f deps.env ]]; then
  umask 077
  printf 'POSTGRES_PASSWORD=%s\nMINIO_ROOT_USER=chatload\nMINIO_ROOT_PASSWORD=%s\n' "$(random)" "$(random)" > deps.env
  echo "wrote $(pwd)/deps.env"
fi
if [[ ! -f secrets.env ]]; then
  umask 077
  # shellcheck disable=SC1091
  source deps.env
  printf 'JWT_SECRET=%s\nDATABASE_URL=postgresql://postgres:%s@postgres:5432/messaging\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
    "$(random)" "$POSTGRES_PASSWORD" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" > secrets.env
  echo "wrote $(pwd)/secrets.env"
fi
