#!/usr/bin/env bash
# The same views under gunicorn sync workers (WSGI, production) and uvicorn (ASGI), same settings,
# same database, 2 workers each: the evidence behind serving WSGI (docs/performance.md).
# Needs the seed database of `make bench` (bench/run.py builds it) and wrk. ~1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PG=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379}
psql "$PG/postgres" -qAtX -c "DROP DATABASE IF EXISTS cipherguard_bench_asgi WITH (FORCE)" \
  -c "CREATE DATABASE cipherguard_bench_asgi TEMPLATE cipherguard_bench_seed"
trap 'pkill -f "127.0.0.1:8899" || true; pkill -f "port 8899" || true; psql "$PG/postgres" -qAtX -c "DROP DATABASE IF EXISTS cipherguard_bench_asgi WITH (FORCE)"' EXIT
export DATABASE_URL="$PG/cipherguard_bench_asgi" REDIS_URL="$REDIS/8" CELERY_BROKER_URL="$REDIS/7"
export ENVIRONMENT=production DEBUG=false ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=false LOG_LEVEL=INFO LOG_FORMAT=json
export JWT_ACCESS_MINUTES=60 PROMETHEUS_MULTIPROC_DIR=/tmp/cipherguard-asgi-bench OMP_NUM_THREADS=1
for name in SECRET_KEY JWT_SECRET ENCRYPTION_KEY AUDIT_MAC_KEY PAN_FINGERPRINT_KEY; do
  export "$name=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')"
done
export BENCH_WRK_DIR=$PWD/bench/wrk BENCH_CUSTOMERS=2000 BENCH_MERCHANTS=300

load() {  # $1: server label
  for _ in $(seq 1 60); do curl -fs -o /dev/null -H 'Host: 127.0.0.1' http://127.0.0.1:8899/healthz && break; sleep 0.5; done
  BENCH_TOKEN=$(curl -fs -X POST http://127.0.0.1:8899/api/v1/auth/token/ -H 'Content-Type: application/json' \
    -d '{"username": "bench-client", "password": "bench-client-password-1"}' | $BIN/python -c 'import json,sys; print(json.load(sys.stdin)["access"])')
  export BENCH_TOKEN
  for c in 1 8; do
    t=$(( c < 2 ? 1 : 2 ))
    echo "$1 whoami c=$c $(wrk -t$t -c$c -d8s -s bench/wrk/whoami.lua http://127.0.0.1:8899 | grep BENCH_JSON)"
    echo "$1 score  c=$c $(BENCH_RUN="$1$c$(date +%s%N)" wrk -t$t -c$c -d8s -s bench/wrk/score.lua http://127.0.0.1:8899 | grep BENCH_JSON)"
  done
}

GUNICORN_BIND=127.0.0.1:8899 $BIN/gunicorn cipherguard.wsgi --config deploy/gunicorn.conf.py --workers 2 >/dev/null 2>&1 &
load wsgi-gunicorn-sync
pkill -f "127.0.0.1:8899"; sleep 2
$BIN/uvicorn cipherguard.asgi:application --host 127.0.0.1 --port 8899 --workers 2 --log-level warning --no-access-log >/dev/null 2>&1 &
load asgi-uvicorn
