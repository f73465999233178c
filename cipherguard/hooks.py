"""How apps plug into the kernel's process-level endpoints without the kernel importing them:
each app may define these methods on its ``AppConfig``, and the kernel calls them in
``INSTALLED_APPS`` order.

- ``readiness_checks() -> dict[str, Callable[[], str]]``: named checks for ``/readyz``, run once
  the database answered; each returns the status to report ("unavailable" means not ready), and
  one that raises counts as unavailable.
- ``warm_up() -> None``: work a web process does before its first request that may be shared
  with forked workers (importing, compiling); a preloading gunicorn master runs it.
- ``warm_up_process() -> None``: work each process must do for itself before its first request:
  state that does not survive a fork (an ONNX session's C++ thread objects: a worker that
  inherits one aborts when it exits).
- ``state_collectors() -> list[Collector]``: Prometheus collectors read at scrape time.
- ``openapi_postprocess(result: dict) -> dict``: a drf-spectacular post-processing step on the
  OpenAPI document (``openapi_app_hooks``, listed in ``SPECTACULAR_SETTINGS``): what an app
  documents that no API view states, such as the bodies it posts to webhooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps


def app_hooks(name: str) -> list[Callable[..., Any]]:
    """The installed apps' ``name`` methods, in ``INSTALLED_APPS`` order."""
    return [hook for config in apps.get_app_configs() if (hook := getattr(config, name, None)) is not None]


def openapi_app_hooks(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: each app's ``openapi_postprocess``, in turn."""
    for hook in app_hooks("openapi_postprocess"):
        result = hook(result)
    return result
