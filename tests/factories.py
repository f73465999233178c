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


def trained_metrics(*, champion: str | None = None) -> dict:
    """What ``model_train`` stores in ``ModelVersion.metrics``, with figures of the size a real
    run on the demo history gives (unrounded, as stored)."""
    bins = {"edges": [0.0, 0.69314718, 1.38629436, 2.07944154], "shares": [0.412, 0.231, 0.187, 0.102, 0.068]}
    metrics: dict = {
        "validation": {"n": 48213, "n_fraud": 412, "auc_roc": 0.971234567, "average_precision": 0.684312345},
        "train": {"n": 152904, "n_fraud": 1377, "auc_roc": 0.993112233, "average_precision": 0.812598765},
        "calibration": {
            "before": {"brier": 0.00612345, "ece": 0.01234567, "mean_score": 0.03121234, "fraud_rate": 0.00854542},
            "after": {"brier": 0.00498765, "ece": 0.00187654, "mean_score": 0.00861234, "fraud_rate": 0.00854542},
            "fitted": True,
        },
        "onnx_max_abs_diff": 2.9802322e-07,
        "label_delay_days": 7,
        "seed": 0,
        "reference": {"score": bins, "features": {name: bins for name in fx.FEATURE_NAMES}},
    }
    if champion:
        metrics["active_on_same_window"] = {
            "version": champion, "n": 48213, "n_fraud": 412, "auc_roc": 0.962345678, "average_precision": 0.641234567
        }  # fmt: skip
    return metrics


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    class Params:
        # A model as training stores it: figures, calibration and the ordinary feature values.
        trained = factory.Trait(
            metrics=factory.LazyFunction(trained_metrics),
            calibration={"a": 1.0734512, "b": -0.3521789, "n": 48213, "n_fraud": 412},
            neutral_values=factory.LazyFunction(lambda: [round(0.37 * i, 6) for i in range(len(fx.FEATURE_NAMES))]),
            artifact_sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )

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
