"""Shared commits of the state's SQLite connection (executor/state.py).

A write that can be lost in a crash without harm (the step is done again after the restart,
idempotently, or only the run history misses a moment) joins one open transaction, committed
COMMIT_DELAY later with every write made meanwhile, or earlier by `flush`: a commit costs about
0.1 ms on a disk (the log's pages written), a write inside a transaction a twentieth of that.
What must be on disk before something leaves the process is flushed at once, together with
whatever waits: an accepted event before its answer, a placement before its Job is created, an
outgoing event's attempt before it is sent, and a task's progress before it is submitted. So a
crash loses only writes that nothing outside the process has acted on yet.

Without a running event loop (a command, a test) every write commits on its own, as SQLite's
autocommit does.

Checkpoints (copying the write-ahead log into the database file, and syncing both to the disk)
are made by a thread of their own every CHECKPOINT_INTERVAL, not by SQLite inside whichever
commit crosses 1,000 pages of log: that commit held the event loop for the copy and two fsyncs,
where any other commit is a few writes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# How long a write may wait, in the open transaction, for the writes around it.
COMMIT_DELAY = 0.01
# How often the log is checkpointed: also the most a power loss can take (FEATURES.md).
CHECKPOINT_INTERVAL = 1.0


class Commits:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        """Before a write: open the shared transaction unless it is open."""
        if self._db.in_transaction and self._loop is not None and self._loop.is_running():
            # The loop that opened it runs, so it is the caller's: one loop runs in a thread at
            # a time, and the state is used from that thread alone. Asking asyncio for the
            # running loop costs a getpid system call on Python 3.11, on every write.
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._db.in_transaction:
            if loop is self._loop:
                return
            self.flush()  # left open by an event loop that has ended
        if loop is None:
            return
        self._db.execute("BEGIN")
        self._loop = loop
        self._timer = loop.call_later(COMMIT_DELAY, self.flush)

    def flush(self) -> None:
        """Commit every write made so far."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def transaction(self) -> Transaction:
        """All or nothing, inside the shared transaction (committed with it)."""
        return Transaction(self)


class Transaction:
    def __init__(self, commits: Commits) -> None:
        self._commits = commits

    def __enter__(self) -> None:
        self._commits.begin()
        self._commits._db.execute("SAVEPOINT batch")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type:
            self._commits._db.execute("ROLLBACK TO batch")
        self._commits._db.execute("RELEASE batch")


class Checkpoints:
    """Checkpoints of a WAL database, made by a thread with a connection of its own.

    PASSIVE: a checkpoint never waits for, nor blocks, the service's writer (SQLite's WAL lets
    a checkpoint run beside one); it copies what it can, and the log restarts from its
    beginning at the next write once it is all copied. A checkpoint with nothing new to copy
    writes nothing.
    """

    def __init__(self, path: str, interval: float | None = None) -> None:
        self._path = path
        self._interval = CHECKPOINT_INTERVAL if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                self._checkpoint(db)
        finally:
            db.close()

    @staticmethod
    def _checkpoint(db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # a busy moment or a full disk: the next round tries again
            log.warning("checkpointing the state's log: %s", exc)

    def close(self) -> None:
        """Stop the thread (the database's last connection to close checkpoints what is left)."""
        self._stop.set()
        self._thread.join()
