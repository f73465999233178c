"""Card-data key management."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_record
from fraud.models import Transaction
from fraud.services.transactions import card_vault


def card_keys_rotate(*, batch_size: int = 1000) -> dict[str, object]:
    """Re-encrypt every stored PAN whose ciphertext names another key, in batches, each batch in
    its own transaction (a crash leaves every row readable with the current or an old key)."""
    vault = card_vault()
    prefix = f"v1:{vault.current_id}:"
    stale = Transaction.objects.exclude(card_ciphertext="").exclude(card_ciphertext__startswith=prefix)
    done = 0
    while True:
        with transaction.atomic():
            rows = list(stale.select_for_update().order_by("pk")[:batch_size])
            if not rows:
                break
            for tx in rows:
                tx.card_ciphertext = vault.encrypt(vault.decrypt(tx.card_ciphertext))
            Transaction.objects.bulk_update(rows, ["card_ciphertext"])
            done += len(rows)
    current = Transaction.objects.filter(card_ciphertext__startswith=prefix).count() - done
    audit_record(event_type="card_keys.rotated", after={"key_id": vault.current_id, "reencrypted": done})
    return {"key_id": vault.current_id, "reencrypted": done, "already_current": current}
