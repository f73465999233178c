from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from accounts.models import User
from fraud.features import buckets


class Command(BaseCommand):
    help = (
        "The online feature store (hour and day buckets kept by database triggers): `rebuild` recomputes it from "
        "the transaction table (all of it, or one client's part with --owner); `check` compares the live store "
        "with that recomputation and fails on any difference."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["rebuild", "check"])
        parser.add_argument("--owner", help="username of one API client (rebuild only)")

    def handle(self, *args: object, **opts: object) -> None:
        started = time.monotonic()
        if opts["action"] == "check":
            diff = buckets.differences(connection)
            if diff:
                listing = "\n".join(f"  {row}" for row in diff)
                raise CommandError(f"the feature store differs from the transaction table (first rows):\n{listing}")
            self.stdout.write(f"feature store exact ({time.monotonic() - started:.1f} s)")
            return
        owner_id = None
        if opts["owner"]:
            owner = User.objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {opts['owner']!r}; the API clients are listed in the admin (Users)")
            owner_id = owner.pk
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Writers wait (readers do not) while the store is recomputed, so none is missed.
                with connection.cursor() as cursor:
                    cursor.execute(f"LOCK TABLE {buckets.TX} IN SHARE MODE")
            written = buckets.rebuild(connection, owner_id=owner_id)
        self.stdout.write(f"feature store rebuilt: {written} bucket rows ({time.monotonic() - started:.1f} s)")
