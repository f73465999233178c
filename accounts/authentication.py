"""API authentication: simplejwt's JWT check, with each client's user row kept briefly in the
process.

Looking the user up on every request was 13 % of a scoring request's time (one query). The row
is kept for ``API_USER_CACHE_SECONDS`` (10 s by default): deactivating a client, changing its
role or quota reaches every web process within that time. Token validity (signature, expiry,
audience, issuer) is still checked on every request."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.conf import settings
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings

_MAX_USERS = 10_000


class _UserCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, user_id: Any) -> Any | None:
        ttl = settings.API_USER_CACHE_SECONDS
        with self._lock:
            hit = self._rows.get(user_id)
            if hit is None or time.monotonic() - hit[0] >= ttl:
                return None
            self._rows.move_to_end(user_id)
            return hit[1]

    def put(self, user_id: Any, user: Any) -> None:
        if settings.API_USER_CACHE_SECONDS <= 0:
            return
        with self._lock:
            self._rows[user_id] = (time.monotonic(), user)
            self._rows.move_to_end(user_id)
            while len(self._rows) > _MAX_USERS:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


users = _UserCache()


class CachedJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token: Any) -> Any:
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        user = users.get(user_id) if user_id is not None else None
        if user is None:
            user = super().get_user(validated_token)  # the row, refused when missing or inactive
            users.put(user_id, user)
        return user


class CachedJWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme: the same bearer JWT as simplejwt's."""

    target_class = "accounts.authentication.CachedJWTAuthentication"
