"""`make screenshots`: the README's pictures, taken by Debian's Chromium (driven by Playwright)
from the `make run` demo, so they show what a newcomer will see and never go stale.

Uses the server at ``--url`` when one answers there (a `make run` in another terminal); otherwise
starts the demo itself (first-run setup, a web server and a worker) and stops it afterwards. The
demo's API client sends one small batch job (after the queue and the case are taken), so the
batch page has something to show.
Writes PNGs to docs/images/. Never downloads a browser: ``CHROMIUM_PATH`` or /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from docs/: the browser settings live in tests/browser
IMAGES = ROOT / "docs" / "images"
from tests.browser.chromium import CHROMIUM, FLAGS  # noqa: E402

WIDTH, HEIGHT = 1360, 900


def _get(url: str, *, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _post(url: str, body: object, *, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_until_up(url: str, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _get(f"{url}/healthz")[0] == 200:
            return True
        time.sleep(1)
    return False


@contextlib.contextmanager
def demo_server(url: str, host: str, port: int) -> Iterator[None]:
    """A `make run` of our own unless one already answers at ``url``."""
    if _get(f"{url}/healthz")[0] == 200:
        print(f"using the server already running at {url}")
        yield
        return
    print(f"starting the demo on {url} (make run)…")
    log = open(ROOT / "var" / "screenshots-server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"HOST={host}", f"PORT={port}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the web server and the worker stop with it
    )
    try:
        if not _wait_until_up(url, seconds=600):
            raise SystemExit(f"the demo did not answer on {url}: see var/screenshots-server.log")
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def credentials() -> dict[str, str]:
    path = ROOT / "var" / "demo-credentials.json"
    if not path.exists():
        raise SystemExit("no var/demo-credentials.json: run `make run` once (or let this command start it)")
    known: dict[str, str] = json.loads(path.read_text())
    return known


def send_batch_job(url: str, password: str) -> int | None:
    """One small batch job of the demo client's (fixed ids: a second run replays them)."""
    token = _post(f"{url}/api/v1/auth/token/", {"username": "demo-client", "password": password})["access"]
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        {
            "transaction_id": f"screenshot-{i:04d}",
            "customer_id": f"C{(i * 37) % 800:06d}",
            "merchant_id": f"M{(i * 11) % 250:05d}",
            "amount": f"{5 + (i * 7919) % 55}.{i % 100:02d}",  # everyday amounts: a few flags, not hundreds
            "currency": "EUR",
            "country": "NG" if i % 97 == 0 else "IT",
            "channel": "online" if i % 3 else "pos",
            "timestamp": (now - timedelta(seconds=5 * (200 - i))).isoformat().replace("+00:00", "Z"),
        }
        for i in range(200)
    ]
    rows.append({**rows[0], "transaction_id": "screenshot-bad", "amount": "-5"})  # a row the job reports
    job = _post(f"{url}/api/v1/batches/", {"transactions": rows}, token=token)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = _get(f"{url}/api/v1/batches/{job['id']}/", token=token)
        if status == 200 and json.loads(body)["status"] in ("succeeded", "failed", "cancelled"):
            return int(job["id"])
        time.sleep(1)
    print("the batch job did not finish in 2 minutes (is the worker running?); no batch screenshot")
    return None


def shoot(url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    known = credentials()
    IMAGES.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})

        def save(name: str, *, full_page: bool = False) -> None:
            path = IMAGES / f"{name}.png"
            page.screenshot(path=str(path), full_page=full_page)
            written.append(path)
            print(f"  {path.relative_to(ROOT)}")

        page.goto(f"{url}/console/login/")
        page.fill("#id_username", "demo-analyst")
        page.fill("#id_password", known["demo-analyst"])
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/console/")
        save("console-queue")
        first_case = page.locator("table.cases tbody tr a[href*='/console/cases/']").first
        if first_case.count():
            first_case.click()
            page.wait_for_load_state()
            save("console-case", full_page=True)
        page.goto(f"{url}/console/dashboard/")
        save("console-dashboard", full_page=True)
        page.goto(f"{url}/console/drift/")
        save("console-drift")
        # The batch job last: its rows must not change the queue and the case shown above.
        job_id = send_batch_job(url, known["demo-client"]) if "demo-client" in known else None
        if job_id is not None:
            page.goto(f"{url}/console/batches/{job_id}/")
            save("console-batch")
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})  # a new context: signed out
        page.goto(f"{url}/admin/login/")
        page.fill("#id_username", "demo-admin")
        page.fill("#id_password", known["demo-admin"])
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/admin/")
        page.goto(f"{url}/admin/fraud/modelversion/")
        version = page.locator("#result_list tbody tr th a").first
        if version.count():
            version.click()
            page.wait_for_load_state()
            save("admin-model-version", full_page=True)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)")
    url = f"http://{args.host}:{args.port}"
    with demo_server(url, args.host, args.port):
        written = shoot(url)
    print(f"{len(written)} screenshots written to docs/images/")


if __name__ == "__main__":
    sys.exit(main())
