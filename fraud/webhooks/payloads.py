"""What each webhook event says: one builder per event type, the JSON Schema of its ``data``, and
the envelope around it (``delivery.event_body``). docs/webhooks.md shows these schemas (a test
keeps them equal) and the OpenAPI document lists them as components (``openapi_components``).

What a payload never holds: a card number, a card fingerprint, a secret, or who among our staff
did something (an analyst's name). Amounts are decimal strings with the currency's minor-unit
places, as the API writes them; times are ISO 8601 in UTC with a ``Z``.

The schemas are JSON Schema draft 2020-12. They are closed (``additionalProperties: false``)
for the current ``WEBHOOK_API_VERSION``, so tests catch a field that should not be there; a later
API version may add fields, which receivers should ignore rather than refuse."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision

from fraud.models import (
    BatchJob,
    BatchStatus,
    Case,
    CaseOutcome,
    Channel,
    DecidedBy,
    Decision,
    Label,
    LabelSource,
    ModelVersion,
    Transaction,
    WebhookEventType,
)

FLAGGED_DECISIONS = frozenset({Decision.REVIEW, Decision.DECLINE})
FINISHED_STATUSES = frozenset({BatchStatus.SUCCEEDED, BatchStatus.FAILED, BatchStatus.CANCELLED})


def flagged(decision: str) -> bool:
    """Whether a decision is reported as ``transaction.flagged`` (declined or sent to review)."""
    return decision in FLAGGED_DECISIONS


@dataclass(frozen=True)
class FlagSource:
    """Where a scoring call came from, as ``transaction.flagged`` reports it: ``api`` (one
    transaction), ``batch`` (the synchronous batch endpoint) or ``batch_job`` (with its id)."""

    name: str
    batch_job_id: int | None = None


API = FlagSource("api")
BATCH = FlagSource("batch")


def batch_job_source(job_id: int) -> FlagSource:
    return FlagSource("batch_job", job_id)


def utc_text(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a ``Z``, as the envelope's ``timestamp`` is written. Every time a
    payload names is set by the change that the event reports: None is a caller's mistake."""
    if moment is None:
        raise ValueError("a webhook payload's time is not set")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def amount_text(amount: Decimal | float | str, currency: str) -> str:
    """The amount with the currency's minor-unit places (``42.50`` EUR, ``1200`` JPY), as the
    transactions API writes it."""
    places = int(get_currency_precision(currency))
    return format(Decimal(str(amount)).quantize(Decimal(1).scaleb(-places)), "f")


# --- Builders -------------------------------------------------------------------------------------


def transaction_flagged(tx: Transaction, *, model_version: str, source: FlagSource) -> dict[str, Any]:
    """A transaction declined or sent to review, with the score, decision and reasons the API
    returned for it (``fraud.scoring.apis.score_data``)."""
    return {
        "transaction_id": tx.transaction_id,
        "customer_id": tx.customer_id,
        "merchant_id": tx.merchant_id,
        "amount": amount_text(tx.amount, tx.currency),
        "currency": tx.currency,
        "country": tx.country,
        "channel": tx.channel or None,
        "decision": str(tx.decision),
        "decided_by": str(tx.decided_by or DecidedBy.MODEL),
        "score": tx.fraud_score,
        "reasons": [
            {"code": r["code"], "value": r["value"], "contribution": r["contribution"], "message": r["message"]}
            for r in tx.reasons
        ],
        "rules": [
            {"kind": m["kind"], "id": m["id"], "name": m["name"], "action": m["action"], "shadow": m["shadow"]}
            for m in tx.rule_matches
        ],
        "model_version": model_version,
        "scored_at": utc_text(tx.scored_at),
        "source": source.name,
        "batch_job_id": source.batch_job_id,
    }


def case_closed(case: Case, *, label: str | None, closed_with: Sequence[int] = ()) -> dict[str, Any]:
    """An analyst's verdict on a flagged transaction. Who closed it is left out: the client
    deals with CipherGuard, not with our staff by name."""
    return {
        "case_id": case.pk,
        "transaction_id": case.transaction.transaction_id,
        "outcome": str(case.outcome),
        "label": str(label) if label else None,
        "closed_at": utc_text(case.closed_at),
        "closed_with": sorted(closed_with),
    }


def transaction_labelled(tx: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "label": str(tx.label),
        "label_source": str(tx.label_source),
        "labelled_at": utc_text(tx.label_time),
    }


def batch_job_finished(job: BatchJob, *, flagged_count: int) -> dict[str, Any]:
    """A batch job that will not change any more. ``flagged_count``: its scored rows (new or
    replayed) whose decision is review or decline."""
    return {
        "batch_job_id": job.pk,
        "status": str(job.status),
        "total": job.total,
        "scored": job.scored,
        "failed": job.failed,
        "flagged": flagged_count,
        "error": job.error or None,
        "created_at": utc_text(job.created_at),
        "finished_at": utc_text(job.finished_at),
        # The path the API serves it under (fraud/urls.py); relative, as the event is not a response
        # to a request whose host could be named.
        "results_url": f"/api/v1/batches/{job.pk}/results/",
    }


def model_activated(version: ModelVersion, *, previous: str | None, rollback: bool) -> dict[str, Any]:
    """A model version went live; its validation figures as training stored them."""
    validation = (version.metrics or {}).get("validation") or {}
    return {
        "version": version.version,
        "algorithm": version.algorithm,
        "feature_set_version": version.feature_set_version,
        "activated_at": utc_text(version.activated_at),
        "rollback": rollback,
        "previous_version": previous,
        "metrics": {
            "auc_roc": validation.get("auc_roc"),
            "average_precision": validation.get("average_precision"),
        },
    }


# --- Schemas --------------------------------------------------------------------------------------

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_TIME = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$",
    "description": "ISO 8601, UTC",
}
_AMOUNT = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?$",
    "description": "a decimal string with the currency's minor-unit places (42.50 EUR, 1200 JPY)",
}
_ID = {"type": "string", "minLength": 1, "maxLength": 64}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema |= {"required": list(properties), "additionalProperties": False, "properties": properties}
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    WebhookEventType.TRANSACTION_FLAGGED: _object(
        {
            "transaction_id": {**_ID, "description": "the id the client scored it under"},
            "customer_id": _ID,
            "merchant_id": _ID,
            "amount": _AMOUNT,
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"},
            "country": {"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2"},
            "channel": {"type": ["string", "null"], "enum": [*Channel.values, None]},
            "decision": {"type": "string", "enum": sorted(FLAGGED_DECISIONS)},
            "decided_by": {"type": "string", "enum": list(DecidedBy.values)},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "the model's fraud probability"},
            "reasons": {
                "type": "array",
                "description": "what raised the score, as the scoring API returned it",
                "items": _object(
                    {
                        "code": {"type": "string", "description": "stable, for clients to switch on"},
                        "value": {"type": "number", "description": "the figure the message quotes"},
                        "contribution": {"type": "number", "description": "how much this raised the score"},
                        "message": {"type": "string", "description": "for people"},
                    }
                ),
            },
            "rules": {
                "type": "array",
                "description": "every rule and list entry that matched, as the scoring API returned them",
                "items": _object(
                    {
                        "kind": {"type": "string", "enum": ["rule", "list"]},
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "action": {"type": "string", "enum": list(Decision.values)},
                        "shadow": {"type": "boolean", "description": "a shadow rule: recorded, never deciding"},
                    }
                ),
            },
            "model_version": {"type": "string"},
            "scored_at": _TIME,
            "source": {
                "type": "string",
                "enum": ["api", "batch", "batch_job"],
                "description": "POST /transactions/, POST /transactions/batch/, or a batch job",
            },
            "batch_job_id": {"type": ["integer", "null"], "description": "the batch job's id when source is batch_job"},
        },
        "A transaction was declined or sent to review (stored for the first time: never for a replay).",
    ),
    WebhookEventType.CASE_CLOSED: _object(
        {
            "case_id": {"type": "integer"},
            "transaction_id": _ID,
            "outcome": {"type": "string", "enum": list(CaseOutcome.values)},
            "label": {
                "type": ["string", "null"],
                "enum": [*Label.values, None],
                "description": "the label the verdict set on the transaction; null for inconclusive",
            },
            "closed_at": _TIME,
            "closed_with": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "the other cases closed together with this one, each with its own event",
            },
        },
        "An analyst closed the case of a flagged transaction.",
    ),
    WebhookEventType.TRANSACTION_LABELLED: _object(
        {
            "transaction_id": _ID,
            "label": {"type": "string", "enum": list(Label.values)},
            "label_source": {
                "type": "string",
                "enum": [LabelSource.CLIENT, LabelSource.ANALYST],
                "description": "client: your feedback; analyst: a case's verdict",
            },
            "labelled_at": _TIME,
        },
        "A transaction was labelled fraud or legitimate.",
    ),
    WebhookEventType.BATCH_JOB_FINISHED: _object(
        {
            "batch_job_id": {"type": "integer"},
            "status": {"type": "string", "enum": sorted(FINISHED_STATUSES)},
            "total": {"type": "integer", "minimum": 0, "description": "rows uploaded"},
            "scored": {"type": "integer", "minimum": 0, "description": "rows scored, new or replayed"},
            "failed": {"type": "integer", "minimum": 0, "description": "rows refused (invalid, conflicting id)"},
            "flagged": {"type": "integer", "minimum": 0, "description": "scored rows declined or sent to review"},
            "error": {"type": ["string", "null"], "description": "why a failed job failed"},
            "created_at": _TIME,
            "finished_at": _TIME,
            "results_url": {"type": "string", "description": "the API path of the results (CSV)"},
        },
        "A batch job succeeded, failed or was cancelled; its counts are final.",
    ),
    WebhookEventType.MODEL_ACTIVATED: _object(
        {
            "version": {"type": "string"},
            "algorithm": {"type": "string"},
            "feature_set_version": {"type": "string"},
            "activated_at": _TIME,
            "rollback": {"type": "boolean", "description": "the version had been active before"},
            "previous_version": {"type": ["string", "null"], "description": "the version it replaced"},
            "metrics": _object(
                {
                    "auc_roc": {"type": ["number", "null"]},
                    "average_precision": {"type": ["number", "null"]},
                },
                "on the validation window; null when training stored none",
            ),
        },
        "A model version went live (admins' endpoints only).",
    ),
}


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of a whole delivery body of ``event_type``: the envelope and its data."""
    return {
        "$schema": DIALECT,
        "title": event_type,
        **_object(
            {
                "id": {"type": "string", "format": "uuid", "description": "the event's id: the webhook-id header"},
                "type": {"type": "string", "const": event_type},
                "timestamp": {**_TIME, "description": "when the event happened (ISO 8601, UTC)"},
                "api_version": {"type": "string", "description": "WEBHOOK_API_VERSION when the event was made"},
                "data": copy.deepcopy(DATA_SCHEMAS[event_type]),
            }
        ),
    }


# --- OpenAPI --------------------------------------------------------------------------------------


def _openapi(schema: Any) -> Any:
    """A draft 2020-12 schema as OpenAPI 3.0 writes it: ``nullable`` for a type list with null,
    ``enum`` for ``const``; no ``$schema``."""
    if isinstance(schema, list):
        return [_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$schema":
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            out["type"] = next(t for t in value if t != "null")
            out["nullable"] = "null" in value
        elif key == "enum":
            out["enum"] = list(value)
        elif key == "properties":
            out["properties"] = {name: _openapi(s) for name, s in value.items()}
        else:
            out[key] = _openapi(value)
    return out


def component_name(event_type: str) -> str:
    """``transaction.flagged`` → ``WebhookTransactionFlagged``."""
    return "Webhook" + "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))


def openapi_components(result: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every event's delivery body as a component
    (``WebhookTransactionFlagged`` …), so clients generate their receivers' types from the same
    document as their API calls (``FraudConfig.openapi_postprocess``). OpenAPI 3.0 has no place
    for webhooks that no operation registers (3.1's ``webhooks``), so they are components only."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for event_type in WebhookEventType.values:
        schemas[component_name(event_type)] = _openapi(event_schema(event_type))
    return result
