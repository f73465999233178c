# One image for web, worker and beat. Multi-stage: build wheels once, ship a slim runtime.
# Debian bookworm on purpose: its postgresql-client is 15, the major version of the PostgreSQL
# server in docker-compose.yml (pg_dump refuses servers newer than itself). Moving the base to a
# newer Debian means moving the server and the client together.
FROM python:3.11-slim-bookworm AS builder
WORKDIR /build
COPY requirements.txt requirements-dev.txt constraints.txt ./
RUN pip install --no-cache-dir --upgrade pip==26.3 \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt -c constraints.txt

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
    DJANGO_SETTINGS_MODULE=cipherguard.settings CIPHERGUARD_VAR_DIR=/app/var
# pg_dump/pg_restore for `manage.py backup`; the versioned package name makes a base image with
# another client major fail the build instead of shipping a mismatched pg_dump.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric UID/GID: Kubernetes can only prove runAsNonRoot for a numeric USER, and the
# manifests in deploy/k8s run as this same id.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /wheels /wheels
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt -c constraints.txt && rm -rf /wheels
COPY --chown=app:app . .
RUN mkdir -p /app/var && chown app:app /app/var \
 && SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0
# prometheus_client multiprocess mode: every process (gunicorn workers, Celery children, beat,
# manage.py) writes its samples here, and refuses to start if the directory is missing. Set only
# after collectstatic, so no build-time (root-owned) sample file is left in the image. Kubernetes
# mounts an emptyDir here; gunicorn's config and the Celery worker clear it when they start.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN mkdir -p /tmp/prometheus && chown app:app /tmp/prometheus
USER 10001:10001
EXPOSE 8000
# deploy/healthcheck.py sends an allowed Host and X-Forwarded-Proto: a bare request to 127.0.0.1
# gets 400 (ALLOWED_HOSTS) or 301 (SECURE_SSL_REDIRECT) in production.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "deploy/healthcheck.py", "/healthz"]
CMD ["gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py"]
