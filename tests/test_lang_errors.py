"""Golden tests for error messages: tests/golden/NAME.cat must produce exactly
tests/golden/NAME.err (set CATGRAD_UPDATE_GOLDEN=1 to rewrite the .err files,
then read the diff). Plus properties of diagnostics that hold for every program."""

import os
from pathlib import Path

import pytest

import catgrad as cg
from catgrad.frontend import check_source, render_all
from catgrad.frontend.loader import check_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.cat"))


def _render(stem: str) -> str:
    rel = f"tests/golden/{stem}.cat"
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in messages are relative to the repository root
    try:
        session, _ = check_text((ROOT / rel).read_text(), rel)
    finally:
        os.chdir(cwd)
    return render_all(session.diagnostics, session.sources) + "\n"


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 15


@pytest.mark.parametrize("stem", CASES)
def test_golden(stem):
    got = _render(stem)
    exp = GOLDEN / f"{stem}.err"
    if os.environ.get("CATGRAD_UPDATE_GOLDEN"):
        exp.write_text(got)
    assert exp.exists(), f"no golden file for {stem}; run with CATGRAD_UPDATE_GOLDEN=1"
    assert got == exp.read_text()
    assert got.startswith(f"tests/golden/{stem}.cat:") or got.startswith("tests/golden/import_cycle")


def test_every_error_has_location_source_line_and_caret():
    for stem in CASES:
        lines = _render(stem).splitlines()
        for i, line in enumerate(lines):
            if ": error: " in line and not line.startswith("error:"):
                path, ln, col = line.split(":")[:3]
                assert ln.isdigit() and col.isdigit(), line
                assert lines[i + 1].lstrip().startswith(ln + " |")
                caret = lines[i + 2]
                assert caret.rstrip().endswith("^")
                # the caret sits under column col of the source line
                src_start = lines[i + 1].index("| ") + 2
                assert caret.index("^") - src_start == int(col) - 1


def test_several_independent_errors_in_one_run():
    diags, _ = check_source((GOLDEN / "several_errors.cat").read_text())
    assert len(diags) == 4
    assert [d.span.line for d in diags] == [1, 2, 3, 4]


def test_errors_inside_one_definition_are_all_reported():
    src = "def f(x : f32[3]) {\n  let a = foo(x)\n  let b = x + bar\n  let c = a + b\n  c\n}\n"
    diags, _ = check_source(src)
    # foo and bar are unknown; c's error is a consequence and is not reported
    assert [d.message.split(" (")[0] for d in diags] == ["unknown name 'foo'", "unknown name 'bar'"]
    src = "def f(x : f32[3], y : f32[4]) {\n  let a = x + y\n  let b = x * y\n  let c = a + b\n  x\n}\n"
    diags, _ = check_source(src)
    assert [d.span.line for d in diags] == [2, 3]


def test_shape_mismatch_shows_both_types_and_their_origins():
    diags, _ = check_source((GOLDEN / "shape_mismatch.cat").read_text())
    (d,) = diags
    assert "f32[B, 3]" in d.message and "f32[B, 4]" in d.message
    assert {n.span.line for n in d.notes} == {1} and len(d.notes) == 2
    assert {n.span.col for n in d.notes} == {7, 22}


def test_loads_raises_a_catgrad_error_with_every_diagnostic():
    with pytest.raises(cg.CatgradError) as e:
        cg.loads((GOLDEN / "several_errors.cat").read_text(), name="several.cat")
    text = str(e.value)
    assert text.count(": error: ") == 4 and "several.cat:1:21: error: unknown name 'sinn'" in text


def test_load_of_missing_file_is_a_catgrad_error(tmp_path):
    with pytest.raises(cg.CatgradError, match="no such file"):
        cg.load(tmp_path / "nope.cat")
    (tmp_path / "bin.cat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(cg.CatgradError, match="UTF-8"):
        cg.load(tmp_path / "bin.cat")
