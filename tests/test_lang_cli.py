"""`catgrad check` and `catgrad show` end to end (subprocess), and a real
non-editable install that loads the grammar and the prelude from outside the repo."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "catgrad", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_check_is_silent_on_well_typed_files():
    for f in ["examples/iris.cat", "examples/digits.cat", "examples/circuits.cat", "lang/prelude/nn.cat"]:
        r = cli("check", f)
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (f, r.stderr)


def test_check_reports_every_error_and_exits_1():
    r = cli("check", "tests/golden/several_errors.cat")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count(": error: ") == 4
    assert r.stderr.startswith("tests/golden/several_errors.cat:1:21: error: unknown name 'sinn'")
    assert r.stderr.rstrip().endswith("4 errors")


def test_check_on_missing_or_bad_files(tmp_path):
    r = cli("check", tmp_path / "missing.cat")
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = cli("check", tmp_path)
    assert r.returncode == 1 and "directory" in r.stderr
    (tmp_path / "b.cat").write_bytes(b"\x80\x81")
    r = cli("check", tmp_path / "b.cat")
    assert r.returncode == 1 and "UTF-8" in r.stderr


def test_show_lists_definitions_with_types_and_params():
    r = cli("show", "examples/iris.cat")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["mlp", ":", "f32[B,", "4]", "->", "f32[B,", "3]", "[params]"]
    assert any(line.startswith("loss") and "(f32[B, 3], f32[B, 4]) -> f32[]" in line for line in lines)
    r = cli("show", "lang/prelude/circuits.cat")
    assert "half_adder : (bit[N], bit[N]) -> (bit[N], bit[N])   [no params]" in r.stdout


def test_show_name_prints_type_params_and_diagram():
    import catgrad as cg

    r = cli("show", "examples/iris.cat", "mlp")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "## The classifier" in out and "mlp : f32[B, 4] -> f32[B, 3]" in out
    assert "  dense.W : f32[4, 16] ~ glorot" in out
    assert str(cg.load(ROOT / "examples/iris.cat")["mlp"].body) in out
    r = cli("show", "lang/prelude/nn.cat", "dense[4, 2]")
    assert r.returncode == 0 and "f32[B, 4] -> f32[B, 2]" in r.stdout
    r = cli("show", "examples/iris.cat", "nope")
    assert r.returncode == 1 and "no definition 'nope'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_non_editable_install_loads_grammar_and_prelude(tmp_path):
    """A wheel built from a copy of the sources (the checkout stays untouched: no build/, no
    .egg-info) and installed into a fresh venv, offline. The venv sees this interpreter's packages
    (numpy, setuptools, ...) through a .pth file, so no download is needed, whether the tests
    run system-wide or inside a virtualenv that hides the system's packages."""
    import shutil
    import site
    import sysconfig

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("catgrad", "lang"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    inner = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                                       sysconfig.get_paths()["platlib"]]) if os.path.isdir(p)]
    # plain directory lines: their own .pth files (the editable install of this checkout) are not run
    Path(inner, "outer_packages.pth").write_text("\n".join(outer) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    # the wheel is built by this interpreter's setuptools, offline; the venv's pip installs it
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "wheels"), str(src)], capture_output=True, text=True, env=env, timeout=600,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("catgrad-*.whl")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (tmp_path / "m.cat").write_text("import nn\nimport circuits\ndef f = nn.dense[3, 2] >> relu\n")
    code = (
        "import catgrad as cg, pathlib, sys\n"
        "assert 'site-packages' in cg.__file__, cg.__file__\n"
        "m = cg.load('m.cat')\n"
        "print(m['f'].names)\n"
        "from catgrad.frontend.resources import lang_root\n"
        "print(lang_root())\n"
    )
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "('dense.W', 'dense.b')" in r.stdout
    assert str(ROOT) not in r.stdout.splitlines()[-1]  # the prelude came from the installed package
