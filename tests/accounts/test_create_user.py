from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Role, User


def test_it_creates_a_user_with_the_password_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("CIPHERGUARD_USER_PASSWORD", "a-long-enough-passphrase")
    call_command("create_user", "erin", "--role", "analyst", stdout=StringIO())
    user = User.objects.get(username="erin")
    assert user.role == Role.ANALYST and user.check_password("a-long-enough-passphrase")
    assert not user.is_staff


def test_admins_get_the_django_admin(db, monkeypatch):
    monkeypatch.setenv("CIPHERGUARD_USER_PASSWORD", "a-long-enough-passphrase")
    call_command("create_user", "frank", "--role", "admin", stdout=StringIO())
    assert User.objects.get(username="frank").is_staff


def test_a_short_password_is_refused(db, monkeypatch):
    monkeypatch.setenv("CIPHERGUARD_USER_PASSWORD", "short")
    with pytest.raises(CommandError, match="password"):
        call_command("create_user", "gina", "--role", "api_client", stdout=StringIO())
    assert not User.objects.filter(username="gina").exists()


def test_a_taken_username_is_refused(db, monkeypatch):
    monkeypatch.setenv("CIPHERGUARD_USER_PASSWORD", "a-long-enough-passphrase")
    call_command("create_user", "hank", "--role", "api_client", stdout=StringIO())
    with pytest.raises(CommandError, match="username"):
        call_command("create_user", "hank", "--role", "api_client", stdout=StringIO())


def test_it_prompts_when_no_password_is_in_the_environment(db, monkeypatch):
    monkeypatch.delenv("CIPHERGUARD_USER_PASSWORD", raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "typed-at-the-prompt-123")
    call_command("create_user", "ivy", "--role", "api_client", stdout=StringIO())
    assert User.objects.get(username="ivy").check_password("typed-at-the-prompt-123")
