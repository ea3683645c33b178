"""One process at a time per run folder: an exclusive ``flock`` on ``folder/.lock``.

The lock file holds JSON ``{"pid", "host", "started"}`` of the holder, for the message of
the process that is refused. The lock itself is the ``flock`` on the open file, not the
file's existence, so:

- a holder that dies (crash, ``kill -9``, power loss of a local disk) releases it with its
  file descriptors; a ``.lock`` left behind is stale and free to take;
- a holder removes the file when it is done; a process that opened the file just before
  that re-checks, after locking, that its descriptor is still the file at the path.

``flock`` works across hosts on NFS (Linux emulates it with POSIX locks there) but not on
every network file system; a run folder shared by hosts that do not see each other's locks
is not protected.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from macrodyn.errors import InputError

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(folder):`` holds ``folder/.lock`` exclusively (creating ``folder``, and
    removing the folders it created if they are still empty when it is released).

    Raises (on entering):
        InputError: the folder is in use by another process (one line naming its pid, host
            and start time), or the folder or lock file cannot be created.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []  # folders this lock made, deepest first (removed again if left empty)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create run folder {self.folder}: {e.strerror or e}; choose another --out.") \
                from None
        for _ in range(100):  # retried only while holders remove the file under us
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise InputError(f"cannot create the lock file {self.path}: {e.strerror or e}; choose another "
                                 "--out or fix the folder's permissions.") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise InputError(f"cannot lock {self.path}: {e.strerror or e}; the file system may not "
                                     "support locks.") from None
                raise InputError(self._in_use_message()) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file between our open and flock
                os.close(fd)
                continue
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": datetime.now().astimezone().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self._fd = fd
            return
        raise InputError(f"cannot lock {self.path}: it keeps being replaced; is another process looping on it?")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)  # while still locked: a waiter re-checks the path after locking
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock
        for folder in self._created:  # a run refused before writing anything leaves no folder behind
            try:
                folder.rmdir()
            except OSError:  # not empty (the run wrote), or taken by another process
                break
        self._created = []

    def _in_use_message(self) -> str:
        holder = read_holder(self.path)
        if holder:
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (started {holder.get('started', '?')})"
        else:  # the holder has not written its details yet
            who = "another process"
        return f"run folder {self.folder} is in use by {who}; wait for it or use another --out."


def read_holder(path: str | Path, tries: int = 5) -> dict | None:
    """The JSON details in a lock file, or None (missing, or not yet written)."""
    for i in range(tries):
        try:
            text = Path(path).read_text()
            if text.strip():
                return json.loads(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.02 * (i + 1))
    return None


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive lock on the file ``path`` that waits for its holder, unlike :class:`RunLock`
    (POSIX ``flock``; released when the process dies): for short shared writes such as a study's
    shared run or its ``study.json``."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
