"""Atomic writes: all or nothing, with the file mode a plain write would give, and no
temporary file left when SIGINT or SIGTERM arrives during the write."""

import os
import signal
import tempfile
import threading

import pytest

from catgrad.errors import CatgradError
from catgrad.files import atomic_write, signals_held


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


# -- interrupts during a write ---------------------------------------------------------------

main_thread_only = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                      reason="Python signal handlers run in the main thread only")


class Stop(BaseException):
    pass


def _raise_stop(signum, frame):
    raise Stop(signum)


@pytest.fixture
def sigterm_raises():
    old = signal.signal(signal.SIGTERM, _raise_stop)
    yield
    signal.signal(signal.SIGTERM, old)


@main_thread_only
def test_sigterm_right_after_the_temporary_is_created_leaves_nothing_behind(tmp_path, monkeypatch, sigterm_raises):
    """The race CI hit: the signal lands between mkstemp and the ``try`` that cleans up."""
    real = tempfile.mkstemp

    def mkstemp_then_signal(*a, **k):
        made = real(*a, **k)
        os.kill(os.getpid(), signal.SIGTERM)
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_signal)
    p = tmp_path / "ck.bin"
    with pytest.raises(Stop):
        atomic_write(p, lambda fh: fh.write(b"whole"))
    assert sorted(os.listdir(tmp_path)) == ["ck.bin"] and p.read_bytes() == b"whole"
    assert signal.getsignal(signal.SIGTERM) is _raise_stop


@main_thread_only
def test_sigint_mid_write_finishes_the_write_then_raises_keyboard_interrupt(tmp_path):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def slow(fh):
        fh.write(b"first half ")
        os.kill(os.getpid(), signal.SIGINT)
        fh.write(b"second half")

    p = tmp_path / "x.bin"
    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, slow)
    assert p.read_bytes() == b"first half second half" and os.listdir(tmp_path) == ["x.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@main_thread_only
def test_a_failed_write_still_cleans_up_and_delivers_the_held_signal(tmp_path, sigterm_raises):
    p = tmp_path / "y.bin"
    p.write_bytes(b"old")

    def broken(fh):
        os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("disk on fire")

    with pytest.raises(Stop) as info:
        atomic_write(p, broken, force=True)
    assert isinstance(info.value.__context__, RuntimeError)
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["y.bin"]


@main_thread_only
def test_held_signals_nest_and_only_the_outermost_block_delivers(sigterm_raises):
    order = []
    with pytest.raises(Stop):
        with signals_held():
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                order.append("inner body ran on")
            order.append("outer body ran on")
    assert order == ["inner body ran on", "outer body ran on"]
    assert signal.getsignal(signal.SIGTERM) is _raise_stop


def test_held_signals_outside_the_main_thread_change_nothing():
    seen = []

    def run():
        before = signal.getsignal(signal.SIGTERM)
        with signals_held():
            seen.append(signal.getsignal(signal.SIGTERM) is before)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [True]
