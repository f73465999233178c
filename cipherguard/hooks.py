"""How apps plug into the kernel's process-level endpoints without the kernel importing them:
each app may define these methods on its ``AppConfig``, and the kernel calls them in
``INSTALLED_APPS`` order.

- ``readiness_checks() -> dict[str, Callable[[], str]]``: named checks for ``/readyz``, run once
  the database answered; each returns the status to report ("unavailable" means not ready), and
  one that raises counts as unavailable.
- ``warm_up() -> None``: work a web worker does before its first request (loading a model).
- ``state_collectors() -> list[Collector]``: Prometheus collectors read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps


def app_hooks(name: str) -> list[Callable[..., Any]]:
    """The installed apps' ``name`` methods, in ``INSTALLED_APPS`` order."""
    return [hook for config in apps.get_app_configs() if (hook := getattr(config, name, None)) is not None]
