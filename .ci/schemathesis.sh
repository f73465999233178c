#!/usr/bin/env bash
# The running app against its own OpenAPI schema: positive and negative data, every phase
# (examples, coverage, fuzzing, the stateful links), and two API clients as each other's peers.
# No check may fail. Run by .ci/run; runnable alone on a machine with PostgreSQL (PORT, DB name).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SCHEMATHESIS_PORT:-8765}
db=${SCHEMATHESIS_DB:-cipherguard_schema}
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export RATE_LIMIT_ENABLED=false DEBUG=false LOG_LEVEL=WARNING
# The schema's example webhook URL is a documentation address: allowed here, so the examples phase
# registers an endpoint and the stateful phase reaches the routes that need one.
export WEBHOOKS_ALLOWED_NETWORKS=203.0.113.0/24
.venv/bin/python manage.py migrate --no-input -v 0
for user in schema-client schema-peer; do
  CIPHERGUARD_USER_PASSWORD="Correct-Horse-Battery-Staple-42" .venv/bin/python manage.py create_user "$user" --role api_client
done
.venv/bin/python manage.py generate_transactions --days 45 --customers 200 --merchants 30 --seed 3 \
  --start "$(date -u -d '45 days ago' +%Y-%m-%d)" --owner schema-client
.venv/bin/python manage.py train_model --activate >/dev/null
.venv/bin/gunicorn cipherguard.wsgi --config deploy/gunicorn.conf.py --bind "127.0.0.1:$port" --workers 2 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 30); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 1; done
.venv/bin/schemathesis --config-file .ci/schemathesis.toml run "http://127.0.0.1:$port/api/v1/schema/?format=json" \
  --url "http://127.0.0.1:$port" --mode all --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" --request-timeout 30 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance,use_after_free,ensure_resource_availability,ignored_auth,object_level_authorization \
  "$@"
