"""Rate limits on django-ratelimit, with one decided behaviour per endpoint when the counter
store (Redis) is unreachable:

- fail closed (token endpoints, console login): better to refuse a login than to let a password
  guesser through unmetered — answered with 503 and ``Retry-After``;
- fail open (scoring and the rest of the API): a payment must still be scored; the outage is
  logged, and authentication, lockout and per-request limits still apply.

Over a limit: 429 with ``Retry-After`` (seconds left in the window), and ``rate_limit_exceeded``
sent once per client and window (not once per refused request, which would let a flood fill the
audit trail, where the accounts app records it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.dispatch import Signal
from django_ratelimit import ALL
from django_ratelimit.core import (  # the window and key helpers: django-ratelimit==4.1.0 is pinned
    _SIMPLE_KEYS,
    EXPIRATION_FUDGE,
    _get_window,
    _make_cache_key,
    _split_rate,
    get_usage,
)
from django_redis.cache import RedisCache
from rest_framework import exceptions

logger = logging.getLogger(__name__)

# The first refused request of a client (or address) in a window: ``request``, ``limit`` (the
# group), ``allowed`` (requests per window). Receivers run in the request, before the 429.
rate_limit_exceeded = Signal()


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
    key: str | Callable[[str, Any], str]  # "ip", "user", or (group, request) -> the counter's key
    rate: str | Callable[[str, Any], str]


def user_hourly_quota(group: str, request: Any) -> str:
    return f"{getattr(request.user, 'api_requests_per_hour', None) or settings.RATE_LIMIT_USER_PER_HOUR}/h"


def user_burst(group: str, request: Any) -> str:
    return f"{getattr(request.user, 'api_burst_per_second', None) or settings.RATE_LIMIT_BURST_PER_SECOND}/s"


def ip_per_minute(group: str, request: Any) -> str:
    return f"{settings.RATE_LIMIT_PER_MINUTE}/m"


def token_per_minute(group: str, request: Any) -> str:
    return f"{settings.RATE_LIMIT_TOKEN_PER_MINUTE}/m"


def refresh_per_minute(group: str, request: Any) -> str:
    return f"{settings.RATE_LIMIT_REFRESH_PER_MINUTE}/m"


def client_ip(request: Any) -> str:
    """The address the "ip" limits count (django-ratelimit's, so ``RATELIMIT_IP_META_KEY`` applies)."""
    return _SIMPLE_KEYS["ip"](request)


def user_key(group: str, request: Any) -> str:
    return (
        str(request.user.pk)
        if getattr(request.user, "is_authenticated", False)
        else request.META.get("REMOTE_ADDR", "")
    )


def _key(limit: Limit, request: Any) -> str:
    if callable(limit.key):
        return limit.key(limit.group, request)
    return client_ip(request) if limit.key == "ip" else user_key(limit.group, request)


API_LIMITS = (Limit("api-hour", "user", user_hourly_quota), Limit("api-burst", "user", user_burst))
# Signing in with a password, per address. Refreshing has its own limit (accounts.apis), so that
# many clients refreshing behind one address cannot lock everyone there out of signing in.
TOKEN_LIMITS = (Limit("token-ip", "ip", token_per_minute),)


def _usages_pipelined(cache: Any, request: Any, limits: tuple[Limit, ...]) -> list[dict[str, Any]]:
    """django-ratelimit's fixed-window counting (same keys, windows and expiry), for every limit
    in ONE Redis round trip instead of two per limit: the API's two limits cost 4 round trips,
    ~0.6 ms of every scoring request, before this."""
    pipe = cache.client.get_client(write=True).pipeline(transaction=False)
    windows = []
    for limit in limits:
        value = _key(limit, request)
        rate = limit.rate(limit.group, request) if callable(limit.rate) else limit.rate
        allowed, period = _split_rate(rate)
        window = _get_window(value, period)
        key = cache.make_key(_make_cache_key(limit.group, window, rate, value, ALL))
        pipe.set(key, 0, ex=period + EXPIRATION_FUDGE, nx=True)
        pipe.incr(key)
        windows.append((allowed, window))
    counts = pipe.execute()[1::2]
    now = int(time.time())
    return [
        {"count": count, "limit": allowed, "should_limit": count > allowed, "time_left": window - now}
        for count, (allowed, window) in zip(counts, windows, strict=True)
    ]


def _usages(request: Any, limits: tuple[Limit, ...]) -> Sequence[dict[str, Any] | None]:
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if isinstance(cache, RedisCache):
        return _usages_pipelined(cache, request, limits)
    return [
        get_usage(
            request, group=limit.group, key=lambda _, req, lm=limit: _key(lm, req), rate=limit.rate, increment=True
        )
        for limit in limits
    ]


def enforce(request: Any, limits: tuple[Limit, ...], *, fail_closed: bool) -> None:
    """Count this request against each limit; raise Throttled (429) when one is exceeded."""
    if not settings.RATE_LIMIT_ENABLED:
        return
    try:
        usages = _usages(request, limits)
    except Exception as exc:  # the counter store is down: the endpoint's decided behaviour
        logger.warning("rate limiter unavailable (%s) on %s", type(exc).__name__, ",".join(lm.group for lm in limits))
        if fail_closed:
            raise RateLimiterUnavailable() from None
        return
    for limit, usage in zip(limits, usages, strict=True):
        if usage is None:
            continue
        if usage["should_limit"]:
            if usage["count"] == usage["limit"] + 1:  # the first refusal in this window
                rate_limit_exceeded.send(sender=Limit, request=request, limit=limit.group, allowed=usage["limit"])
            raise exceptions.Throttled(wait=max(1, usage["time_left"]))


class ApiThrottle:
    """DRF throttle for the API: the client's hourly quota and burst limit; fails open."""

    def allow_request(self, request: Any, view: Any) -> bool:
        enforce(request, API_LIMITS, fail_closed=False)
        return True

    def wait(self) -> None:
        return None


class TokenThrottle(ApiThrottle):
    """DRF throttle for the token endpoints: ``limits`` (sign-in per IP unless a subclass says
    otherwise); fails closed."""

    limits: tuple[Limit, ...] = TOKEN_LIMITS

    def allow_request(self, request: Any, view: Any) -> bool:
        enforce(request, self.limits, fail_closed=True)
        return True
