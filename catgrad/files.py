"""Files: reading only what is safe to read, writing so that nothing the user had is lost.

Reading (:func:`check_readable`, :func:`read_npz`): data, checkpoints and sources must be
*regular* files -- a FIFO would block forever and ``/dev/zero`` never ends -- and an
``.npz`` archive is checked member by member from its ``.npy`` headers (dtype and shape,
hence the bytes it will take) *before* anything is decompressed.

Writing (:func:`check_output`, :func:`atomic_write`): an output path may be replaced only
when that loses nothing:

* it does not exist, or is an empty regular file;
* it is a regular file that catgrad wrote, recognised by its content (a checkpoint, a
  compiled program, a drawing of the same kind), or the user passed ``--force``;
* never a directory, FIFO, socket or device, and never one of the run's own inputs (the
  model's source, the dataset, the checkpoint being resumed), not even with ``--force``;
* a symbolic link only with ``--force`` (the link itself is replaced, not its target).

Writes are atomic: a temporary file next to the target, fsync'ed and renamed over it.
SIGINT and SIGTERM arriving during a write are held until it has finished (or failed and
cleaned up), so an interrupted run never leaves a temporary file behind; one left by a
writer killed outright (named ``.<name>.<random>.tmp``) is removed by the next write to the
same path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import stat
import tempfile
import threading
import zipfile

from .errors import CatgradError

def memory_limit() -> int:
    """The most bytes one input may make us allocate (the arrays of an .npz, a CSV table):
    half the physical memory, or ``CATGRAD_MAX_BYTES``; a hostile header fails before
    anything is decompressed."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    env = os.environ.get("CATGRAD_MAX_BYTES")
    if env:
        try:
            return int(env)
        except ValueError:
            raise CatgradError(f"CATGRAD_MAX_BYTES must be a whole number of bytes, got {env!r}") from None
    return total // 2


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_readable(path, what: str = "file", error: type = CatgradError) -> str:
    """``path`` as a str, after checking it names an existing regular file (symbolic links
    followed). Anything else is ``error`` naming what it is instead."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as e:  # a symlink loop, a too-long name, no permission ...
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is {_kind(st.st_mode)}, not a regular {what}")
    return path


def _same_file(a: str, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError, TypeError):
        return False


def check_output(path, what: str = "the file", *, ours=None, force: bool = False, protect=(),
                 error: type = CatgradError) -> str:
    """Check, before any work is done, that writing ``what`` to ``path`` loses nothing
    (the rules are in the module docstring). ``ours(head)`` says whether the first bytes
    of an existing file show catgrad wrote it; by default the file's suffix decides (see
    :func:`looks_written_by_catgrad`). ``protect`` lists the run's inputs."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"{path}: cannot write {what}, directory {folder} does not exist")
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as e:
        raise error(f"{path}: cannot write {what} ({e.strerror or e})") from None
    for p in protect:
        if p is not None and _same_file(path, p):
            raise error(f"{path}: refusing to write {what} over {p}, an input of this run")
    if stat.S_ISLNK(lst.st_mode):
        if force:
            return path
        raise error(f"{path}: is a symbolic link; refusing to replace it with {what} (use --force to replace the link)")
    if not stat.S_ISREG(lst.st_mode):
        raise error(f"{path}: is {_kind(lst.st_mode)}; refusing to write {what} there")
    if force or lst.st_size == 0:
        return path
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise error(f"{path}: exists and cannot be read to see what it is ({e.strerror}); use --force to replace it") from None
    recognised = ours(head, path) if ours is not None else looks_written_by_catgrad(head, path)
    if not recognised:
        raise error(f"{path}: exists and was not written by catgrad; refusing to replace it with {what} "
                    "(choose another path, or use --force)")
    return path


#: first bytes of the files catgrad writes, by suffix (drawings: what Graphviz writes).
SIGNATURES = {
    ".dot": (b"digraph", b"//", b"graph"), ".gv": (b"digraph", b"//", b"graph"),
    ".svg": (b"<?xml", b"<svg", b"<!--"), ".png": (b"\x89PNG\r\n\x1a\n",), ".pdf": (b"%PDF",),
}


def looks_written_by_catgrad(head: bytes, path: str) -> bool:
    """Whether a file starting with ``head`` is an output of the kind catgrad writes at
    ``path``: a checkpoint (an ``.npz`` holding ``__meta__``), a drawing of the same format,
    an exported program (``.pt2``, a zip archive) or weights (``.safetensors``)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".pt2":  # a torch.export archive is a zip file
        return head.startswith(b"PK")
    if suffix == ".safetensors":  # 8-byte header length, then the JSON header
        return len(head) > 8 and head[8:9] == b"{"
    if head.startswith(b"PK"):
        return is_checkpoint_file(path)
    sigs = SIGNATURES.get(suffix, ())
    return any(head.lstrip().startswith(s) for s in sigs)


def is_checkpoint_file(path) -> bool:
    """A zip archive with a ``__meta__.npy`` member: what :mod:`catgrad.train.checkpoint` writes."""
    try:
        with zipfile.ZipFile(path) as z:
            return "__meta__.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _mode_for(path: str) -> int:
    """The mode ``path`` has now, or the one a plain ``open(path, "w")`` would give it."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _tmp_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_stale_temporaries(path) -> list:
    """Remove ``.<name>.*.tmp`` files next to ``path``: what a killed atomic write of
    ``path`` left behind. Returns the removed paths."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(folder), glob.escape(_tmp_prefix(path)) + "*.tmp")):
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):
                os.unlink(tmp)
                removed.append(tmp)
        except OSError:
            pass
    return removed


def atomic_write(path, write, what: str = "the file", error: type = CatgradError, *, ours=None,
                 force: bool = False, protect=()) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync it, then
    rename it onto ``path`` (:func:`os.replace` is atomic). First :func:`check_output`
    (with ``ours``, ``force``, ``protect``) refuses a path whose contents would be lost.
    On any failure the temporary file is removed and ``path`` keeps its old contents;
    OS errors become ``error`` naming ``what`` was being written."""
    path = check_output(path, what, ours=ours, force=force, protect=protect, error=error)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    with signals_held():
        _write_and_rename(path, folder, write, what, error)
        try:  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # some filesystems do not allow fsync on a directory
            pass


def _write_and_rename(path, folder, write, what, error) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as e:
        raise error(f"{path}: cannot write {what} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path) if not os.path.islink(path) else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise error(f"{path}: cannot write {what} ({e.strerror or e})") from None
        raise


_HELD = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver the first one
    that arrived to the handler that was installed before. A Python handler raises between
    any two bytecodes, so without this an interrupt landing between creating a temporary
    file and the ``try`` that removes it would leave the file behind. Only the main thread
    runs Python signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending, saved = [], {}

    def hold(signum, frame):
        pending.append(signum)

    try:
        for s in _HELD:
            saved[s] = signal.getsignal(s)  # saved before replaced: an interrupt here restores cleanly
            signal.signal(s, hold)
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# -- .npz archives, checked before they are decompressed --------------------------------------


def npz_headers(path, error: type = CatgradError) -> dict:
    """``{name: (dtype, shape)}`` of every member of the ``.npz`` at ``path``, read from the
    ``.npy`` headers alone. A member that is not an ``.npy`` array, an object (pickled)
    array, or a total size above :func:`memory_limit` is ``error``."""
    import numpy as np

    path = check_readable(path, "file", error)
    if not zipfile.is_zipfile(path):  # else numpy would try to read it as a pickle
        raise error(f"{path}: not an .npz archive")
    out, total, limit = {}, 0, memory_limit()
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if not name.endswith(".npy") or info.is_dir():
                    raise error(f"{path}: member {name!r} is not a .npy array; an .npz holds only .npy arrays")
                with z.open(info) as fh:
                    try:
                        version = np.lib.format.read_magic(fh)
                        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                  else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = reader(fh, max_header_size=10000)
                    except (ValueError, SyntaxError, EOFError) as e:
                        raise error(f"{path}: member {name!r} has no valid .npy header ({e})") from None
                if dtype.hasobject:
                    raise error(f"{path}: refusing to load member {name!r}: it holds Python objects (dtype {dtype}), "
                                "which cannot be read without unpickling; store plain numeric arrays")
                if any(int(s) < 0 for s in shape):
                    raise error(f"{path}: member {name!r} claims a negative shape {shape}")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                total += nbytes
                if total > limit:
                    raise error(f"{path}: member {name!r} claims shape {tuple(shape)} of {dtype} "
                                f"({human_bytes(nbytes)}); the archive would need more than the limit of "
                                f"{human_bytes(limit)} (half the memory; set CATGRAD_MAX_BYTES to change it)")
                out[name[:-4]] = (dtype, tuple(int(s) for s in shape))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise error(f"{path}: unreadable .npz archive ({e})") from None
    return out


def read_npz(path, error: type = CatgradError, keys=None) -> dict:
    """The arrays of an ``.npz`` (only ``keys`` when given), never unpickling, with sizes
    checked from the headers first (:func:`npz_headers`)."""
    import numpy as np

    heads = npz_headers(path, error)
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in heads if keys is None else [k for k in keys if k in heads]:
                a = z[k]
                if a.dtype != heads[k][0] or a.shape != heads[k][1]:  # pragma: no cover - defence
                    raise error(f"{path}: member {k!r} does not match its header")
                out[k] = a
    except CatgradError:
        raise
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
        raise error(f"{path}: unreadable .npz archive ({e})") from None
    return out


__all__ = ["atomic_write", "check_output", "check_readable", "human_bytes", "is_checkpoint_file", "signals_held",
           "looks_written_by_catgrad", "memory_limit", "npz_headers", "read_npz", "remove_stale_temporaries"]
