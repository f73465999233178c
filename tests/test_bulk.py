"""COPY-based bulk inserts (cipherguard/bulk.py): ids from the sequence, defaults filled, values exact,
and a duplicate fails the whole insert with Django's IntegrityError."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cipherguard.bulk import _row_maker, copy_insert, insert_one, new_instance
from fraud.models import Decision, Transaction
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


def test_new_instance_is_the_constructors_object(alice, db):
    values = {"owner": alice, "transaction_id": "n-1", "customer_id": "C1", "merchant_id": "M1",
              "amount": Decimal("12.50"), "currency": "EUR", "country": "FR", "timestamp": timezone.now(),
              "fraud_score": 0.25, "decision": Decision.REVIEW, "model_version_id": None}  # fmt: skip
    fast, slow = new_instance(Transaction, **values), Transaction(**values)
    for f in Transaction._meta.concrete_fields:
        assert getattr(fast, f.attname) == getattr(slow, f.attname), f.attname
    assert fast.owner is alice and fast._state.adding and fast.pk is None
    other = new_instance(Transaction, **values)
    assert other.reasons == [] and other.reasons is not fast.reasons  # callable defaults: one each
    with pytest.raises(TypeError, match="no_such_field"):
        new_instance(Transaction, no_such_field=1)


def test_copy_rows_are_the_fields_own_conversions(alice, db):
    """The COPY row skips a field's conversion only where the value is already what it stores;
    it must equal get_db_prep_save(pre_save(...)) field by field (an enum member, a Decimal, a
    datetime, JSON, None and an auto_now_add time included)."""
    tx = build(alice, 1)[0]
    tx.decision, tx.shadow_score, tx.rule_matches = Decision.DECLINE, None, [{"rule": 1}]
    fields = Transaction._meta.concrete_fields
    row = _row_maker(Transaction, connection.alias)(tx)
    stamped = tx.created_at  # auto_now_add: set by the row's own pre_save
    expected = [f.get_db_prep_save(f.pre_save(tx, True), connection) for f in fields]
    created = [f.attname for f in fields].index("created_at")
    assert stamped is not None and row[created] is not None
    row[created] = expected[created]
    assert [str(v) for v in row] == [str(v) for v in expected]
    assert [type(v) for v in row] == [type(v) for v in expected]


def test_insert_one_stores_what_save_would(alice, db):
    fast, slow = build(alice, 2, prefix="one")
    insert_one(fast)
    slow.save(force_insert=True)
    assert fast.pk and not fast._state.adding and fast.pk != slow.pk
    a, b = Transaction.objects.get(pk=fast.pk), Transaction.objects.get(pk=slow.pk)
    differ = {f.attname for f in Transaction._meta.concrete_fields if getattr(a, f.attname) != getattr(b, f.attname)}
    assert differ == {"id", "transaction_id", "amount", "reasons", "created_at"}  # what build() varies, and ids/times
    assert (a.amount, a.reasons, a.decision) == (Decimal("1.25"), [{"code": "X", "n": 0}], "review")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_one(build(alice, 1, prefix="one")[0])  # one-0 again
