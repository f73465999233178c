"""A real PostgreSQL streaming replica of the test server, for the replica-router tests.

``pg_basebackup`` copies the running primary into a temporary data directory and writes the
standby settings (``-R``); a second ``postgres`` then runs it on a free port, streaming WAL from
the primary. The primary must accept replication connections from 127.0.0.1: if its pg_hba.conf
does not, and we may edit it (root, as in CI), one ``host replication`` line for 127.0.0.1 with
the primary's own trust method is added and the configuration reloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.helpers import free_port


class ReplicaUnavailableError(Exception):
    """This machine cannot run a replica (no PostgreSQL binaries, no rights)."""


def _bin_dir(primary: psycopg.Connection) -> Path:
    major = primary.execute("SHOW server_version_num").fetchone()[0][:2]
    path = Path(f"/usr/lib/postgresql/{int(major)}/bin")
    if not (path / "pg_ctl").exists():
        raise ReplicaUnavailableError(f"no PostgreSQL {major} server binaries in {path}")
    return path


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _allow_replication(primary: psycopg.Connection) -> None:
    rules = primary.execute(
        "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) AND type = 'host' "
        "AND (address IS NULL OR address = '127.0.0.1' OR address = 'all')"
    ).fetchone()[0]
    if rules:
        return
    hba = Path(primary.execute("SHOW hba_file").fetchone()[0])
    if not os.access(hba, os.W_OK):
        raise ReplicaUnavailableError(f"{hba} allows no replication from 127.0.0.1 and is not writable here")
    with hba.open("a") as f:
        f.write("\n# Added by CipherGuard's test setup: a local streaming replica for the router tests.\n")
        f.write("host replication all 127.0.0.1/32 trust\n")
    primary.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


@dataclass
class Replica:
    port: int
    datadir: Path
    bin_dir: Path

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        try:
            self._ctl("-l", str(self.datadir / "server.log"), "-w", "-t", "30", "start")
        except subprocess.CalledProcessError as exc:
            raise ReplicaUnavailableError(f"the replica did not start:\n{self.log()}") from exc
        self.wait_streaming()

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    if conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone() == ("streaming",):
                        return
            except psycopg.Error:
                pass
            if time.monotonic() > deadline:
                raise ReplicaUnavailableError("the replica did not start streaming:\n" + self.log())
            time.sleep(0.2)

    def wait_caught_up(self, primary: psycopg.Connection, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while (
                conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [str(target)]).fetchone()[0] is not True
            ):
                if time.monotonic() > deadline:
                    raise AssertionError("the replica did not catch up")
                time.sleep(0.05)

    def log(self) -> str:
        path = self.datadir / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.datadir, ignore_errors=True)


def start_replica(primary_dsn: dict[str, object]) -> Replica:
    if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        raise ReplicaUnavailableError(
            "starting a PostgreSQL server needs root (to run it as postgres) or the postgres user"
        )
    with psycopg.connect(**primary_dsn, dbname="postgres", autocommit=True) as primary:
        bin_dir = _bin_dir(primary)
        _allow_replication(primary)
        # A standby refuses to start with fewer connections (and the like) than its primary.
        max_connections = primary.execute("SHOW max_connections").fetchone()[0]
    datadir = Path(tempfile.mkdtemp(prefix="cipherguard-replica-"))
    port = free_port()
    result = subprocess.run(
        [str(bin_dir / "pg_basebackup"), "-h", str(primary_dsn.get("host") or "127.0.0.1"), "-p", str(primary_dsn.get("port") or 5432),
         "-U", str(primary_dsn.get("user") or "postgres"), "-D", str(datadir), "-X", "stream", "-R", "-c", "fast"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        raise ReplicaUnavailableError(f"pg_basebackup failed: {result.stderr.strip()}")
    # Debian keeps the primary's configuration outside its data directory: give the replica its own.
    (datadir / "postgresql.conf").write_text(
        f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{datadir}'\n"
        f"hot_standby = on\nmax_connections = {max_connections}\nshared_buffers = 32MB\n"
        "hot_standby_feedback = on\nwal_receiver_status_interval = 1s\n"
    )
    (datadir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (datadir / "pg_ident.conf").write_text("")
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
        for path in datadir.rglob("*"):
            shutil.chown(path, "postgres", "postgres")
    datadir.chmod(0o700)
    replica = Replica(port=port, datadir=datadir, bin_dir=bin_dir)
    try:
        replica.start()
    except Exception:
        replica.remove()
        raise
    return replica
