"""Permission-checked reads of batch jobs: an API client only ever reaches its own."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from fraud.models import BatchJob


def batch_get_for_client(*, client: Any, job_id: int) -> BatchJob:
    job = (
        BatchJob.objects.select_related("model_version")
        .defer("model_version__artifact")
        .filter(pk=job_id, owner=client)
        .first()
    )
    if job is None:
        raise Http404("No such batch job.")
    return job
