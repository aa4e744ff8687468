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

The log starts again from its beginning only when a checkpoint has copied all of it and no
commit came in between. Under a steady load one always does (a commit every few milliseconds,
where a checkpoint with its syncs takes tens), and the log grew without end: 500 MB in 20 s at
200 events/s, and each checkpoint's sync of it held up the event loop's writes to it. So once
the log holds more than WAL_RESTART_BYTES, the thread syncs what its checkpoint copied and asks
for a restart; the event loop's next commit then checkpoints the last few commits itself
(RESTART: nothing can commit in between, since it is the only writer) and its next write starts
the log again, with the file cut back to WAL_RESTART_BYTES. That holds the loop for the copy of
a few commits and two syncs (15-30 ms on a busy virtual disk), once per WAL_RESTART_BYTES of
log (every 5 s at 200 events/s); a light load never needs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

# How long a write may wait, in the open transaction, for the writes around it.
COMMIT_DELAY = 0.01
# How often the log is checkpointed: also the most a power loss can take (FEATURES.md).
CHECKPOINT_INTERVAL = 1.0
# How big the log may grow before it is made to start again (and its file's size after that).
WAL_RESTART_BYTES = 128 * 1024 * 1024


class Commits:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Set by the checkpoint thread: the log is long, and all but its last commits are copied.
        self.restart_wanted = threading.Event()
        # The log's file is cut back to this size when the log starts again.
        db.execute(f"PRAGMA journal_size_limit={WAL_RESTART_BYTES}")

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
        if self.restart_wanted.is_set():
            self._restart()

    def _restart(self) -> None:
        """Checkpoint the rest of the log so that the next write starts it again. Not waiting
        for a reader of another process: if one holds the log, a later commit tries again."""
        self.restart_wanted.clear()
        (waits,) = self._db.execute("PRAGMA busy_timeout").fetchone()
        self._db.execute("PRAGMA busy_timeout = 0")
        try:
            self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sqlite3.Error as exc:
            log.warning("checkpointing the state's log: %s", exc)
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {int(waits)}")

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


def _sync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        # macOS has no fdatasync; its fsync is what SQLite's NORMAL uses there.
        getattr(os, "fdatasync", os.fsync)(fd)
    finally:
        os.close(fd)


class Checkpoints:
    """Checkpoints of a WAL database, made by a thread with a connection of its own.

    PASSIVE: a checkpoint never waits for, nor blocks, the service's writer (SQLite's WAL lets
    a checkpoint run beside one); it copies what it can, and the log restarts from its
    beginning at the next write once it is all copied. Under a steady load it never is, so past
    WAL_RESTART_BYTES the event loop is asked to finish the job (see above). A checkpoint with
    nothing new to copy writes nothing.
    """

    def __init__(self, path: str, restart_wanted: threading.Event, interval: float | None = None) -> None:
        self._path = path
        self._interval = CHECKPOINT_INTERVAL if interval is None else interval
        self._restart_wanted = restart_wanted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            frame_bytes = int(db.execute("PRAGMA page_size").fetchone()[0]) + 24
            while not self._stop.wait(self._interval):
                self._checkpoint(db, frame_bytes)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection, frame_bytes: int) -> None:
        try:
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames * frame_bytes > WAL_RESTART_BYTES:
                # A passive checkpoint syncs the database file only when it copied all of the
                # log: sync what it copied here, so that the restart has little left to sync.
                for name in (self._path, self._path + "-wal"):
                    _sync(name)
                self._restart_wanted.set()
        except (sqlite3.Error, OSError) as exc:  # a busy moment or a full disk: the next round tries again
            log.warning("checkpointing the state's log: %s", exc)

    def close(self) -> None:
        """Stop the thread (the database's last connection to close checkpoints what is left)."""
        self._stop.set()
        self._thread.join()
