"""The results download at size: a fixed number of queries whatever the job's size, and no query
that reads a model's stored ONNX artifact (a join that does costs a blob read per row)."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.fraud.batches.test_batch_jobs import BATCHES, csv_file, good_rows, run


def download(api, job_id: int) -> tuple[list[dict[str, str]], list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"{BATCHES}{job_id}/results/")
        body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(body))), [q["sql"] for q in queries.captured_queries]


def job_of(api, rows: int, prefix: str) -> int:
    job_id = api.post(BATCHES, {"file": csv_file(good_rows(rows, prefix=prefix))}, format="multipart").json()["id"]
    run(job_id)
    return job_id


@pytest.mark.django_db
def test_the_download_costs_the_same_queries_at_any_size_and_never_reads_the_artifact(
    alice_api, active_model, settings
):
    settings.BATCH_CHUNK_SIZE = 1000
    small, small_sql = download(alice_api, job_of(alice_api, 3, "s"))
    large, large_sql = download(alice_api, job_of(alice_api, 2500, "l"))

    assert len(small) == 3 and len(large) == 2500
    assert [int(r["row"]) for r in large] == list(range(1, 2501))
    assert {r["model_version"] for r in large} == {active_model.version}
    # SQLite fetches a server-side-cursor-less iterator in chunks of 2,000 rows with one query, so
    # the count is the same for 3 and 2,500 rows on both databases.
    assert len(large_sql) == len(small_sql), large_sql
    assert not [sql for sql in large_sql if '"artifact"' in sql]


@pytest.mark.django_db
def test_reading_transactions_never_reads_the_artifact(alice_api, active_model):
    from tests.fraud.scoring.test_scoring_api import URL, WHEN

    body = {"transaction_id": "a-1", "customer_id": "C1", "merchant_id": "M1", "amount": "10.00",
            "currency": "EUR", "country": "FR", "timestamp": WHEN, "channel": "pos"}  # fmt: skip
    assert alice_api.post(URL, body, format="json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert alice_api.post(URL, body, format="json").status_code == 200  # the replay
        assert alice_api.get(f"{URL}a-1/").status_code == 200
        assert alice_api.get(URL).status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if '"artifact"' in q["sql"]]
