from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fraud.transactions.cards import UnknownKeyError
from fraud.transactions.services import card_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored card number under the current ENCRYPTION_KEY. Put the previous key in "
        "ENCRYPTION_OLD_KEYS first; remove it once this has run everywhere."
    )

    def handle(self, *args: object, **opts: object) -> None:
        try:
            report = card_keys_rotate()
        except UnknownKeyError as exc:
            raise CommandError(f"{exc}: add the previous key to ENCRYPTION_OLD_KEYS and run again") from None
        self.stdout.write(
            f"re-encrypted {report['reencrypted']} card numbers under key {report['key_id']}; {report['already_current']} were already current"
        )
