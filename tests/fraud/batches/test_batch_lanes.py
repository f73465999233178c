"""Batch jobs in lanes: rows dealt by customer, lanes scored in parallel, every row once."""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from datetime import timedelta

import pytest

from fraud.batches.services import batch_create_from_items, batch_process_next_chunk, batch_result_lines
from fraud.models import BatchChunk, BatchItem, BatchJob, BatchStatus, Transaction
from tests.fraud.scoring.test_scoring_api import WHEN
from tests.helpers import at_once, run_batch_job


def items(n: int, prefix: str = "l") -> list[dict]:
    from django.utils.dateparse import parse_datetime

    start = parse_datetime(WHEN)
    return [
        {
            "transaction_id": f"{prefix}-{i}",
            "customer_id": f"C{i * 7 % 23}",
            "merchant_id": f"M{i % 5}",
            "amount": f"{10 + i % 90}.25",
            "currency": "EUR",
            "country": "FR",
            "timestamp": (start - timedelta(minutes=n - i)).isoformat(),
        }
        for i in range(n)
    ]


@pytest.fixture
def lanes(settings):
    settings.BATCH_CHUNK_SIZE = 10
    settings.BATCH_LANES = 3


def test_a_customers_rows_travel_in_one_lane_in_file_order(alice, active_model, lanes):
    job = batch_create_from_items(owner=alice, items=items(95))
    chunks = list(BatchChunk.objects.filter(job=job).order_by("index"))
    assert {c.lane for c in chunks} == {0, 1, 2} and job.chunk_count == len(chunks)
    assert all(len(c.rows) <= 10 for c in chunks)
    lane_of: dict[str, set[int]] = defaultdict(set)
    numbers_by_lane: dict[int, list[int]] = defaultdict(list)
    for chunk in chunks:
        numbers = chunk.row_numbers or list(range(chunk.first_row, chunk.first_row + len(chunk.rows)))
        assert numbers[0] == chunk.first_row
        numbers_by_lane[chunk.lane] += numbers
        for number, row in zip(numbers, chunk.rows, strict=True):
            assert row["transaction_id"] == f"l-{number - 1}"  # each row keeps its number
            lane_of[row["customer_id"]].add(chunk.lane)
    assert all(len(found) == 1 for found in lane_of.values())  # one lane per customer
    assert all(n == sorted(n) for n in numbers_by_lane.values())  # file order within a lane
    assert sorted(sum(numbers_by_lane.values(), [])) == list(range(1, 96))

    run_batch_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.scored, job.failed, job.chunks_done) == (BatchStatus.SUCCEEDED, 95, 0, job.chunk_count)
    rows = list(csv.DictReader(io.StringIO("".join(batch_result_lines(job)))))
    assert [(int(r["row"]), r["transaction_id"]) for r in rows] == [(i + 1, f"l-{i}") for i in range(95)]


def test_one_lane_keeps_the_rows_contiguous(alice, active_model, settings):
    settings.BATCH_CHUNK_SIZE, settings.BATCH_LANES = 10, 1
    job = batch_create_from_items(owner=alice, items=items(25))
    chunks = list(BatchChunk.objects.filter(job=job).order_by("index"))
    assert [(c.lane, c.first_row, c.row_numbers, len(c.rows)) for c in chunks] == [
        (0, 1, None, 10), (0, 11, None, 10), (0, 21, None, 5),
    ]  # fmt: skip


def test_a_task_for_a_finished_or_missing_lane_does_nothing(alice, active_model, lanes):
    job = batch_create_from_items(owner=alice, items=items(30))
    run_batch_job(job.pk)
    assert batch_process_next_chunk(job_id=job.pk, lane=1) is False
    assert batch_process_next_chunk(job_id=job.pk, lane=7) is False
    assert BatchItem.objects.filter(job=job).count() == 30


def test_lanes_and_duplicate_tasks_at_once_score_every_row_exactly_once(postgres_tx, alice, active_model, lanes):
    """Six workers at once on a three-lane job (two tasks per lane, as a redelivered message
    makes): chunk locks keep a lane's chunks in order and each done once; the job's counts add
    up whichever order the chunks commit in."""
    job = batch_create_from_items(owner=alice, items=items(120))

    def worker(i: int) -> int:
        done = 0
        while batch_process_next_chunk(job_id=job.pk, lane=i % 3):
            done += 1
        return done

    results = at_once(worker, 6, timeout=180)
    assert not [r for r in results if isinstance(r, Exception)], results
    job = BatchJob.objects.get(pk=job.pk)
    assert (job.status, job.scored, job.failed, job.chunks_done) == (BatchStatus.SUCCEEDED, 120, 0, job.chunk_count)
    rows = list(BatchItem.objects.filter(job=job).values_list("row", flat=True))
    assert sorted(rows) == list(range(1, 121))
    assert Transaction.objects.filter(owner=alice, transaction_id__startswith="l-").count() == 120
    assert not BatchChunk.objects.filter(job=job, rows__isnull=False).exists()


def test_a_stalled_job_is_resumed_on_every_lane_with_chunks_left(
    alice, active_model, lanes, monkeypatch, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from fraud.batches.services import batch_jobs_resume_stalled

    job = batch_create_from_items(owner=alice, items=items(95))
    while batch_process_next_chunk(job_id=job.pk, lane=1):  # lane 1 finishes; 0 and 2 never start
        pass
    queued: list[tuple[int, int, int]] = []
    monkeypatch.setattr("fraud.batches.services._enqueue", lambda *args: queued.append(args))
    BatchJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_jobs_resume_stalled(stalled_for=timedelta(minutes=5)) == [job.pk]
    assert queued == [(job.pk, 1, 0), (job.pk, 1, 2)]
    for _, dispatch, lane in queued:
        while batch_process_next_chunk(job_id=job.pk, dispatch=dispatch, lane=lane):
            pass
    job.refresh_from_db()
    assert (job.status, job.scored) == (BatchStatus.SUCCEEDED, 95)


def test_a_dead_lane_is_resumed_while_another_lane_keeps_going(
    alice, active_model, lanes, monkeypatch, django_capture_on_commit_callbacks
):
    """A killed worker loses one lane's queued task while another worker carries the other lanes
    on (the job's heartbeat stays fresh): the dead lane is judged on its own."""
    from django.utils import timezone

    from fraud.batches.services import batch_jobs_resume_stalled

    job = batch_create_from_items(owner=alice, items=items(95))
    BatchJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    queued: list[tuple[int, int, int]] = []
    monkeypatch.setattr("fraud.batches.services._enqueue", lambda *args: queued.append(args))

    def resume() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            return batch_jobs_resume_stalled(stalled_for=timedelta(minutes=5))

    for lane in (1, 2):  # lanes 1 and 2 make progress, their next chunks queued just now
        batch_process_next_chunk(job_id=job.pk, lane=lane)
    assert BatchJob.objects.get(pk=job.pk).heartbeat_at > timezone.now() - timedelta(seconds=30)
    assert resume() == [job.pk]  # lane 0's first task never came
    assert queued == [(job.pk, 1, 0), (job.pk, 1, 1), (job.pk, 1, 2)]
    assert resume() == []  # every lane's next chunk was queued just now
    run_batch_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.scored, job.chunks_done) == (BatchStatus.SUCCEEDED, 95, job.chunk_count)


def test_a_lane_whose_chunk_is_being_scored_is_not_stalled(
    postgres_tx, alice, active_model, lanes, monkeypatch, django_capture_on_commit_callbacks
):
    """However long a chunk takes, its lock says a worker has it."""
    from django.db import transaction
    from django.utils import timezone

    from fraud.batches.services import batch_jobs_resume_stalled

    job = batch_create_from_items(owner=alice, items=items(10))  # one chunk per lane
    BatchJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    monkeypatch.setattr("fraud.batches.services._enqueue", lambda *args: None)
    lanes_with_rows = sorted(set(BatchChunk.objects.filter(job=job).values_list("lane", flat=True)))

    def hold_and_resume(i: int) -> list[int]:
        if i == 0:  # a worker holding every lane's chunk
            with transaction.atomic():
                list(BatchChunk.objects.select_for_update().filter(job=job))
                time.sleep(2)
            return []
        time.sleep(0.5)
        return batch_jobs_resume_stalled(stalled_for=timedelta(minutes=5))

    assert len(lanes_with_rows) >= 2
    assert at_once(hold_and_resume, 2) == [[], []]  # the holder's, and the resume's while held: none
    assert batch_jobs_resume_stalled(stalled_for=timedelta(minutes=5)) == [job.pk]  # released: stalled
