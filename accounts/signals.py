"""Login outcomes from Django's auth signals, recorded through the accounts service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from accounts.services import auth_attempt_record


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    auth_attempt_record(user=user, username=user.get_username(), success=True, channel="login")


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Token requests fail through the same authenticate() call; the path tells them apart.
    channel = "token" if request is not None and request.path.startswith("/api/") else "login"
    auth_attempt_record(user=None, username=str(credentials.get("username", "")), success=False, channel=channel)
