"""The fault suite's session: one private deployment (tests/faults/stack.py) shared by every
scenario, and the figures each scenario records.

- It never uses pytest-django's test database: scenarios talk HTTP to gunicorn and read their
  own PostgreSQL with psycopg. The root conftest's autouse fixtures that touch the configured
  cache or database are replaced here by no-ops (they would clear the machine's shared Redis).
- It runs only when asked for by path (`pytest tests/faults`, or a file in it) or with
  CIPHERGUARD_FAULTS=1: it takes minutes and keeps both cores busy, so a plain `pytest` /
  `make test` skips it with that reason and .ci/run runs it as a step of its own.
- Missing initdb or redis-server skips it, and fails it under CIPHERGUARD_REQUIRE_SERVICES=1,
  like every other service-backed test (tests/conftest.py).
- Figures: printed as `FAULTS <scenario> {json}` lines and written to var/faults/figures.json
  after each scenario; the services' log tails are kept in var/faults/logs/.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _unavailable
from tests.faults.stack import ROOT, SetupError, Stack, postgres_bin_dir

FAULTS_DIR = ROOT / "var" / "faults"
HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fresh_runtime() -> None:
    """Overrides the root conftest's: this process's cache is not the deployment's, and clearing
    it would clear whatever shared Redis REDIS_URL names."""


@pytest.fixture(autouse=True)
def _audit_append_only() -> None:
    """Overrides the root conftest's: no test here uses pytest-django's database."""


def _asked_for(config: pytest.Config) -> bool:
    if os.environ.get("CIPHERGUARD_FAULTS") == "1":
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


class Figures:
    """Each scenario's figures, printed and kept in one JSON file per run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"run_started": datetime.now(UTC).isoformat(timespec="seconds"), "scenarios": {}}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    def record(self, scenario: str, figures: dict[str, Any], failures: list[str] | None = None) -> None:
        entry = {**figures, "failures": failures or []}
        self.data["scenarios"][scenario] = entry
        self._write()
        print(f"\nFAULTS {scenario} {json.dumps(entry, default=str)}", flush=True)

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    if not _asked_for(request.config):
        pytest.skip("the fault suite runs on its own: pytest tests/faults (or CIPHERGUARD_FAULTS=1)")
    return Figures(FAULTS_DIR / "figures.json")


@pytest.fixture(scope="session")
def stack(figures: Figures) -> Iterator[Stack]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _unavailable("needs PostgreSQL's server binaries (initdb; apt-get install postgresql)")
    if shutil.which("redis-server") is None:
        _unavailable("needs redis-server (apt-get install redis-server)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("runs PostgreSQL as the `postgres` OS user when root, and there is none")
    # `timeout 600 pytest ...` (CI) sends SIGTERM: turn it into the interrupt pytest tears down on,
    # so the services this session started are stopped rather than left running.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    base = Path(tempfile.mkdtemp(prefix="cipherguard-faults-"))
    base.chmod(0o755)  # the postgres user must reach its data directory inside
    deployment = Stack(base, bin_dir)
    try:
        try:
            deployment.start()
        except (SetupError, TimeoutError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"the fault suite's deployment did not come up: {exc}\n{deployment.diagnostics()}")
        figures.record("setup", {"seconds": deployment.setup_seconds})
        yield deployment
    finally:
        deployment.stop()
        deployment.keep_logs(FAULTS_DIR / "logs")
        shutil.rmtree(base, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
