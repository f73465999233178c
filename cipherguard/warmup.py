"""Start-up work done before a web worker takes its first request (deploy/gunicorn.conf.py)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Import the URLconf and every view, and load the active model's ONNX session. A database
    that is not there yet is fine: the first request then does it."""
    from django.db import close_old_connections, connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - importing every view is the point
    try:
        from fraud.scoring import runtime

        runtime.current()
    except Exception as exc:  # no database or no model yet: readiness reports it
        logger.warning("warm-up: model not loaded (%s)", type(exc).__name__)
    finally:
        close_old_connections()
        for conn in connections.all(initialized_only=True):
            conn.close()  # back to the pool
