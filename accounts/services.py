from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import Role, User
from audit.services import audit_record, changes


@transaction.atomic
def user_create(*, username: str, password: str, role: str, email: str = "") -> User:
    """Create a user with a validated password. Admins get the Django admin (staff + superuser);
    nobody else does. Raises ``ValidationError`` (a field → messages dict) for a taken username,
    a weak password or an unknown role."""
    if role not in Role.values:
        raise ValidationError({"role": [f"unknown role {role!r}; choose one of {', '.join(Role.values)}"]})
    user = User(username=username, email=email, role=role, is_staff=role == Role.ADMIN, is_superuser=role == Role.ADMIN)
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


def user_state(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "role": user.role,
        "is_active": user.is_active,
        "email": user.email,
        "api_requests_per_hour": user.api_requests_per_hour,
        "api_burst_per_second": user.api_burst_per_second,
    }


def user_save(*, user: User, actor: User, before: dict[str, object] | None) -> User:
    """Save an admin's edit of a user (or a new user, ``before=None``) and audit what changed.
    Admin role and Django-admin access go together: staff/superuser follow the role."""
    user.is_staff = user.is_superuser = user.role == Role.ADMIN
    with transaction.atomic():
        user.save()
        after = user_state(user)
        if before is None:
            audit_record(event_type="user.created", actor=actor, obj=user, after=after)
        else:
            old, new = changes(before, after)
            if old or new:
                audit_record(event_type="user.changed", actor=actor, obj=user, before=old, after=new)
    return user


def api_client_deactivate(*, client: User, actor: User) -> User:
    """Stop an API client: it can no longer log in, and its outstanding refresh tokens are
    blacklisted (access tokens die within their short lifetime; deactivated users are refused)."""
    with transaction.atomic():
        client.is_active = False
        client.save(update_fields=["is_active"])
        revoked = _blacklist_refresh_tokens(client)
        audit_record(
            event_type="api_client.deactivated",
            actor=actor,
            obj=client,
            before={"is_active": True},
            after={"is_active": False, "tokens_revoked": revoked},
        )
    return client


def api_client_rotate_credentials(*, client: User, actor: User) -> str:
    """Give an API client a new random password (returned once, never stored in clear) and
    revoke its refresh tokens, so the old credentials stop working at once."""
    password = secrets.token_urlsafe(24)
    with transaction.atomic():
        client.set_password(password)
        client.save(update_fields=["password"])
        revoked = _blacklist_refresh_tokens(client)
        audit_record(
            event_type="api_client.credentials_rotated", actor=actor, obj=client, after={"tokens_revoked": revoked}
        )
    return password


def _blacklist_refresh_tokens(user: User) -> int:
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    tokens = list(outstanding)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in tokens], ignore_conflicts=True)
    return len(tokens)


def auth_attempt_record(*, user: User | None, username: str, success: bool, channel: str) -> None:
    """Audit a login (console or admin) or token request, successful or not. The attempted
    username is kept; the password never is."""
    audit_record(
        event_type=f"auth.{channel}" if success else f"auth.{channel}_failed",
        actor=user,
        actor_label=username[:150] or "(blank)",
        object_type="accounts.user",
        object_id=str(user.pk) if user else "",
        success=success,
    )


def rate_limit_refusal_record(*, user: User | None, origin: str | None, limit: str, allowed: int, path: str) -> None:
    """Audit the first refused request of a client (or, signed out, an address) in a rate-limit
    window."""
    audit_record(
        event_type="rate_limit.exceeded",
        actor=user,
        actor_label=None if user else (origin or "anonymous"),
        success=False,
        after={"limit": limit, "allowed": allowed, "path": path},
    )
