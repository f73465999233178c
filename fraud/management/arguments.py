"""Argument types shared by the fraud management commands."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError


def utc_date(value: str) -> datetime:
    """``YYYY-MM-DD`` as midnight UTC; a clear CommandError otherwise."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise CommandError(f"expected a date like 2026-01-31, got {value!r}") from None
