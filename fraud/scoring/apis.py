"""The scoring API. Views parse input, call one service and render the result."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cipherguard.api import (
    CursorField,
    IsApiClient,
    StrictSerializer,
    page_of,
    paginated,
    problem,
    problem_response,
    problems,
)
from fraud.features.definitions import REASON_GROUPS
from fraud.models import DecidedBy, Decision, Label, LabelSource, Transaction
from fraud.scoring.runtime import NoActiveModelError
from fraud.scoring.services import IdempotencyConflictError, transaction_score, transactions_score_many
from fraud.transactions.selectors import transaction_get_for_client, transaction_list_for_client
from fraud.transactions.services import transaction_label
from fraud.transactions.validation import (
    AwareTimestampField,
    IdentifierField,
    TransactionInputSerializer,
    currency_decimals,
    path_identifier,
    path_identifier_schema,
    validate_transaction,
)

TRANSACTION_ID = path_identifier_schema("transaction_id", "The transaction_id the client scored it under.")


class ReasonSerializer(serializers.Serializer):
    """A factor that raised the score and reads as a risk (docs/model.md, "Reasons")."""

    code = serializers.CharField(
        help_text="stable, for clients to switch on: " + ", ".join(g.code for g in REASON_GROUPS)
    )
    value = serializers.FloatField(help_text="the figure the message quotes: a ratio, a count, a share, an amount")
    contribution = serializers.FloatField(
        help_text="the score minus the score with this factor set to an ordinary value (at least 0.01)"
    )
    message = serializers.CharField(help_text="for people: the risk, set against the customer's own habits")


class RuleMatchSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["rule", "list"])
    id = serializers.IntegerField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=Decision.choices)
    shadow = serializers.BooleanField(help_text="a shadow rule: recorded, never deciding")


class ScoreOutputSerializer(serializers.Serializer):
    transaction_id = serializers.CharField()
    fraud_score = serializers.FloatField(min_value=0, max_value=1)
    decision = serializers.ChoiceField(choices=Decision.choices)
    decided_by = serializers.ChoiceField(choices=DecidedBy.values)
    reasons = ReasonSerializer(many=True)
    rules = RuleMatchSerializer(many=True, help_text="every rule and list entry that matched")
    model_version = serializers.CharField()
    scored_at = serializers.DateTimeField()


class _StoredScore(serializers.Serializer):
    """A stored transaction's score. Imported history was never scored: these are null."""

    transaction_id = serializers.CharField()
    fraud_score = serializers.FloatField(min_value=0, max_value=1, allow_null=True)
    decision = serializers.ChoiceField(choices=Decision.choices, allow_null=True)
    decided_by = serializers.ChoiceField(choices=DecidedBy.values, allow_null=True)
    reasons = ReasonSerializer(many=True)
    rules = RuleMatchSerializer(many=True)
    model_version = serializers.CharField(allow_null=True)
    scored_at = serializers.DateTimeField(allow_null=True)


class TransactionOutputSerializer(_StoredScore):
    customer_id = serializers.CharField()
    merchant_id = serializers.CharField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    country = serializers.CharField()
    channel = serializers.CharField()
    timestamp = serializers.DateTimeField()
    label = serializers.CharField()
    card = serializers.CharField(allow_null=True, help_text="first six and last four digits at most")


def score_data(tx: Transaction, model_version: str | None) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "fraud_score": tx.fraud_score,
        "decision": tx.decision,
        "decided_by": tx.decided_by or (DecidedBy.MODEL if tx.decision else None),
        "reasons": tx.reasons,
        "rules": tx.rule_matches,
        "model_version": model_version,
        "scored_at": tx.scored_at.isoformat() if tx.scored_at else None,
    }


def transaction_data(tx: Transaction) -> dict[str, Any]:
    return score_data(tx, tx.model_version.version if tx.model_version else None) | {
        "decision": tx.decision or None,
        "customer_id": tx.customer_id,
        "merchant_id": tx.merchant_id,
        "amount": format(tx.amount.quantize(Decimal(1).scaleb(-currency_decimals(tx.currency))), "f"),
        "currency": tx.currency,
        "country": tx.country,
        "channel": tx.channel,
        "timestamp": tx.timestamp.isoformat(),
        "label": tx.label,
        "card": tx.card_masked or None,
    }


def no_model_response() -> Response:
    return problem_response(
        status.HTTP_503_SERVICE_UNAVAILABLE, "No active model: scoring is unavailable.", code="no_active_model"
    )


def conflict_body(exc: IdempotencyConflictError) -> dict[str, Any]:
    return problem(status.HTTP_409_CONFLICT, str(exc), code="idempotency_conflict")


class TransactionFilterSerializer(StrictSerializer):
    json_types = False  # query parameters: text, read by each field

    decision = serializers.ChoiceField(choices=Decision.choices, required=False)
    customer_id = IdentifierField(required=False)
    since = AwareTimestampField(required=False)
    until = AwareTimestampField(required=False)
    cursor = CursorField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=settings.API_MAX_PAGE_SIZE)


class TransactionsApi(APIView):
    """POST scores one transaction; GET lists the client's own transactions."""

    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="transactions_score",
        request=TransactionInputSerializer,
        responses={201: ScoreOutputSerializer, 200: ScoreOutputSerializer, **problems(400, 401, 403, 409, 415, 503)},
        description="Score one transaction. Repeating the same transaction_id with the same body returns the "
        "stored result with 200; with a different body, 409.",
    )
    def post(self, request: Request) -> Response:
        data, errors = validate_transaction(request.data)
        if data is None:
            raise ValidationError(errors)
        try:
            outcome = transaction_score(client=request.user, data=data)
        except NoActiveModelError:
            return no_model_response()
        except IdempotencyConflictError as exc:
            return Response(
                conflict_body(exc), status=status.HTTP_409_CONFLICT, content_type="application/problem+json"
            )
        code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        return Response(score_data(outcome.transaction, outcome.model_version), status=code)

    @extend_schema(
        operation_id="transactions_list",
        parameters=[TransactionFilterSerializer],
        responses={
            200: page_of("TransactionPage", TransactionOutputSerializer(many=True)),
            **problems(400, 401, 403, 404),
        },
    )
    def get(self, request: Request) -> Response:
        filters = TransactionFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        params = {k: v for k, v in filters.validated_data.items() if k not in {"cursor", "page_size"}}
        qs = transaction_list_for_client(client=request.user, **params)
        return paginated(request, self, qs, transaction_data)


class BatchRequestSerializer(StrictSerializer):
    transactions = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=settings.FRAUD_BATCH_MAX_ITEMS, allow_empty=False
    )


class TransactionBatchScoreApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="transactions_score_batch",
        request=BatchRequestSerializer,
        responses={
            200: inline_serializer(
                "BatchResponse",
                {
                    "results": serializers.ListField(child=serializers.DictField()),
                    "scored": serializers.IntegerField(),
                    "failed": serializers.IntegerField(),
                },
            ),
            **problems(400, 401, 403, 415, 503),
        },
        description=f"Score up to {settings.FRAUD_BATCH_MAX_ITEMS} transactions. One result per item, in order: "
        "each has index and status (201 scored, 200 replayed, 400 invalid with errors, 409 conflict); "
        "a bad item does not sink the others.",
    )
    def post(self, request: Request) -> Response:
        outer = BatchRequestSerializer(data=request.data)
        outer.is_valid(raise_exception=True)
        results: list[dict[str, Any] | None] = []
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(outer.validated_data["transactions"]):
            data, item_errors = validate_transaction(item)
            if data is not None:
                valid.append((index, data))
                results.append(None)
            else:
                errors = {k: [str(m) for m in v] for k, v in item_errors.items()}
                results.append(
                    {"index": index, **problem(400, "The item has invalid fields.", errors=errors, code="invalid")}
                )
        try:
            outcomes = transactions_score_many(client=request.user, items=[data for _, data in valid]) if valid else []
        except NoActiveModelError:
            return no_model_response()
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.status == status.HTTP_409_CONFLICT:
                results[index] = {"index": index, **problem(409, outcome.detail, code="idempotency_conflict")}
            else:
                results[index] = {
                    "index": index,
                    "status": outcome.status,
                    **score_data(outcome.transaction, outcome.model_version),
                }
        failed = sum(1 for r in results if r and r["status"] >= 400)
        return Response({"results": results, "scored": len(results) - failed, "failed": failed})


class TransactionDetailApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="transactions_retrieve",
        parameters=[TRANSACTION_ID],
        responses={200: TransactionOutputSerializer, **problems(400, 401, 403, 404)},
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        transaction_id = path_identifier(transaction_id, "transaction_id")
        tx = transaction_get_for_client(client=request.user, transaction_id=transaction_id)
        return Response(transaction_data(tx))


class FeedbackInputSerializer(StrictSerializer):
    label = serializers.ChoiceField(choices=Label.choices)


class TransactionFeedbackApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="transactions_feedback",
        parameters=[TRANSACTION_ID],
        request=FeedbackInputSerializer,
        responses={200: TransactionOutputSerializer, **problems(400, 401, 403, 404, 415)},
        description="Report an outcome (e.g. a chargeback) for a scored transaction. It becomes a training label.",
    )
    def post(self, request: Request, transaction_id: str) -> Response:
        transaction_id = path_identifier(transaction_id, "transaction_id")
        serializer = FeedbackInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tx = transaction_get_for_client(client=request.user, transaction_id=transaction_id)
        tx = transaction_label(
            transaction_obj=tx, label=serializer.validated_data["label"], source=LabelSource.CLIENT, actor=request.user
        )
        return Response(transaction_data(tx))
