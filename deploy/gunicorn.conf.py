"""gunicorn settings shared by `make run`, the Docker image and the benchmark.

Sync workers, one per core: measured on 2 cores, gthread and more workers than cores gave no
more throughput and a worse p99 (see ../shared/MEASURED.md and docs/performance.md)."""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # off by default: the app logs what matters
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One onnxruntime/OpenMP thread per worker: extra threads on shared cores made inference up to
# 1000x slower under load.
raw_env = ["OMP_NUM_THREADS=1"]
