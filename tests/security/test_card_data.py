"""Card numbers: validated, stored only encrypted, fingerprinted and masked — and found nowhere else."""

from __future__ import annotations

import json
import logging

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from fraud.models import BatchChunk, Transaction
from fraud.transactions.builder import card_vault
from fraud.transactions.cards import CardVault, luhn_valid
from tests.fraud.scoring.test_scoring_api import URL, body

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


@pytest.fixture(autouse=True)
def _fresh_vault():
    card_vault.cache_clear()
    yield
    card_vault.cache_clear()


def test_luhn():
    assert luhn_valid(VISA) and luhn_valid(AMEX) and not luhn_valid("4111111111111112")


def test_a_card_is_stored_encrypted_fingerprinted_and_masked(alice_api, alice, active_model):
    response = alice_api.post(URL, body(transaction_id="card-1", card_number=VISA), format="json")
    assert response.status_code == 201
    assert VISA not in response.content.decode()
    tx = Transaction.objects.get(owner=alice, transaction_id="card-1")
    assert (tx.card_first6, tx.card_last4) == ("411111", "1111")
    assert tx.card_ciphertext.startswith("v1:") and VISA not in tx.card_ciphertext
    assert card_vault().decrypt(tx.card_ciphertext) == VISA
    assert len(tx.card_fingerprint) == 64 and tx.card_fingerprint == card_vault().fingerprint(VISA)
    detail = alice_api.get(f"{URL}card-1/").json()
    assert detail["card"] == "411111······1111"


def test_fingerprints_are_keyed_not_plain_hashes():
    import hashlib

    a = CardVault(current_key="k" * 40, fingerprint_key="f" * 40)
    b = CardVault(current_key="k" * 40, fingerprint_key="g" * 40)
    assert a.fingerprint(VISA) != b.fingerprint(VISA)
    assert a.fingerprint(VISA) != hashlib.sha256(VISA.encode()).hexdigest()


@pytest.mark.parametrize(
    "pan",
    [
        "٤١١١١١١١١١١١١١١١",
        "4111 1111 1111 1111",
        "41111111111",
        "41111111111111111111",
        "4111111111111112",
        4111111111111111,
        "",
    ],
)
def test_a_bad_card_number_is_refused_without_echoing_it(alice_api, active_model, pan):
    response = alice_api.post(URL, body(card_number=pan), format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["card_number"]
    if isinstance(pan, str) and pan:
        assert pan not in response.content.decode()
    assert not Transaction.objects.exists()


@pytest.mark.parametrize("field", ["cvv", "CVC", "cvv2", "security_code"])
def test_a_card_security_code_is_never_accepted(alice_api, active_model, field):
    response = alice_api.post(URL, body(card_number=VISA, **{field: "123"}), format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {field: ["Card security codes are never accepted."]}
    assert not Transaction.objects.exists()


def test_the_card_is_part_of_the_idempotency_check(alice_api, active_model):
    assert alice_api.post(URL, body(transaction_id="c", card_number=VISA), format="json").status_code == 201
    assert alice_api.post(URL, body(transaction_id="c", card_number=VISA), format="json").status_code == 200
    assert alice_api.post(URL, body(transaction_id="c", card_number=MASTERCARD), format="json").status_code == 409


def test_batch_jobs_refuse_card_numbers_before_storing_anything(alice_api, active_model):
    items = [body(transaction_id="b1", card_number=VISA), body(transaction_id="b2")]
    job_id = alice_api.post("/api/v1/batches/", {"transactions": items}, format="json").json()["id"]
    assert VISA not in json.dumps(list(BatchChunk.objects.filter(job_id=job_id).values_list("rows", flat=True)))
    from fraud.models import BatchItem
    from tests.helpers import run_batch_job

    run_batch_job(job_id)
    items_by_row = {i.row: i for i in BatchItem.objects.filter(job_id=job_id)}
    assert items_by_row[1].status == 400 and "card_number" in items_by_row[1].errors  # reported, not dropped
    assert items_by_row[2].status == 201


def test_keys_rotate_and_old_ciphertexts_stay_readable_meanwhile(alice_api, alice, active_model, settings):
    alice_api.post(URL, body(transaction_id="r1", card_number=VISA), format="json")
    alice_api.post(URL, body(transaction_id="r2", customer_id="C2", card_number=AMEX), format="json")
    old_key, old_id = settings.ENCRYPTION_KEY, card_vault().current_id
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_OLD_KEYS = "a-brand-new-encryption-key-of-enough-length", (old_key,)
    card_vault.cache_clear()
    assert card_vault().current_id != old_id

    call_command("rotate_encryption_key", stdout=(out := __import__("io").StringIO()))
    assert "re-encrypted 2 card numbers" in out.getvalue()
    settings.ENCRYPTION_OLD_KEYS = ()
    card_vault.cache_clear()
    for tid, pan in (("r1", VISA), ("r2", AMEX)):
        tx = Transaction.objects.get(owner=alice, transaction_id=tid)
        assert card_vault().key_of(tx.card_ciphertext) == card_vault().current_id
        assert card_vault().decrypt(tx.card_ciphertext) == pan


def test_after_posting_cards_no_table_log_or_cache_holds_a_full_pan(alice_api, active_model, caplog, settings):
    caplog.set_level(logging.DEBUG)
    pans = [VISA, MASTERCARD, AMEX]
    for i, pan in enumerate(pans):
        alice_api.post(URL, body(transaction_id=f"scan-{i}", customer_id=f"S{i}", card_number=pan), format="json")
    alice_api.post(
        URL + "batch/",
        {"transactions": [body(transaction_id="scan-b", customer_id="SB", card_number=VISA)]},
        format="json",
    )
    alice_api.post(URL, body(transaction_id="scan-bad", card_number="4111111111111112"), format="json")
    alice_api.post(URL, body(transaction_id="scan-cvv", card_number=AMEX, cvv="123"), format="json")
    assert Transaction.objects.filter(card_first6__in=["411111", "555555", "378282"]).count() == 4

    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            columns = [f.column for f in model._meta.concrete_fields]
            quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")  # noqa: S608 - our own tables
            for row in cursor.fetchall():
                text = " ".join(str(v) for v in row)
                found += [(table, pan) for pan in [*pans, "4111111111111112"] if pan in text]
    assert found == []
    assert not any(pan in record.getMessage() for record in caplog.records for pan in pans)
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        redis = get_redis_connection("default")
        for key in redis.scan_iter("*"):
            value = redis.dump(key) or b""
            assert not any(pan.encode() in key or pan.encode() in value for pan in pans)


def test_a_card_security_code_and_other_errors_are_reported_together(alice_api, active_model):
    response = alice_api.post(URL, body(cvv="123", colour="red", amount="-5"), format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"cvv", "colour", "amount"} and "123" not in response.content.decode()
