"""Atomic writes: all or nothing, with the file mode a plain write would give."""

import os

import pytest

from catgrad.errors import CatgradError
from catgrad.files import atomic_write


def test_new_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", lambda fh: fh.write(b"hello"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_bytes() == b"hello"
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o644


def test_replacing_keeps_the_old_mode(tmp_path):
    p = tmp_path / "b.txt"
    p.write_bytes(b"old")
    os.chmod(p, 0o640)
    atomic_write(p, lambda fh: fh.write(b"new"), force=True)
    assert p.read_bytes() == b"new" and os.stat(p).st_mode & 0o777 == 0o640


def test_failure_keeps_old_contents_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "c.txt"
    p.write_bytes(b"old")

    def broken(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(p, broken, force=True)
    assert p.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["c.txt"]


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CatgradError, match="cannot write the drawing, directory .* does not exist"):
        atomic_write(tmp_path / "nope" / "d.svg", lambda fh: None, what="the drawing")
