"""Rules the database itself keeps, whatever code writes the row."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from fraud.models import DecidedBy
from tests.factories import TransactionFactory


@pytest.mark.parametrize("value", [*DecidedBy.values, ""])
def test_decided_by_takes_its_choices(db, value):
    assert TransactionFactory(decided_by=value).decided_by == value


def test_decided_by_refuses_anything_else(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        TransactionFactory(decided_by="robot")
