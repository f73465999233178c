"""COPY-based bulk inserts (cipherguard/bulk.py): ids from the sequence, defaults filled, values exact,
and a duplicate fails the whole insert with Django's IntegrityError."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from cipherguard.bulk import copy_insert
from fraud.models import Transaction
from tests.factories import TransactionFactory


def build(owner, n, prefix="b"):
    template = TransactionFactory.build(owner=owner)
    out = []
    for i in range(n):
        tx = Transaction(
            **{f.attname: getattr(template, f.attname) for f in Transaction._meta.concrete_fields if not f.primary_key}
        )
        tx.transaction_id, tx.amount, tx.reasons = f"{prefix}-{i}", Decimal(f"{i + 1}.25"), [{"code": "X", "n": i}]
        tx.fraud_score, tx.decision = 0.5, "review"
        out.append(tx)
    return out


def test_rows_arrive_with_ids_defaults_and_exact_values(postgres, alice):
    rows = copy_insert(Transaction, build(alice, 25))
    assert all(tx.pk for tx in rows) and len({tx.pk for tx in rows}) == 25
    stored = {tx.transaction_id: tx for tx in Transaction.objects.filter(owner=alice)}
    assert len(stored) == 25
    assert stored["b-3"].amount == Decimal("4.25") and stored["b-3"].reasons == [{"code": "X", "n": 3}]
    assert stored["b-3"].created_at is not None and stored["b-3"].pk == rows[3].pk


def test_a_duplicate_fails_the_whole_copy_with_integrity_error(postgres, alice):
    copy_insert(Transaction, build(alice, 3))
    with pytest.raises(IntegrityError), transaction.atomic():
        copy_insert(Transaction, build(alice, 5, prefix="c") + build(alice, 1))  # b-0 again
    assert Transaction.objects.filter(owner=alice).count() == 3
