"""``catgrad compile``: the whole training step printed as one program."""

import re
import subprocess
import sys
from pathlib import Path

import catgrad as cg

IRIS = Path(__file__).resolve().parent.parent / "examples" / "iris.cat"


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "catgrad", "compile", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_program_is_the_optimized_step():
    r = _cli(IRIS, "--model", "mlp", "--optimizer", "adam(lr=1e-2)", "--loss", "softmax_cross_entropy")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("program(") and lines[-1].startswith("  return ")
    # forward (einsum, tanh), the loss (logsumexp) and adam's update (sqrt) are all in one program
    for op in ("einsum(", "tanh(", "logsumexp(", "sqrt("):
        assert any(op in line for line in lines), op
    # outputs: 4 params + adam state + loss + prediction, as the step diagram says
    step = cg.compile(cg.load(IRIS)["mlp"], loss="softmax_cross_entropy", optimizer="adam(lr=1e-2)")
    assert len(lines[-1].split(",")) == len(step.diagram.cod)
    # readable: inputs named after parameters, optimizer state and data; values after their op;
    # a small constant shown by its value
    names = [re.sub(r"\W", "_", n) for n in [f"p_{n}" for n in step.param_names] + [f"s_{k}" for k in step.opt_keys]]
    assert lines[0] == "program(" + ", ".join(f"{n}: {t}" for n, t in zip(names + ["x", "y"], step.diagram.dom)) + "):"
    assert any(re.fullmatch(r"  c_\w+ = const -?[0-9.e-]+ : f32\[\]", line) for line in lines)
    assert any(re.fullmatch(r"  tanh_\d+ = tanh\(add_\d+\)", line) for line in lines)


def test_python_code_runs_the_step_for_the_batch_size(tmp_path):
    out = tmp_path / "step.py"
    r = _cli(IRIS, "--model", "mlp", "--loss", "cross_entropy", "--emit", "python", "--batch", "5", "-o", out)
    assert r.returncode == 0, r.stderr
    src = out.read_text()
    assert src.startswith("def run(") and "return" in src
    step = cg.compile(cg.load(IRIS)["mlp"], loss="cross_entropy")
    # inputs are named after the parameters, the optimizer state, the data and the labels
    names = [re.sub(r"\W", "_", n) for n in [f"p_{n}" for n in step.param_names] + [f"s_{k}" for k in step.opt_keys]]
    names += ["x", "y"]
    assert src.splitlines()[0] == f"def run({', '.join(names)}):"
    # values are named after the ops that made them, numpy functions are called by name
    assert "np.tanh(" in src and "tanh_" in src



def test_dot_and_errors(tmp_path):
    r = _cli(IRIS, "--model", "mlp", "--loss", "mse", "--emit", "dot")
    assert r.returncode == 0 and r.stdout.startswith('digraph "step of mlp"')
    r = _cli(IRIS, "--model", "mlp", "--emit", "dot")  # a float output: which loss? never a silent mse
    assert r.returncode == 1 and "which loss?" in r.stderr and "--loss cross_entropy" in r.stderr and r.stdout == ""
    r = _cli(IRIS, "--model", "mpl", "-o", tmp_path / "x.txt")
    assert r.returncode == 1 and "did you mean 'mlp'" in r.stderr and "Traceback" not in r.stderr
    r = _cli(IRIS, "--model", "mlp", "--batch", "0", "--emit", "python")
    assert r.returncode == 1 and "--batch must be >= 1" in r.stderr
    r = _cli(IRIS, "--model", "mlp", "--optimizer", "adamm()")
    assert r.returncode == 1 and "did you mean 'adam'" in r.stderr
    assert list(tmp_path.iterdir()) == [] and r.stdout == ""


def test_internal_errors_print_one_line_not_a_traceback(monkeypatch, capsys):
    import pytest

    import catgrad.train.commands as commands
    from catgrad.cli import main

    def broken(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(commands, "run_compile", broken)
    monkeypatch.delenv("CATGRAD_DEBUG", raising=False)
    assert main(["compile", str(IRIS), "--model", "mlp"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err and "CATGRAD_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("CATGRAD_DEBUG", "1")
    with pytest.raises(RuntimeError, match="kaboom"):
        main(["compile", str(IRIS), "--model", "mlp"])
