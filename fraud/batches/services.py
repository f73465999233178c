"""Batch jobs: uploads split into chunks in the request, scored chunk by chunk by workers.

The rows are dealt into lanes by customer (``BATCH_LANES``), and each lane is a chain of tasks
scoring its chunks in order, the lanes in parallel. A customer's rows all travel in one lane, in
the file's order, so the customer's features (velocity, amounts against habits) come out as
they would one chunk at a time; merchants are shared across lanes and read whatever the other
lanes have committed, as concurrent API requests do.

Idempotent per chunk: a chunk's items, its emptying and the job's counts commit together, under
a lock on the chunk row (taken first) and on the job row (taken last, briefly), so a redelivered
or duplicated task either finds the chunk done or redoes one that never committed. Memory stays
bounded by the chunk size times the lanes."""

from __future__ import annotations

import csv
import io
import logging
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from accounts.models import User
from cipherguard import celery, metrics
from cipherguard.bulk import copy_insert
from fraud.models import BatchChunk, BatchItem, BatchJob, BatchStatus, WebhookEventType
from fraud.scoring.runtime import NoActiveModelError, runtime
from fraud.scoring.services import transactions_score_many
from fraud.transactions.validation import validate_transaction
from fraud.webhooks import payloads
from fraud.webhooks.events import webhook_events_record

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "amount", "currency", "country", "timestamp")
OPTIONAL_COLUMNS = ("channel",)


class BatchInputError(ValueError):
    """The upload as a whole is unusable (not a CSV, missing columns, too large)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class BatchTooLargeError(BatchInputError):
    """The upload is larger than ``BATCH_MAX_UPLOAD_BYTES``."""


# The task (fraud.batches.tasks) calls this module, so it is sent by its registered name.
PROCESS_TASK = "fraud.tasks.batch_job_process"


def _enqueue(job_id: int, dispatch: int, lane: int = 0) -> None:
    """Queue the lane's next task. A broker that is down loses nothing: the job is stored, and
    the resume (on worker start and every few seconds from beat) queues it once it is back."""
    try:
        celery.task(PROCESS_TASK).delay(job_id, dispatch, lane)
    except (KombuError, OSError) as exc:  # kombu's OperationalError, or a socket error: not queued now
        logger.warning("batch job %s stored but not queued (%s); it will be resumed", job_id, type(exc).__name__)


def _storable(value: Any) -> bool:
    """PostgreSQL's jsonb refuses NUL characters and lone surrogates; such a row is refused."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _safe_rows(rows: Iterable[Any]) -> Iterator[Any]:
    """Batch rows are stored before they are validated, so what must not be stored is taken
    out here and the row is reported as refused: a card number (it would sit unencrypted) and
    text the database cannot hold."""
    for row in rows:
        if not _storable(row):
            row = {"_unstorable": True}
        elif isinstance(row, dict) and "card_number" in row:
            row = {k: v for k, v in row.items() if k != "card_number"} | {"_card_number_refused": True}
        yield row


def _lane(row: Any, lanes: int) -> int:
    """The lane of a row: by its customer (a stable hash, the same in every process)."""
    if lanes == 1:
        return 0
    customer = row.get("customer_id") if isinstance(row, dict) else None
    return zlib.crc32(str(customer).encode("utf-8", "replace")) % lanes


def _create(owner: User, source: str, filename: str, rows: Iterable[dict[str, Any]]) -> BatchJob:
    size, lanes = settings.BATCH_CHUNK_SIZE, settings.BATCH_LANES
    with transaction.atomic():
        job = BatchJob.objects.create(owner=owner, source=source, filename=filename[:255])
        pending: list[list[tuple[int, Any]]] = [[] for _ in range(lanes)]
        total = index = 0
        used: set[int] = set()

        def flush(lane: int) -> None:
            nonlocal index
            used.add(lane)
            numbers = [n for n, _ in pending[lane]]
            contiguous = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            BatchChunk.objects.create(
                job=job, index=index, lane=lane, first_row=numbers[0],
                row_numbers=None if contiguous else numbers, rows=[row for _, row in pending[lane]],
            )  # fmt: skip
            pending[lane], index = [], index + 1

        for row in _safe_rows(rows):
            total += 1
            lane = _lane(row, lanes)
            pending[lane].append((total, row))
            if len(pending[lane]) == size:
                flush(lane)
        for lane in range(lanes):
            if pending[lane]:
                flush(lane)
        if total == 0:
            raise BatchInputError("file" if source == "csv" else "transactions", "The batch has no rows.")
        job.total, job.chunk_count = total, index
        job.save(update_fields=["total", "chunk_count"])
        transaction.on_commit(lambda: [_enqueue(job.pk, job.dispatch, lane) for lane in sorted(used)])
    return job


def _csv_rows(reader: csv.DictReader) -> Iterator[dict[str, Any]]:
    for raw in reader:
        # Empty optional cells mean "not given"; extra cells beyond the header are a row error.
        row = {k: v for k, v in raw.items() if k is not None and not (k in OPTIONAL_COLUMNS and v == "")}
        if None in raw:
            row["_extra_cells"] = raw[None]
        yield row


def batch_create_from_csv(*, owner: User, file: IO[bytes], filename: str) -> BatchJob:
    """Split an uploaded CSV (header row required; columns as in the API) into chunks and queue
    the job. Rows are validated by the worker, each on its own."""
    size = file.seek(0, io.SEEK_END)  # uploads are spooled to memory or disk: seekable
    file.seek(0)
    if size > settings.BATCH_MAX_UPLOAD_BYTES:
        raise BatchTooLargeError("file", f"The file is larger than {settings.BATCH_MAX_UPLOAD_BYTES} bytes.")
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError("file", f"Not a UTF-8 CSV file: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
            [f"unknown columns: {', '.join(unknown)}"] if unknown else []
        )
        raise BatchInputError(
            "file", "; ".join(problems) + f". Expected {', '.join(REQUIRED_COLUMNS)} and optionally channel."
        )
    try:
        return _create(owner, "csv", filename, _csv_rows(reader))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError("file", f"Not a UTF-8 CSV file: {exc}") from None


def batch_create_from_items(*, owner: User, items: list[Any]) -> BatchJob:
    return _create(owner, "json", "", iter(items))


def _validate(raw: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Each item must be an object."]}
    if "_extra_cells" in raw:
        return None, {"non_field_errors": ["The row has more cells than the header."]}
    if raw.get("_unstorable"):
        return None, {"non_field_errors": ["The row contains NUL characters or invalid Unicode."]}
    if raw.get("_card_number_refused"):
        return None, {
            "card_number": [
                "Card numbers are not accepted in batch jobs (they would be stored before encryption); score them one by one or through /transactions/batch/."
            ]
        }
    data, errors = validate_transaction(raw)
    if data is not None:
        return data, None
    return None, {k: [str(m) for m in v] for k, v in errors.items()}


def _finished(job: BatchJob, owner: User) -> None:
    """Record ``batch_job.finished`` for a job whose status just became final, inside the
    transaction that set it (the job row is locked): the event commits with the status."""
    flagged = 0
    if job.scored:  # one count, once per job, over the job's own items (indexed by job)
        flagged = BatchItem.objects.filter(
            job=job, status__lt=400, transaction__decision__in=payloads.FLAGGED_DECISIONS
        ).count()
    webhook_events_record(
        event_type=WebhookEventType.BATCH_JOB_FINISHED,
        owner=owner,
        payloads=[payloads.batch_job_finished(job, flagged_count=flagged)],
    )


def _start(job_id: int) -> bool:
    """Mark a queued job running (with the model it starts on), or fail it without an active
    model. False when the job has nothing left to do."""
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.status not in (BatchStatus.QUEUED, BatchStatus.RUNNING) or job.chunks_done >= job.chunk_count:
            return False
        if job.status == BatchStatus.QUEUED:
            try:
                model, _ = runtime.current()
            except NoActiveModelError as exc:
                job.status, job.error, job.finished_at = BatchStatus.FAILED, str(exc), timezone.now()
                job.save(update_fields=["status", "error", "finished_at"])
                _finished(job, job.owner)
                return False
            job.status, job.started_at, job.model_version_id = BatchStatus.RUNNING, timezone.now(), model.id
            job.heartbeat_at = job.started_at
            job.save(update_fields=["status", "started_at", "model_version", "heartbeat_at"])
    return True


def _submitted_id(raw: Any) -> str:
    value = raw.get("transaction_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else ""


def _items(job: BatchJob, chunk: BatchChunk) -> list[BatchItem]:
    """The chunk's rows validated and scored: one BatchItem per row."""
    rows = chunk.rows or []
    numbers = chunk.row_numbers or range(chunk.first_row, chunk.first_row + len(rows))
    valid: list[tuple[int, dict[str, Any]]] = []
    items: list[BatchItem] = []
    for row, raw in zip(numbers, rows, strict=True):
        data, errors = _validate(raw)
        if data is None:
            items.append(BatchItem(job=job, row=row, status=400, errors=errors, submitted_id=_submitted_id(raw)))
        else:
            valid.append((row, data))
    outcomes = (
        transactions_score_many(
            client=job.owner,
            items=[d for _, d in valid],
            path="job",
            source=payloads.batch_job_source(job.pk),
        )
        if valid
        else []
    )
    for (row, data), outcome in zip(valid, outcomes, strict=True):
        errors = {"transaction_id": [outcome.detail]} if outcome.status == 409 else None
        items.append(
            BatchItem(
                job=job, row=row, status=outcome.status, transaction=outcome.transaction, errors=errors,
                submitted_id=data["transaction_id"],
            )
        )  # fmt: skip
    return items


def batch_process_next_chunk(*, job_id: int, dispatch: int | None = None, lane: int = 0) -> bool:
    """Process the lane's next chunk; True when the caller's chain should queue the lane's next
    task.

    The chunk row is locked while it is scored (``FOR UPDATE``): two deliveries of the same task
    queue up on it, and the second sees the chunk done and takes the lane's next one. The job
    row is locked only at the end, to count the chunk in. A task of a chain the job no longer
    runs on (``dispatch`` older than the job's; see ``batch_jobs_resume_stalled``) still does its
    chunk, but asks for no successor."""
    if not _start(job_id):
        return False
    with transaction.atomic():
        chunk = (
            BatchChunk.objects.select_for_update()
            .filter(job_id=job_id, lane=lane, rows__isnull=False)
            .order_by("index")
            .first()
        )
        if chunk is None:
            return False
        job = BatchJob.objects.select_related("owner").get(pk=job_id)
        if job.status != BatchStatus.RUNNING:
            return False  # cancelled (or failed) while this task waited
        owner = job.owner
        items = _items(job, chunk)
        copy_insert(BatchItem, items)
        bad = sum(1 for i in items if i.status >= 400)
        scored = len(items) - bad
        transaction.on_commit(lambda: metrics.record_batch_rows(scored=scored, failed=bad))
        chunk.rows = None  # processed: the results live in BatchItem now
        chunk.save(update_fields=["rows"])
        following = (
            BatchChunk.objects.filter(job_id=job_id, lane=lane, rows__isnull=False)
            .order_by("index")
            .values_list("pk", flat=True)
            .first()
        )
        if following is not None:  # its task is queued on commit: the lane's sign of life
            BatchChunk.objects.filter(pk=following).update(queued_at=timezone.now())
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        job.failed += bad
        job.scored += scored
        job.chunks_done += 1
        # Stamped when the chunk is done, not when it began: the chunk's own time is not a stall.
        job.heartbeat_at = timezone.now()
        done = job.chunks_done == job.chunk_count and job.status == BatchStatus.RUNNING
        if done:
            job.status, job.finished_at = BatchStatus.SUCCEEDED, job.heartbeat_at
        job.save(update_fields=["failed", "scored", "chunks_done", "heartbeat_at", "status", "finished_at"])
        if done:
            _finished(job, owner)
    return (
        following is not None and job.status == BatchStatus.RUNNING and (dispatch is None or dispatch == job.dispatch)
    )


def batch_cancel(*, job: BatchJob) -> BatchJob:
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (BatchStatus.QUEUED, BatchStatus.RUNNING):
            job.status, job.finished_at = BatchStatus.CANCELLED, timezone.now()
            job.save(update_fields=["status", "finished_at"])
            _finished(job, job.owner)
    return job


def _stalled_lanes(job: BatchJob, cutoff: datetime) -> dict[int, int]:
    """The job's lanes with chunks left (lane → its next chunk), when at least one of them has
    stalled: its next chunk is not locked by a worker (however long a chunk takes, it is locked
    while scored) and was queued before ``cutoff``. Empty when every lane is alive. A killed
    worker's transaction is rolled back and its locks released when its connection dies."""
    nexts: dict[int, tuple[int, datetime]] = {}
    for pk, lane, queued_at in (
        BatchChunk.objects.filter(job=job, rows__isnull=False).order_by("index").values_list("pk", "lane", "queued_at")
    ):
        nexts.setdefault(lane, (pk, queued_at or job.created_at))
    free = set(
        BatchChunk.objects.select_for_update(skip_locked=True)
        .filter(pk__in=[pk for pk, _ in nexts.values()])
        .values_list("pk", flat=True)
    )
    if any(pk in free and queued_at < cutoff for pk, queued_at in nexts.values()):
        return {lane: pk for lane, (pk, _) in sorted(nexts.items())}
    return {}


def batch_jobs_resume_stalled(*, stalled_for: timedelta | None = None) -> list[int]:
    """Start new task chains for each queued or running job with a lane that showed no sign of
    life for ``stalled_for`` (its worker was killed, or its message was lost or never sent): one
    chain per lane with chunks left. The lanes still being worked on get a new chain too: their
    old chain stops after its chunk (its ``dispatch`` is old) and the new one waits on the chunk's
    lock, so no lane ever runs on two chains for long. Each lane is judged on its own, so a lane
    that died is resumed while the others carry on."""
    now = timezone.now()
    cutoff = now - (stalled_for or timedelta(seconds=settings.BATCH_STALL_SECONDS))
    candidates = list(
        BatchJob.objects.filter(status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    resumed: list[int] = []
    for job_id in candidates:
        with transaction.atomic():
            job = BatchJob.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None or job.status not in (BatchStatus.QUEUED, BatchStatus.RUNNING):
                continue
            lanes = _stalled_lanes(job, cutoff)
            if not lanes:
                continue
            job.dispatch += 1
            job.heartbeat_at = now
            job.save(update_fields=["dispatch", "heartbeat_at"])
            # Queued now: one resume per window, not one per beat.
            BatchChunk.objects.filter(pk__in=lanes.values()).update(queued_at=now)
            transaction.on_commit(lambda job=job, lanes=lanes: [_enqueue(job.pk, job.dispatch, lane) for lane in lanes])
        resumed.append(job_id)
    return resumed


RESULT_COLUMNS = ("row", "transaction_id", "status", "fraud_score", "decision", "model_version", "errors")


def batch_result_lines(job: BatchJob) -> Iterator[str]:
    """The job's results as CSV lines, in row order, streamed from the database."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(RESULT_COLUMNS)
    # Plain tuples from one server-side cursor (PostgreSQL): a fixed number of queries and bounded
    # memory whatever the job's size, and no model instance, whose join would load the artifact.
    rows = (
        BatchItem.objects.filter(job=job)
        .order_by("row")
        .values_list(
            "row",
            "transaction__transaction_id",
            "submitted_id",
            "status",
            "transaction__fraud_score",
            "transaction__decision",
            "transaction__model_version__version",
            "errors",
        )
        .iterator(chunk_size=2000)
    )
    for row, transaction_id, submitted_id, status, score, decision, version, errors in rows:
        scored = status < 400
        yield line(
            (
                row,
                transaction_id or submitted_id,
                status,
                score if scored and score is not None else "",
                decision if scored and decision else "",
                version if scored and version else "",
                "; ".join(f"{k}: {' '.join(v)}" for k, v in (errors or {}).items()),
            )
        )
