"""Time spans in the console's words. Django's ``timesince`` says "0 minutes" for anything under
a minute, which read as a bug on a case closed a moment ago ("Closed 0 minutes ago")."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

register = template.Library()

MINUTE = timedelta(minutes=1)


@register.filter
def ago(value: datetime | None) -> str:
    """ "just now" within the last minute, else "3 hours, 5 minutes ago"."""
    if value is None:
        return ""
    if timezone.now() - value < MINUTE:
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def since(value: datetime | None) -> str:
    """How long since ``value`` ("less than a minute", "2 days, 3 hours"), for "overdue by …"."""
    if value is None:
        return ""
    return "less than a minute" if timezone.now() - value < MINUTE else timesince(value)


@register.filter
def until(value: datetime | None) -> str:
    """How long until ``value`` ("less than a minute", "23 hours, 59 minutes"), for "due in …"."""
    if value is None:
        return ""
    return "less than a minute" if value - timezone.now() < MINUTE else timeuntil(value)
