"""``numba.njit`` with the on-disk cache only where numba can write it.

``@numba.njit(cache=True)`` raises at import ("cannot cache function ...: no locator
available") for a user who can write neither ``$NUMBA_CACHE_DIR``, the package's
``__pycache__`` nor the user cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``): a
read-only install run from a read-only home, a container. :func:`jit` then compiles
without the cache (each process compiles once, a few seconds for the LJ kernels) instead
of failing.
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numba


def dir_writable(path: str | Path) -> bool:
    """Whether ``path`` can be created (if missing) and a file written in it — numba's own
    test of a cache folder. A path under a regular file, or on a read-only file system, is not."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def cache_dirs(py_file: str | Path) -> list[Path]:
    """The folders numba would try, in its order, to cache the functions of ``py_file``."""
    from numba.core import config
    from numba.misc.appdirs import AppDirs

    dirs = [Path(config.CACHE_DIR)] if config.CACHE_DIR else []
    dirs.append(Path(py_file).parent / "__pycache__")
    dirs.append(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    return dirs


@lru_cache(maxsize=None)
def can_cache(py_file: str) -> bool:
    """Whether one of :func:`cache_dirs` is writable (checked once per file and process)."""
    return any(dir_writable(d) for d in cache_dirs(py_file))


def jit(**kw):
    """``numba.njit(cache=True, **kw)`` where a cache folder is writable, else ``numba.njit(**kw)``."""
    def decorate(fn):
        if can_cache(fn.__code__.co_filename):
            try:
                return numba.njit(cache=True, **kw)(fn)
            except RuntimeError:  # "cannot cache function": numba disagreed with can_cache
                pass
        return numba.njit(**kw)(fn)

    return decorate
