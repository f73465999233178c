"""gunicorn settings shared by `make run`, the Docker image and the benchmark.

Sync workers, one per core: measured on 2 cores, gthread and more workers than cores gave no
more throughput and a worse p99 (see ../shared/MEASURED.md and docs/performance.md)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
limit_request_line = 4094  # gunicorn's default, stated: the API documents the 414 (cipherguard.api)
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # off by default: the app logs what matters
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One onnxruntime/OpenMP thread per worker: extra threads on shared cores made inference up to
# 1000x slower under load.
raw_env = ["OMP_NUM_THREADS=1"]
# gunicorn 27's control socket lives under $HOME, read-only in our containers; we do not use it.
control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its metrics to files here and /metrics sums
# them. Set before the app (and prometheus_client) is imported; emptied at each start so a
# previous run's counts are not added again. One directory per server: never share it.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parent.parent / "var" / "prometheus" / "web")
)


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn hook
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


# The application and its libraries are loaded once, in the master; the workers are forked from it
# and share those pages copy-on-write, so each worker's own memory (USS, and its PSS) is what it
# allocates after the fork: mostly its own ONNX session (see when_ready). GUNICORN_PRELOAD=false
# loads everything in every worker instead: needed for `kill -HUP` to pick up new code, which a
# preloaded master cannot do.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").strip().lower() not in {"0", "false", "no", "off"}


def _freeze() -> None:
    """``gc.freeze()`` moves what start-up allocated to a permanent generation: a full collection
    walked ~150,000 start-up objects, a 65 ms pause every ~1,500 requests that set the p99
    (measured; docs/performance.md); in a preloaded master it also keeps collections in the
    workers from writing to, and so copying, the shared pages. Then the heap that loading freed
    goes back to the operating system (cipherguard.memory)."""
    import gc

    from cipherguard.memory import return_free_heap

    gc.freeze()
    return_free_heap()


def when_ready(server):  # noqa: ANN001, ANN201 - gunicorn hook, in the master before the first fork
    """Django loads URLs, views and the model lazily, on the first request; warming up keeps that
    off a client's clock. A preloading master warms what workers can share; the model's ONNX
    session is not among it (its C++ threads do not survive a fork: a worker that inherited one
    aborted when it exited), so each worker loads its own."""
    if preload_app:
        from cipherguard.warmup import before_fork, warm_up

        warm_up(process=False)
        _freeze()
        before_fork()


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn hook, in each worker
    from cipherguard.warmup import warm_up, warm_up_process

    if preload_app:
        warm_up_process()
    else:
        warm_up()
    _freeze()


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# gunicorn's own lines (start, worker boot and exit, timeouts) in the app's format, so one log
# pipeline parses everything; `request_id` is "-" on them.
# The same defaults as cipherguard/settings.py: DEBUG is on outside production and tests unless set.
_debug_env = os.environ.get("DEBUG")
_debug = (
    _debug_env.strip().lower() in {"1", "true", "yes", "on"}
    if _debug_env is not None
    else os.environ.get("ENVIRONMENT", "development") not in {"production", "test"}
)
if os.environ.get("LOG_FORMAT", "plain" if _debug else "json") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "cipherguard.logs.RequestIdFilter"}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


class AccessLogOnlyWhenAsked(Logger):
    """gunicorn writes an access line per request whenever a logging config is given (ours is,
    for the JSON format), whatever ``accesslog`` says: measured at 2 % of a worker's samples and
    one more log line per scored transaction beside the decision line. Access lines only with
    GUNICORN_ACCESSLOG set."""

    def access(self, resp, req, environ, request_time):  # noqa: ANN001, ANN201 - gunicorn's signature
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = AccessLogOnlyWhenAsked
