"""A PostgreSQL server of the test's own, from the machine's PostgreSQL binaries.

The machine's server is shared with other work, so a test that restarts a server (to
prove that ``serve`` and the workers recover by themselves) starts its own: ``initdb`` in
a temporary folder, a free port on 127.0.0.1, trust authentication, and ``pg_ctl
restart`` when the test says so. PostgreSQL refuses to run as root, so as root the
commands run as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bin_dir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(versions[-1]) if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data_dir / "data"),
            "-w",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            # Sockets in our folder; durability is not what these tests are about.
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.data_dir} -c fsync=off",
            *extra,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """What an operator's restart does: connections cut, the server back shortly."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")


@contextmanager
def private_postgresql() -> Iterator[PrivatePostgres]:
    bin_dir = _bin_dir()
    assert bin_dir is not None, "PostgreSQL binaries (initdb, pg_ctl) not found"
    # Not under pytest's tmp_path: its parents are private to root, and the server runs
    # as ``postgres``.
    folder = Path(tempfile.mkdtemp(prefix="callerconnect-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PrivatePostgres(bin_dir, folder, _free_port())
    try:
        server._run(
            "initdb", "-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):  # never started, or gone
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
