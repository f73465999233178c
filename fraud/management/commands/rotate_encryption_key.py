from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fraud.transactions.services import card_keys_rotate
from fraud.webhooks.services import webhook_secrets_reseal


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored card number and re-seal every webhook signing secret under the current "
        "ENCRYPTION_KEY. Put the previous key in ENCRYPTION_OLD_KEYS first; remove it once this has run everywhere."
    )

    def handle(self, *args: object, **opts: object) -> None:
        try:
            cards = card_keys_rotate()
            webhooks = webhook_secrets_reseal()
        except LookupError as exc:  # a card's UnknownKeyError, or a webhook secret's unknown key
            raise CommandError(f"{exc}: add the previous key to ENCRYPTION_OLD_KEYS and run again") from None
        self.stdout.write(
            f"re-encrypted {cards['reencrypted']} card numbers under key {cards['key_id']}; "
            f"{cards['already_current']} were already current"
        )
        self.stdout.write(
            f"re-sealed the signing secrets of {webhooks['resealed']} webhook endpoints; "
            f"{webhooks['already_current']} were already current"
        )
