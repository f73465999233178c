"""Rate limits on django-ratelimit, with one decided behaviour per endpoint when the counter
store (Redis) is unreachable:

- fail closed (token endpoints, console login): better to refuse a login than to let a password
  guesser through unmetered — answered with 503 and ``Retry-After``;
- fail open (scoring and the rest of the API): a payment must still be scored; the outage is
  logged, and authentication, lockout and per-request limits still apply.

Over a limit: 429 with ``Retry-After`` (seconds left in the window), and one audit event per
client and window (not one per refused request, which would let a flood fill the trail)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework import exceptions

logger = logging.getLogger(__name__)


class RateLimiterUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "Sign-in is briefly unavailable; try again shortly."
    default_code = "rate_limiter_unavailable"

    def __init__(self) -> None:
        super().__init__()
        self.wait = 30


@dataclass(frozen=True)
class Limit:
    group: str
    key: str  # "ip" or "user"
    rate: str | Callable[[str, Any], str]


def user_hourly_quota(group: str, request: Any) -> str:
    return f"{getattr(request.user, 'api_requests_per_hour', None) or settings.RATE_LIMIT_USER_PER_HOUR}/h"


def user_burst(group: str, request: Any) -> str:
    return f"{getattr(request.user, 'api_burst_per_second', None) or settings.RATE_LIMIT_BURST_PER_SECOND}/s"


def ip_per_minute(group: str, request: Any) -> str:
    return f"{settings.RATE_LIMIT_PER_MINUTE}/m"


def user_key(group: str, request: Any) -> str:
    return (
        str(request.user.pk)
        if getattr(request.user, "is_authenticated", False)
        else request.META.get("REMOTE_ADDR", "")
    )


API_LIMITS = (Limit("api-hour", "user", user_hourly_quota), Limit("api-burst", "user", user_burst))
TOKEN_LIMITS = (Limit("token-ip", "ip", ip_per_minute),)


def enforce(request: Any, limits: tuple[Limit, ...], *, fail_closed: bool) -> None:
    """Count this request against each limit; raise Throttled (429) when one is exceeded."""
    if not settings.RATE_LIMIT_ENABLED:
        return
    for limit in limits:
        key = "ip" if limit.key == "ip" else user_key
        try:
            usage = get_usage(request, group=limit.group, key=key, rate=limit.rate, increment=True)
        except Exception as exc:  # the counter store is down: the endpoint's decided behaviour
            logger.warning("rate limiter unavailable (%s) on %s", type(exc).__name__, limit.group)
            if fail_closed:
                raise RateLimiterUnavailable() from None
            return
        if usage is None:
            continue
        if usage["should_limit"]:
            if usage["count"] == usage["limit"] + 1:  # the first refusal in this window
                _audit(request, limit, usage)
            raise exceptions.Throttled(wait=max(1, usage["time_left"]))


def _audit(request: Any, limit: Limit, usage: dict[str, Any]) -> None:
    from audit.services import audit_record

    user = request.user if getattr(request.user, "is_authenticated", False) else None
    audit_record(
        event_type="rate_limit.exceeded",
        actor=user,
        actor_label=None if user else (request.META.get("REMOTE_ADDR") or "anonymous"),
        success=False,
        after={"limit": limit.group, "allowed": usage["limit"], "path": request.path},
    )


class ApiThrottle:
    """DRF throttle for the API: the client's hourly quota and burst limit; fails open."""

    def allow_request(self, request: Any, view: Any) -> bool:
        enforce(request, API_LIMITS, fail_closed=False)
        return True

    def wait(self) -> None:
        return None


class TokenThrottle(ApiThrottle):
    """DRF throttle for the token endpoints: per IP; fails closed."""

    def allow_request(self, request: Any, view: Any) -> bool:
        enforce(request, TOKEN_LIMITS, fail_closed=True)
        return True
