"""Batch jobs over the API: upload (CSV or a JSON list) → 202, poll status, stream results."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cipherguard.api import IsApiClient, SafeJSONParser, path_int, path_int_schema, problem_response, problems
from fraud.batches.selectors import batch_get_for_client
from fraud.batches.services import (
    BatchInputError,
    BatchTooLargeError,
    batch_cancel,
    batch_create_from_csv,
    batch_create_from_items,
    batch_result_lines,
)
from fraud.models import BatchItem, BatchJob


def job_data(job: BatchJob, request: Request) -> dict[str, Any]:
    base = f"/api/v1/batches/{job.pk}/"
    return {
        "id": job.pk,
        "status": job.status,
        "source": job.source,
        "total": job.total,
        "scored": job.scored,
        "failed": job.failed,
        "progress": round(job.progress, 4),
        "model_version": job.model_version.version if job.model_version else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": job.error or None,
        "status_url": request.build_absolute_uri(base),
        "results_url": request.build_absolute_uri(base + "results/"),
    }


JOB_RESPONSE = inline_serializer(
    "BatchJob",
    {
        "id": serializers.IntegerField(),
        "status": serializers.CharField(),
        "total": serializers.IntegerField(),
        "scored": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "progress": serializers.FloatField(),
        "model_version": serializers.CharField(allow_null=True),
        "errors": serializers.ListField(child=serializers.DictField(), required=False),
    },
)


class BatchCreateApi(APIView):
    permission_classes = [IsApiClient]
    parser_classes = [MultiPartParser, SafeJSONParser]

    @extend_schema(
        operation_id="batches_create",
        request={
            "multipart/form-data": inline_serializer("BatchUpload", {"file": serializers.FileField()}),
            "application/json": inline_serializer(
                "BatchList",
                {
                    "transactions": serializers.ListField(
                        child=serializers.DictField(), min_length=1, max_length=settings.BATCH_MAX_JSON_ITEMS
                    )
                },
            ),
        },
        responses={202: JOB_RESPONSE, **problems(400, 401, 403, 413, 415)},
        description="Queue a batch: a CSV upload (field `file`; header transaction_id, customer_id, merchant_id, amount, "
        f"currency, country, timestamp[, channel]) or a JSON list of up to {settings.BATCH_MAX_JSON_ITEMS} transactions. "
        "Rows are validated and scored by workers; bad rows are reported per row in the results.",
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        try:
            if upload is not None:
                job = batch_create_from_csv(owner=request.user, file=upload.file, filename=upload.name or "")
            else:
                items = request.data.get("transactions") if isinstance(request.data, dict) else None
                if not isinstance(items, list) or not items:
                    return problem_response(
                        400,
                        "Send a CSV file in `file` or a non-empty JSON list in `transactions`.",
                        errors={"transactions": ["A non-empty list is required."]},
                        code="invalid",
                    )
                not_objects = [i for i, item in enumerate(items) if not isinstance(item, dict)]
                if not_objects:
                    return problem_response(
                        400,
                        "Each item is a transaction object.",
                        errors={"transactions": {str(i): ["Expected an object."] for i in not_objects[:100]}},
                        code="invalid",
                    )
                if len(items) > settings.BATCH_MAX_JSON_ITEMS:
                    return problem_response(
                        400,
                        "Too many items.",
                        errors={
                            "transactions": [f"At most {settings.BATCH_MAX_JSON_ITEMS} items; upload a CSV for more."]
                        },
                        code="invalid",
                    )
                job = batch_create_from_items(owner=request.user, items=items)
        except BatchTooLargeError as exc:
            return problem_response(413, str(exc), code="too_large")
        except BatchInputError as exc:
            return problem_response(400, str(exc), errors={exc.field: [str(exc)]}, code="invalid")
        return Response(job_data(job, request), status=status.HTTP_202_ACCEPTED)


JOB_ID = path_int_schema("job_id", "The batch job's id, as the upload returned it.")


class BatchDetailApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="batches_retrieve",
        parameters=[JOB_ID],
        responses={200: JOB_RESPONSE, **problems(400, 401, 403, 404)},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = batch_get_for_client(client=request.user, job_id=path_int(job_id, "job_id"))
        data = job_data(job, request)
        # The first 100 row errors here; all of them in the results CSV.
        data["errors"] = [
            {"row": item.row, "transaction_id": item.submitted_id, "status": item.status, "errors": item.errors}
            for item in BatchItem.objects.filter(job=job, status__gte=400).order_by("row")[:100]
        ]
        return Response(data)


class BatchCancelApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="batches_cancel",
        parameters=[JOB_ID],
        request=None,
        responses={200: JOB_RESPONSE, **problems(400, 401, 403, 404)},
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = batch_cancel(job=batch_get_for_client(client=request.user, job_id=path_int(job_id, "job_id")))
        return Response(job_data(job, request))


class BatchResultsApi(APIView):
    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="batches_results",
        parameters=[JOB_ID],
        responses={
            (200, "text/csv"): OpenApiResponse(
                description="row, transaction_id, status, fraud_score, decision, model_version, errors"
            ),
            **problems(400, 401, 403, 404),
        },
    )
    def get(self, request: Request, job_id: int) -> StreamingHttpResponse:
        job = batch_get_for_client(client=request.user, job_id=path_int(job_id, "job_id"))
        response = StreamingHttpResponse(batch_result_lines(job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}-results.csv"'
        return response
