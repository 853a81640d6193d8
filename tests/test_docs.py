"""Every code block of README.md and docs/ runs and prints what the page says; the site builds.

Fences by language:

- ``python``: run top to bottom, one namespace per page; a block written as a doctest
  (``>>>`` prompts) must print what it shows.
- ``console``: each ``$ command`` runs in a shell (``catgrad`` is this checkout); the lines
  after it are its expected stdout (``...`` matches anything, whitespace is normalised). A
  command ending in ``# exits N`` must exit with status N, and its stderr counts as output.
- ``cat``: the block must be a well-typed ``.cat`` file (``catgrad check``).
- ``sh`` (installation commands), ``text`` and unlabelled fences (outputs, tables, layouts)
  are shown, not run.

Everything runs in a temporary directory holding a copy of ``examples/``, so pages may write
files (``runs/``, ``mlp.svg``) without touching the source tree.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
RUN = ("python", "console", "cat")
SHOWN = ("", "text", "sh")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(page: Path):
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        yield m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "catgrad"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m catgrad "$@"\n')
    shim.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
               COLUMNS="100")
    return tmp_path, env


def test_every_fence_is_labelled_as_run_or_shown():
    for page in PAGES:
        for lang, _, line in blocks(page):
            assert lang in RUN + SHOWN, f"{page.relative_to(ROOT)}:{line}: fence language {lang!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run_and_print_what_the_page_says(page, sandbox):
    tmp, env = sandbox
    where = lambda line: f"{page.relative_to(ROOT)}:{line}"  # noqa: E731
    namespace: dict = {"__name__": "__docs__"}
    checker = doctest.OutputChecker()
    ran = 0
    for lang, body, line in blocks(page):
        if lang == "python":
            ran += 1
            if re.search(r"^\s*>>> ", body, re.M):
                test = doctest.DocTestParser().get_doctest(body, namespace, where(line), str(page), line)
                runner = doctest.DocTestRunner(optionflags=FLAGS)
                out = []
                runner.run(test, out=out.append, clear_globs=False)
                assert runner.failures == 0, "".join(out)
                namespace.update(test.globs)
            else:
                exec(compile(body, where(line), "exec"), namespace)  # noqa: S102 - our own documentation
        elif lang == "console":
            for cmd, want in _commands(body):
                ran += 1
                status = re.search(r"#\s*exits (\d+)\s*$", cmd)  # an error shown on purpose: stderr counts
                r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
                assert r.returncode == (int(status.group(1)) if status else 0), f"{where(line)}: $ {cmd}\n{r.stderr}"
                got = r.stdout + r.stderr if status else r.stdout
                assert checker.check_output(want, got, FLAGS), (
                    f"{where(line)}: $ {cmd}\nthe page says:\n{want}\nit printed:\n{got}")
        elif lang == "cat":
            ran += 1
            src = tmp / f"block_{line}.cat"
            src.write_text(body)
            r = subprocess.run(["bash", "-c", f"catgrad check {src.name}"], capture_output=True, text=True, env=env,
                               cwd=tmp, timeout=120)
            assert r.returncode == 0, f"{where(line)}: this .cat block does not check:\n{r.stdout}{r.stderr}"
    if page.name in ("README.md", "index.md", "tutorial.md"):
        assert ran, f"{page.name} runs no code"


def _commands(body: str):
    """``(command, expected stdout)`` pairs; a trailing backslash continues a command, and so do
    lines starting with ``> `` (the shell's secondary prompt, as in a here-document)."""
    cmd, want, out = None, [], []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("$ "):
            if cmd is not None:
                out.append((cmd, "\n".join(want) + ("\n" if want else "")))
            cmd, want = ln[2:], []
            while i + 1 < len(lines):
                if cmd.endswith("\\"):
                    cmd = cmd[:-1] + " " + lines[i + 1].strip()
                elif lines[i + 1] == ">" or lines[i + 1].startswith("> "):  # the shell's PS2: a here-document
                    cmd += "\n" + lines[i + 1][2:]
                else:
                    break
                i += 1
        elif cmd is not None:
            want.append(ln)
        i += 1
    if cmd is not None:
        out.append((cmd, "\n".join(want) + ("\n" if want else "")))
    return out


def test_documentation_site_builds_in_strict_mode(tmp_path):
    """``mkdocs build --strict`` (the docs extra): every page, link and API entry resolves."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                        str(ROOT / "docs" / "mkdocs" / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for page in ("index.html", "tutorial/index.html", "api/index.html", "mathematics/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    assert "load_checkpoint" in (tmp_path / "site" / "api" / "index.html").read_text()
