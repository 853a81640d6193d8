"""Writing files so that a failure never leaves a partial one behind."""

from __future__ import annotations

import os
import tempfile

from .errors import CatgradError


def _mode_for(path: str) -> int:
    """The mode ``path`` has now, or the one a plain ``open(path, "w")`` would give it."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path, write, what: str = "the file", error: type = CatgradError) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync it, then
    rename it onto ``path`` (:func:`os.replace` is atomic). On any failure the
    temporary file is removed and ``path`` keeps its old contents; OS errors become
    ``error`` naming ``what`` was being written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"{path}: cannot write {what}, directory {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise error(f"{path}: cannot write {what} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; give the file its ordinary mode
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise error(f"{path}: cannot write {what} ({e.strerror or e})") from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems do not allow fsync on a directory
        pass
