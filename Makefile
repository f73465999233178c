# CipherGuard command index. `make run` and `make test` are the two commands a newcomer needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run migrate worker test bench bench-webhooks screenshots lint format clean

install: $(STAMP)  ## create .venv and install pinned dependencies (idempotent)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --no-input -v 0

run: migrate  ## install, migrate, create demo data/model/users on first run, serve on http://127.0.0.1:8000
	$(BIN)/python manage.py collectstatic --no-input -v 0
	$(BIN)/python manage.py bootstrap_demo --base-url http://$(HOST):$(PORT)
	@# A background Celery worker (with the beat scheduler) on the broker in CELERY_BROKER_URL, or on
	@# a folder queue under var/ when none is set; it stops with the web server.
	@# --quiet: no banner; its warnings and errors go to var/worker.log.
	$(BIN)/celery -A cipherguard --quiet worker --beat --concurrency=1 --loglevel=WARNING \
	  --schedule var/celerybeat-schedule --logfile var/worker.log & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/gunicorn cipherguard.wsgi --config deploy/gunicorn.conf.py --bind $(HOST):$(PORT)

worker: migrate  ## a Celery worker alone (production runs these separately from the web servers)
	$(BIN)/celery -A cipherguard worker --concurrency=2 --loglevel=INFO

# On the embedded default (SQLite, in-memory broker and cache) every test worker has its own
# database and nothing else is shared, so the suite runs on every core. Against real services
# (CI) one process: workers would share Redis's cache keys and a real Celery worker's queue.
TEST_WORKERS ?= $(if $(DATABASE_URL)$(REDIS_URL)$(CELERY_BROKER_URL),0,auto)

test: install  ## run the test suite (SQLite by default, on every core; DATABASE_URL/REDIS_URL select real services)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

bench: install  ## load CipherGuard on this machine (PostgreSQL, Redis, wrk) and print the table; see bench/run.py
	@command -v wrk >/dev/null 2>&1 || { if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; fi; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-webhooks: install  ## webhook delivery latency at 100 flagged transactions a second (PostgreSQL, Redis); see bench/webhooks.py
	$(BIN)/python -m bench.webhooks $(BENCH_ARGS)

screenshots: install  ## the README's pictures from the demo (uses a running `make run`, or starts one), with Debian's chromium
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }
	$(BIN)/python docs/screenshots.py --host $(HOST) --port $(PORT)

lint: install  ## ruff, the import contracts (layers, no cycles; pyproject.toml) and mypy on the typed core
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/ .pytest_cache .ruff_cache
