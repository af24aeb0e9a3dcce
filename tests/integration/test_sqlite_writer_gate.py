"""SQLite writers queue at the writer gate: one write transaction at a time per file,
across the threads of a process and across processes, handed on when it ends."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text

from callerconnect.adapters.db.engine import Database

#: Another process trying the gate's lock without waiting: exit 0 if it got it.
TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(1)
sys.exit(0)
"""


def other_process_can_write(lock_file: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)], timeout=30)
    return done.returncode == 0


def test_a_write_transaction_holds_the_file_lock_other_processes_queue_on(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'cc.db'}")
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        lock_file = tmp_path / "cc.db-writer"
        assert other_process_can_write(lock_file)
        with db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            assert not other_process_can_write(lock_file)
        assert other_process_can_write(lock_file)
        # A failed transaction lets go as well.
        with pytest.raises(RuntimeError), db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("rolled back")
        assert other_process_can_write(lock_file)
        # Reading does not queue: a report never holds up the intake.
        with db.reading() as connection:
            connection.execute(text("SELECT count(*) FROM t"))
            assert other_process_can_write(lock_file)
    finally:
        db.dispose()


def test_threads_and_processes_writing_at_once_all_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    db = Database.from_url(url)
    with db.transaction() as session:
        session.execute(text("CREATE TABLE t (who TEXT, n INTEGER)"))
    writer = (
        "import sys\n"
        "from sqlalchemy import text\n"
        "from callerconnect.adapters.db.engine import Database\n"
        "db = Database.from_url(sys.argv[1])\n"
        "for n in range(100):\n"
        "    with db.transaction() as s:\n"
        "        s.execute(text(\"INSERT INTO t VALUES ('process', :n)\"), {'n': n})\n"
        "db.dispose()\n"
    )
    other = subprocess.Popen([sys.executable, "-c", writer, url])
    failures: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for n in range(50):
                with db.transaction() as session:
                    session.execute(
                        text("INSERT INTO t VALUES (:who, :n)"), {"who": f"thread-{thread}", "n": n}
                    )
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert other.wait(timeout=120) == 0
    assert failures == []
    with db.reading() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 300
    db.dispose()


def test_a_transaction_opened_inside_another_does_not_wait_for_itself(tmp_path: Path) -> None:
    """Nested on one thread it would wait on the gate for ever; it passes the gate and
    meets SQLite's own lock, which answers (here at once: busy timeout 0)."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'cc.db'}")
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))

        @event.listens_for(db.engine, "connect")  # after the engine's own PRAGMAs
        def no_wait(dbapi_connection: object, _record: object) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[attr-defined]

        db.engine.dispose()
        with db.transaction() as outer:
            outer.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(Exception, match="locked"), db.transaction() as inner:
                inner.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        db.dispose()
