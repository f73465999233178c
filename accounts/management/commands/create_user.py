from __future__ import annotations

import getpass
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role
from accounts.services import user_create


class Command(BaseCommand):
    help = "Create a user with a role. Password from CIPHERGUARD_USER_PASSWORD, else prompted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--email", default="")

    def handle(self, *args: object, **options: object) -> None:
        password = os.environ.get("CIPHERGUARD_USER_PASSWORD") or ""
        if not password:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("passwords do not match")
        try:
            user = user_create(
                username=str(options["username"]),
                password=password,
                role=str(options["role"]),
                email=str(options["email"]),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(self.style.SUCCESS(f"created {user.role} {user.username}"))
