"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

Used by ``gensample bench`` (merged JSON), checkpoints, plots and the CLI's output
directory, so that a crash or an error never leaves a half-written file behind.
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["atomic_write", "public_mode"]


def public_mode(path: str) -> None:
    """mkstemp files are 0600; give the file the mode a plain open() would (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write(path, writer, prefix: str | None = None, suffix: str = ".tmp") -> str:
    """``writer(tmp_path)`` writes the content to a temporary file in ``path``'s directory
    (created if missing; name ``prefix...suffix``, default ``.<basename>.<random>.tmp``);
    it then gets the usual mode and replaces ``path``. On any error the temporary file is
    removed and the error re-raised. Returns ``path``."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if prefix is None:
        prefix = "." + os.path.basename(path) + "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=d)
    os.close(fd)
    try:
        writer(tmp)
        public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
