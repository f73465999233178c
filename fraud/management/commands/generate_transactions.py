from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from fraud.management.arguments import utc_date
from fraud.modelops.services.history import history_generate


class Command(BaseCommand):
    help = "Write a realistic synthetic transaction history with labelled fraud (same arguments, same data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--customers", type=int, default=2000)
        parser.add_argument("--merchants", type=int, default=300)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--start", type=utc_date, default=utc_date("2026-01-01"), help="first day (UTC), default 2026-01-01"
        )
        parser.add_argument("--owner", default="demo-client", help="username of the API client that owns the history")

    def handle(self, *args: object, **opts: object) -> None:
        for name in ("days", "customers", "merchants"):
            if int(opts[name]) < 1:  # type: ignore[call-overload]
                raise CommandError(f"--{name} must be at least 1")
        owner = User.objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {opts['owner']!r}: create it with `manage.py create_user --role api_client`")
        written = history_generate(
            owner=owner,
            days=int(opts["days"]),  # type: ignore[call-overload]
            customers=int(opts["customers"]),  # type: ignore[call-overload]
            merchants=int(opts["merchants"]),  # type: ignore[call-overload]
            seed=int(opts["seed"]),  # type: ignore[call-overload]
            start=opts["start"],  # type: ignore[arg-type]
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {written} transactions for {owner.username}"))
