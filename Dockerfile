# One image for web, worker and beat. Multi-stage: build wheels once, ship a slim runtime.
FROM python:3.11-slim AS builder
WORKDIR /build
COPY requirements.txt requirements-dev.txt constraints.txt ./
RUN pip install --no-cache-dir --upgrade pip==26.3 \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt -c constraints.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
    DJANGO_SETTINGS_MODULE=cipherguard.settings CIPHERGUARD_VAR_DIR=/app/var
RUN groupadd --system app && useradd --system --gid app --home /app app
WORKDIR /app
COPY --from=builder /wheels /wheels
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt -c constraints.txt && rm -rf /wheels
COPY --chown=app:app . .
RUN mkdir -p /app/var && chown app:app /app/var \
 && SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["gunicorn", "cipherguard.wsgi", "--config", "deploy/gunicorn.conf.py"]
