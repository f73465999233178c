"""Login outcomes from Django's auth signals, and refusals from the rate limiter's, recorded through
the accounts services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from accounts.services import auth_attempt_record, rate_limit_refusal_record
from cipherguard.ratelimit import rate_limit_exceeded


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    auth_attempt_record(user=user, username=user.get_username(), success=True, channel="login")


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Token requests fail through the same authenticate() call; the path tells them apart.
    channel = "token" if request is not None and request.path.startswith("/api/") else "login"
    auth_attempt_record(user=None, username=str(credentials.get("username", "")), success=False, channel=channel)


@receiver(rate_limit_exceeded)
def _rate_limited(sender: Any, request: Any, limit: str, allowed: int, **kwargs: Any) -> None:
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    rate_limit_refusal_record(
        user=user, origin=request.META.get("REMOTE_ADDR"), limit=limit, allowed=allowed, path=request.path
    )
