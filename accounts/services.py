from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Role, User


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
