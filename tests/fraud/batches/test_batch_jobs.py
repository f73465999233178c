"""Batch jobs: upload, chunked processing that survives a crash, per-row errors, results."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from fraud.batches.services import batch_jobs_resume_stalled, batch_process_next_chunk
from fraud.models import BatchChunk, BatchItem, BatchJob, BatchStatus, Transaction
from tests.fraud.scoring.test_scoring_api import URL, WHEN
from tests.helpers import run_batch_job as run

BATCHES = "/api/v1/batches/"
HEADER = "transaction_id,customer_id,merchant_id,amount,currency,country,timestamp,channel"


def csv_file(lines: list[str], name: str = "batch.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\n".join([HEADER, *lines]) + "\n").encode(), content_type="text/csv")


def good_rows(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}-{i},C{i % 13},M{i % 4},{10 + i}.50,EUR,FR,{WHEN},pos" for i in range(n)]


@pytest.fixture
def small_chunks(settings):
    """Chunks of four rows, in one lane: one chunk after another, as the tests below count them."""
    settings.BATCH_CHUNK_SIZE = 4
    settings.BATCH_LANES = 1


def test_a_csv_upload_is_queued_then_scored_chunk_by_chunk(alice_api, alice, active_model, small_chunks):
    alice_api.post(
        URL,
        {
            "transaction_id": "r-1",
            "customer_id": "C1",
            "merchant_id": "M1",
            "amount": "11.50",
            "currency": "EUR",
            "country": "FR",
            "timestamp": WHEN,
            "channel": "pos",
        },
        format="json",
    )
    lines = [
        *good_rows(9),
        "bad-1,C1,M1,-5,EUR,FR,2026-01-01T00:00:00Z,pos",
        "bad-2,C1,M1,5,eur,XX,yesterday,",
        "r-2,C2,M2,999.00,EUR,FR," + WHEN + ",pos",
        "x,y,z,1,EUR,FR," + WHEN + ",pos,extra",
    ]
    response = alice_api.post(BATCHES, {"file": csv_file(lines)}, format="multipart")

    assert response.status_code == 202, response.content
    job = BatchJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.total, job.chunk_count, job.chunks_done) == (BatchStatus.QUEUED, 13, 4, 0)
    assert run(job.pk) == 4

    job.refresh_from_db()
    assert (job.status, job.chunks_done, job.total) == (BatchStatus.SUCCEEDED, 4, 13)
    statuses = dict(BatchItem.objects.filter(job=job).values_list("row", "status"))
    assert statuses == {**{i: 201 for i in range(1, 10)}, 2: 200, 10: 400, 11: 400, 12: 409, 13: 400}
    assert (job.scored, job.failed) == (9, 4)
    errors = dict(BatchItem.objects.filter(job=job, status=400).values_list("row", "errors"))
    assert (
        "amount" in errors[10]
        and {"currency", "country", "timestamp"} <= set(errors[11])
        and "non_field_errors" in errors[13]
    )

    status = alice_api.get(f"{BATCHES}{job.pk}/").json()
    assert (status["status"], status["progress"], status["model_version"]) == ("succeeded", 1.0, active_model.version)
    assert [e["row"] for e in status["errors"]] == [10, 11, 12, 13]

    results = alice_api.get(f"{BATCHES}{job.pk}/results/")
    assert results["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(results.streaming_content).decode())))
    assert [int(r["row"]) for r in rows] == list(range(1, 14))
    assert rows[0]["transaction_id"] == "r-0" and 0 <= float(rows[0]["fraud_score"]) <= 1 and rows[0]["decision"]
    assert rows[9]["status"] == "400" and "amount" in rows[9]["errors"]
    # Refused rows keep the id they were sent with, as a sender looks them up.
    assert [(r["transaction_id"], r["status"]) for r in rows[9:]] == [
        ("bad-1", "400"), ("bad-2", "400"), ("r-2", "409"), ("x", "400"),
    ]  # fmt: skip
    assert [e["transaction_id"] for e in status["errors"]] == ["bad-1", "bad-2", "r-2", "x"]


def test_a_json_list_is_accepted_too(alice_api, active_model):
    items = [
        {
            "transaction_id": f"j-{i}",
            "customer_id": "C1",
            "merchant_id": "M1",
            "amount": "5.00",
            "currency": "EUR",
            "country": "FR",
            "timestamp": WHEN,
        }
        for i in range(3)
    ]
    response = alice_api.post(BATCHES, {"transactions": [*items, {"transaction_id": "bad"}]}, format="json")
    assert response.status_code == 202
    run(response.json()["id"])
    job = BatchJob.objects.get(pk=response.json()["id"])
    assert (job.scored, job.failed, job.status) == (3, 1, BatchStatus.SUCCEEDED)

    # An item that is not an object at all is refused with the request, as the schema says.
    response = alice_api.post(BATCHES, {"transactions": [*items, "not an object"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"transactions": {"3": ["Expected an object."]}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"file": SimpleUploadedFile("a.csv", b"transaction_id,amount\nx,1\n")}, "file"),
        ({"file": SimpleUploadedFile("a.csv", f"{HEADER},colour\n".encode())}, "file"),
        ({"file": SimpleUploadedFile("a.csv", f"{HEADER}\n".encode())}, "file"),
        ({"file": SimpleUploadedFile("a.csv", b"\xff\xfe\x00bad")}, "file"),
    ],
)
def test_an_unusable_upload_is_400_naming_the_field(alice_api, active_model, payload, field):
    response = alice_api.post(BATCHES, payload, format="multipart")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not BatchJob.objects.exists()


def test_an_empty_or_missing_list_is_400(alice_api, active_model):
    for payload in ({}, {"transactions": []}, {"transactions": "x"}):
        response = alice_api.post(BATCHES, payload, format="json")
        assert response.status_code == 400 and "transactions" in response.json()["errors"]


def test_another_clients_job_is_not_found(alice_api, bob_api, active_model):
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(2))}, format="multipart").json()["id"]
    assert bob_api.get(f"{BATCHES}{job_id}/").status_code == 404
    assert bob_api.get(f"{BATCHES}{job_id}/results/").status_code == 404
    assert bob_api.post(f"{BATCHES}{job_id}/cancel/").status_code == 404


def test_a_chunk_that_crashes_midway_is_redone_without_duplicates(
    alice_api, alice, active_model, small_chunks, monkeypatch
):
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(10))}, format="multipart").json()["id"]
    assert batch_process_next_chunk(job_id=job_id)  # chunk 0 done

    import fraud.batches.services as batches

    real = batches.transactions_score_many

    def dies_after_scoring(**kwargs):
        real(**kwargs)  # the transactions are written inside the chunk's transaction...
        raise SystemExit("worker killed")  # ...and the worker dies before the chunk commits

    monkeypatch.setattr(batches, "transactions_score_many", dies_after_scoring)
    with pytest.raises(SystemExit):
        batch_process_next_chunk(job_id=job_id)
    monkeypatch.setattr(batches, "transactions_score_many", real)
    job = BatchJob.objects.get(pk=job_id)
    assert job.chunks_done == 1 and BatchItem.objects.filter(job=job).count() == 4

    run(job_id)
    job.refresh_from_db()
    assert (job.status, job.scored, job.failed) == (BatchStatus.SUCCEEDED, 10, 0)
    assert BatchItem.objects.filter(job=job).count() == 10
    assert Transaction.objects.filter(owner=alice, transaction_id__startswith="r-").count() == 10
    assert not batch_process_next_chunk(job_id=job_id)  # a late duplicate task does nothing


def test_stalled_jobs_are_queued_again_on_a_new_chain(
    alice_api, active_model, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(10))}, format="multipart").json()["id"]
    batch_process_next_chunk(job_id=job_id)
    queued: list[tuple[int, int]] = []
    monkeypatch.setattr(
        "fraud.batches.services._enqueue", lambda job_id, dispatch, lane: queued.append((job_id, dispatch))
    )

    def resume() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):  # the message leaves on commit
            return batch_jobs_resume_stalled(stalled_for=timedelta(minutes=5))

    assert resume() == [] and queued == []
    BatchChunk.objects.filter(job_id=job_id).update(queued_at=timezone.now() - timedelta(minutes=10))
    assert resume() == [job_id] and queued == [(job_id, 1)]
    # The resume is a sign of life: the next beat does not queue the job again.
    assert resume() == [] and len(queued) == 1

    # The old chain's task still does a chunk but queues no successor; the new chain carries on.
    assert batch_process_next_chunk(job_id=job_id, dispatch=0) is False
    assert batch_process_next_chunk(job_id=job_id, dispatch=1) is False  # that was the last chunk
    job = BatchJob.objects.get(pk=job_id)
    assert (job.status, job.chunks_done, BatchItem.objects.filter(job=job).count()) == (BatchStatus.SUCCEEDED, 3, 10)


def test_a_chunk_moves_the_heartbeat_to_when_it_committed(alice_api, active_model, small_chunks, monkeypatch):
    import fraud.batches.services as services

    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(10))}, format="multipart").json()["id"]
    scored_at: list = []
    score = services.transactions_score_many

    def slow_score(**kwargs):
        outcomes = score(**kwargs)
        scored_at.append(timezone.now())
        return outcomes

    monkeypatch.setattr(services, "transactions_score_many", slow_score)
    for _ in range(2):
        batch_process_next_chunk(job_id=job_id)
        job = BatchJob.objects.get(pk=job_id)
        assert job.heartbeat_at >= scored_at[-1] > job.started_at


def test_a_cancelled_job_stops(alice_api, active_model, small_chunks):
    job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(10))}, format="multipart").json()["id"]
    batch_process_next_chunk(job_id=job_id)
    assert alice_api.post(f"{BATCHES}{job_id}/cancel/").json()["status"] == "cancelled"
    assert not batch_process_next_chunk(job_id=job_id)
    assert BatchItem.objects.filter(job_id=job_id).count() == 4


def test_a_job_without_an_active_model_fails_with_a_reason(alice_api, alice):
    from fraud.batches.services import batch_create_from_items

    job = batch_create_from_items(owner=alice, items=[{"transaction_id": "z"}])
    assert not batch_process_next_chunk(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == BatchStatus.FAILED and "no active model" in job.error


def test_enqueueing_waits_for_the_commit(alice_api, active_model, django_capture_on_commit_callbacks, monkeypatch):
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(
        "fraud.batches.tasks.batch_job_process.delay", lambda job_id, dispatch, lane: sent.append((job_id, lane))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = alice_api.post(BATCHES, {"file": csv_file(good_rows(3))}, format="multipart").json()["id"]
        assert sent == []  # nothing is sent while the job's rows are uncommitted
    for callback in callbacks:
        callback()
    lanes = sorted(set(BatchChunk.objects.filter(job_id=job_id).values_list("lane", flat=True)))
    assert sent == [(job_id, lane) for lane in lanes]  # one task chain per lane with rows


def test_rows_the_database_cannot_store_are_refused_not_crashed_on(alice_api, active_model):
    import json

    items = [{"transaction_id": "nul\x00", "x\x00": 1}, {"bad": "\ud800"}, {"transaction_id": "ok"}]
    raw = json.dumps({"transactions": items})  # ASCII-escaped, as a client would send it
    response = alice_api.post(BATCHES, raw, content_type="application/json")
    assert response.status_code == 202
    run(response.json()["id"])
    errors = dict(BatchItem.objects.filter(job_id=response.json()["id"]).values_list("row", "errors"))
    assert errors[1] == errors[2] == {"non_field_errors": ["The row contains NUL characters or invalid Unicode."]}


def test_an_upload_over_the_size_limit_is_413_from_the_api_and_an_error_in_the_console(
    alice_api, alice, carol, client, settings
):
    from tests.factories import PASSWORD

    upload = "\n".join([HEADER, *good_rows(40)]) + "\n"
    settings.BATCH_MAX_UPLOAD_BYTES = len(upload.encode()) - 1  # one byte short
    response = alice_api.post(BATCHES, {"file": csv_file(good_rows(40))}, format="multipart")
    assert response.status_code == 413 and response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "too_large" and str(settings.BATCH_MAX_UPLOAD_BYTES) in response.json()["detail"]

    client.login(username=carol.username, password=PASSWORD)
    page = client.post("/console/batches/", {"client": alice.pk, "file": csv_file(good_rows(40))})
    assert page.status_code == 200 and f"larger than {settings.BATCH_MAX_UPLOAD_BYTES} bytes" in page.content.decode()
    assert not BatchJob.objects.exists()

    settings.BATCH_MAX_UPLOAD_BYTES = len(upload.encode())  # exactly at the limit
    assert alice_api.post(BATCHES, {"file": csv_file(good_rows(40))}, format="multipart").status_code == 202


def test_an_upload_while_the_broker_is_down_is_stored_and_resumed_once_it_is_back(
    alice_api, active_model, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError as BrokerDown

    from fraud.batches.tasks import batch_job_process

    def down(*args):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(batch_job_process, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(BATCHES, {"file": csv_file(good_rows(10))}, format="multipart")
    assert response.status_code == 202  # stored: nothing is lost, and the client has its id
    job_id = response.json()["id"]
    assert BatchJob.objects.get(pk=job_id).status == BatchStatus.QUEUED

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(batch_job_process, "delay", lambda job_id, dispatch, lane: sent.append((job_id, dispatch)))
    BatchJob.objects.filter(pk=job_id).update(created_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_jobs_resume_stalled() == [job_id]
    assert sent == [(job_id, 1)]
    while batch_process_next_chunk(job_id=job_id, dispatch=1):
        pass
    job = BatchJob.objects.get(pk=job_id)
    assert (job.status, job.scored) == (BatchStatus.SUCCEEDED, 10)
