"""State changes of stored transactions: labels (a chargeback, an analyst's verdict) and the
re-encryption of card numbers under a new key."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from fraud.models import Label, LabelSource, Transaction, WebhookEventType
from fraud.transactions.builder import card_vault
from fraud.webhooks import payloads
from fraud.webhooks.events import webhook_events_record


def transaction_label(*, transaction_obj: Transaction, label: str, source: str, actor: User | None) -> Transaction:
    """Record an outcome (a chargeback, an analyst's verdict) as the transaction's label, audit
    it and record its ``transaction.labelled`` webhook event. The label time is now: features
    only count labels known when they score."""
    if label not in Label.values:
        raise ValueError(f"unknown label {label!r}")
    if source not in LabelSource.values:
        raise ValueError(f"unknown label source {source!r}")
    with transaction.atomic():
        before = {"label": transaction_obj.label, "label_source": transaction_obj.label_source}
        transaction_obj.label = label
        transaction_obj.label_source = source
        transaction_obj.label_time = timezone.now()
        transaction_obj.save(update_fields=["label", "label_source", "label_time"])
        audit_record(
            event_type="transaction.labelled",
            actor=actor,
            obj=transaction_obj,
            before=before,
            after={"label": label, "label_source": source, "transaction_id": transaction_obj.transaction_id},
        )
        # A repeated report (a client retrying its feedback) is audited but not announced again:
        # the receiver would get a second event with a new id it could not tell was the same.
        if before != {"label": label, "label_source": source}:
            webhook_events_record(
                event_type=WebhookEventType.TRANSACTION_LABELLED,
                owner=transaction_obj.owner,
                payloads=[payloads.transaction_labelled(transaction_obj)],
            )
    return transaction_obj


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
