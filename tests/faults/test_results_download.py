"""The results of a 100,000-row batch job, scored for real by the worker, downloaded through
gunicorn: the stream completes well within gunicorn's worker timeout (a sync worker silent for
longer is killed mid-response, truncating the file), with all 100,001 lines.

Last in the suite (file order): scoring 100,000 rows takes a minute or two on 2 cores."""

from __future__ import annotations

import http.client
import time
import uuid

from tests.faults.stack import batch_csv, multipart, now

ROWS = 100_000
SCORING_WAIT_S = 420
DOWNLOAD_WAIT_S = 120


def download(port: int, path: str, token: str, *, deadline_s: float) -> dict:
    """Stream a response to the end (or the deadline), counting lines as they arrive."""
    started = now()
    figures: dict = {"status": None, "lines": 0, "bytes": 0, "first_byte_s": None, "error": None}
    last = b""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        figures["status"] = response.status
        figures["content_type"] = response.getheader("Content-Type")
        figures["first_byte_s"] = round(now() - started, 3)
        while True:
            block = response.read1(65536)
            if not block:
                break
            figures["lines"] += block.count(b"\n")
            figures["bytes"] += len(block)
            last = (last + block)[-200:]
            if now() - started > deadline_s:
                figures["error"] = f"still streaming after {deadline_s:.0f} s"
                break
    except (OSError, http.client.HTTPException) as exc:
        figures["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    figures["seconds"] = round(now() - started, 2)
    figures["last_line"] = last.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode(errors="replace")
    return figures


def test_the_results_of_a_100k_row_job_download_well_within_gunicorns_timeout(stack, figures):
    stack.wait_ready(timeout=60)
    failures: list[str] = []
    token = stack.token()
    gunicorn_timeout = int(stack.env.get("GUNICORN_TIMEOUT", "30"))
    bound = gunicorn_timeout / 2  # "well within": half the timeout
    prefix = f"dl-{uuid.uuid4().hex[:8]}"
    body, content_type = multipart("file", "faults-100k.csv", batch_csv(ROWS, prefix), "text/csv")
    created = stack.api("POST", "/api/v1/batches/", token, body=body, content_type=content_type, timeout=120)
    assert created.status == 202, f"upload: {created.status} {created.error} {created.body[:300]!r}"
    job_id = created.json()["id"]

    deadline = now() + SCORING_WAIT_S
    while stack.job_row(job_id)["status"] in ("queued", "running"):
        assert now() < deadline, f"{ROWS} rows not scored in {SCORING_WAIT_S} s: {stack.job_row(job_id)}"
        time.sleep(0.5)
    scored_in = now() - created.finished
    job = stack.job_row(job_id)
    assert (job["status"], job["scored"]) == ("succeeded", ROWS), f"the job did not succeed: {job}"

    result = download(stack.web_port, f"/api/v1/batches/{job_id}/results/", token, deadline_s=DOWNLOAD_WAIT_S)
    if result["status"] != 200 or result["error"] or result["lines"] != ROWS + 1:
        failures.append(
            f"download: status {result['status']}, {result['lines']} lines of {ROWS + 1} after {result['seconds']} s "
            f"({result['error'] or 'complete'}; last line {result['last_line']!r})"
        )
    if result["seconds"] >= bound:
        failures.append(
            f"download took {result['seconds']} s: not well within gunicorn's {gunicorn_timeout} s timeout "
            f"(bound {bound:.0f} s)"
        )
    figures.record(
        "results_download_100k",
        {
            "rows": ROWS,
            "upload_s": round(created.duration, 2),
            "scoring_s": round(scored_in, 1),
            "scoring_rows_per_s": round(ROWS / scored_in),
            "download_s": result["seconds"],
            "download_first_byte_s": result["first_byte_s"],
            "download_lines": result["lines"],
            "download_bytes": result["bytes"],
            "download_error": result["error"],
            "gunicorn_timeout_s": gunicorn_timeout,
            "bound_s": bound,
        },
        failures,
    )
    assert not failures, "\n".join(failures)
