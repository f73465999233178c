"""factory-boy factories: the one place tests build model instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from accounts.models import Role, User
from fraud.features import definitions as fx
from fraud.models import Case, ModelVersion, Transaction

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.ANALYST
    password = factory.django.Password(PASSWORD)


class TransactionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Transaction

    owner = factory.SubFactory(UserFactory, role=Role.API_CLIENT)
    transaction_id = factory.Sequence(lambda n: f"tx-{n:06d}")
    customer_id = "C1"
    merchant_id = "M1"
    amount = Decimal("42.00")
    currency = "EUR"
    country = "FR"
    channel = "pos"
    timestamp = factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(days=1))
    request_hash = factory.Sequence(lambda n: f"{n:064d}")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    version = factory.Sequence(lambda n: f"test-model-{n}")
    algorithm = "ensemble_forest_boosting"
    artifact = b""
    artifact_sha256 = ""
    feature_set_version = fx.FEATURE_SET_VERSION
    feature_names = factory.LazyFunction(lambda: list(fx.FEATURE_NAMES))
    neutral_values = factory.LazyFunction(lambda: [0.0] * len(fx.FEATURE_NAMES))
    train_start = datetime(2026, 1, 1, tzinfo=UTC)
    train_end = datetime(2026, 2, 1, tzinfo=UTC)
    validation_start = datetime(2026, 2, 8, tzinfo=UTC)
    validation_end = datetime(2026, 2, 22, tzinfo=UTC)
    metrics = factory.LazyFunction(dict)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    transaction = factory.SubFactory(TransactionFactory, fraud_score=0.8, decision="review")
    priority = factory.LazyAttribute(lambda o: o.transaction.fraud_score * 2)
    score = factory.LazyAttribute(lambda o: o.transaction.fraud_score)
    amount = factory.LazyAttribute(lambda o: o.transaction.amount)
    opened_at = factory.LazyFunction(lambda: datetime.now(UTC))
    due_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(hours=24))
