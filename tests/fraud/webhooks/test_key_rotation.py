"""Rotating ENCRYPTION_KEY: `manage.py rotate_encryption_key` re-seals every webhook signing secret
under the new key (the secrets themselves unchanged), so the old key can then be dropped."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from audit.models import AuditEvent
from fraud.models import WebhookEndpoint, WebhookEventType
from fraud.transactions.builder import card_vault
from fraud.webhooks import delivery as deliveries
from fraud.webhooks.events import webhook_events_record
from fraud.webhooks.services import webhook_endpoint_create, webhook_endpoint_rotate_secret, webhook_secrets_reseal

FLAGGED = WebhookEventType.TRANSACTION_FLAGGED
NEW_KEY = "a-brand-new-encryption-key-of-enough-length"


@pytest.fixture
def fresh_keys() -> Iterator[None]:
    """The key holders are cached per process: forget them when the test changes the keys, and again after."""
    deliveries.secret_box.cache_clear()
    card_vault.cache_clear()
    yield
    deliveries.secret_box.cache_clear()
    card_vault.cache_clear()


def key_of(sealed: str) -> str:
    return sealed.split(":")[1]


def test_the_rotation_command_reseals_webhook_secrets_and_both_still_sign(alice, receiver, settings, fresh_keys):
    first = webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    # Mid secret rotation: the previous secret still signs, and is sealed too.
    current = webhook_endpoint_rotate_secret(endpoint=first.endpoint, actor=alice, overlap_hours=24)
    old_id = deliveries.secret_box().current_id

    settings.ENCRYPTION_KEY, settings.ENCRYPTION_OLD_KEYS = NEW_KEY, (settings.ENCRYPTION_KEY,)
    deliveries.secret_box.cache_clear()
    card_vault.cache_clear()
    call_command("rotate_encryption_key", stdout=(out := io.StringIO()))

    assert "re-sealed the signing secrets of 1 webhook endpoints; 0 were already current" in out.getvalue()
    # The old key is gone: what was sealed under it would no longer open.
    settings.ENCRYPTION_OLD_KEYS = ()
    deliveries.secret_box.cache_clear()
    new_id = deliveries.secret_box().current_id
    endpoint = WebhookEndpoint.objects.get()
    assert new_id != old_id
    assert key_of(endpoint.secret) == key_of(endpoint.previous_secret) == new_id
    with transaction.atomic():
        webhook_events_record(event_type=FLAGGED, owner=alice, payloads=[{"transaction_id": "K1"}])
    [outcome] = deliveries.webhook_deliveries_send(delivery_ids=list(endpoint.deliveries.values_list("pk", flat=True)))
    assert outcome.status == "delivered"
    # The same two secrets as before the key rotation: a receiver holding either verifies.
    assert receiver.verified(current.secret) == receiver.verified(first.secret) != []

    assert webhook_secrets_reseal()["resealed"] == 0  # nothing left: safe to repeat
    audited = AuditEvent.objects.filter(event_type="webhook_secrets.resealed").order_by("seq")
    assert list(audited.values_list("after", flat=True)) == [
        {"key_id": new_id, "resealed": 1},
        {"key_id": new_id, "resealed": 0},
    ]


def test_a_secret_under_an_unknown_key_stops_the_command_and_changes_nothing(alice, receiver, settings, fresh_keys):
    webhook_endpoint_create(owner=alice, url=receiver.url, event_types=[FLAGGED])
    sealed = WebhookEndpoint.objects.get().secret

    settings.ENCRYPTION_KEY, settings.ENCRYPTION_OLD_KEYS = NEW_KEY, ()  # the old key forgotten
    deliveries.secret_box.cache_clear()
    card_vault.cache_clear()
    with pytest.raises(CommandError, match="add the previous key to ENCRYPTION_OLD_KEYS"):
        call_command("rotate_encryption_key", stdout=io.StringIO())

    assert WebhookEndpoint.objects.get().secret == sealed
    assert not AuditEvent.objects.filter(event_type="webhook_secrets.resealed").exists()
