"""Ten-class digits with circuits trained by RDA: the accuracy-against-gates curve of
docs/results.md, next to small float MLPs.

The model (written by :func:`model_source` as a ``.cat`` file): H look-up tables of 6
address bits, each with one output bit per class (``c.lut6[10]``), i.e. H one-vs-rest
heads; the circuit's class is the one with the most head votes (the vote readout, built as
gates). Each table reads 6 bits of the thermometer:3 code of the image (2 bits per pixel),
drawn at random (seeded) among the bits that are neither almost always 0 nor almost always
1 on the training rows. Training: ``catgrad train --combine balanced`` with the whole
training set as one batch (one step: every table entry is set by the balanced vote of the
examples that reach it).

Run: python examples/rda_digits10.py [--seeds 5] [--plot docs/images/rda_digits10.png]
     python examples/rda_digits10.py --classes 0,1 --heads 15 --seeds 10   (digits 0 versus 1)
     python examples/rda_digits10.py --write 32      (examples/digits10.cat: seed 0, 32 heads)
     python examples/rda_digits10.py --check /tmp/digits10   (its Verilog/AIGER/BLIF checked by the tools)
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from catgrad.cli import main as catgrad

HERE = Path(__file__).resolve().parent
ADDRESS = 6


def candidate_bits(seed: int, classes=None, levels: int = 3) -> np.ndarray:
    """Bits of the thermometer code that vary on the training rows of ``seed``'s split (of the
    rows of ``classes`` only, e.g. "0,1", as ``catgrad train --classes`` splits them)."""
    from catgrad.data import load
    from catgrad.train.circuit import select_classes
    from catgrad.train.encode import parse

    ds = load("digits")
    train, _ = (select_classes(ds, classes) if classes else ds).split(test_fraction=0.2, seed=seed)
    enc = parse(f"thermometer:{levels}", "global").fit(train.x)
    p = enc(train.x).mean(axis=0)
    return np.flatnonzero((p > 0.05) & (p < 0.95))


def model_source(heads: int, seed: int, name: str = "digits10", classes=None) -> str:
    """A ``.cat`` model: ``heads`` LUT-6 tables with one output per class on random candidate bits."""
    rng = np.random.default_rng([seed, heads])
    cand = candidate_bits(seed, classes)
    nc = len(classes.split(",")) if classes else 10
    lines = ["# Ten-class digits: one-vs-rest heads of look-up tables (written by examples/rda_digits10.py).",
             "import circuits as c", "",
             "## Bit i of the 128-bit code, as a one-entry vector.",
             "def b[i](x : bit[128]) -> bit[1] = slice(x, axis=0, start=i, stop=i + 1)", "",
             f"## {heads} tables of {ADDRESS} address bits, each with one vote per class: output bit {nc} h + c.",
             f"def {name}(x : bit[128]) -> bit[{nc * heads}] = concat("]
    tables = []
    for _ in range(heads):
        bits = sorted(rng.choice(cand, ADDRESS, replace=False).tolist())
        tables.append(f"  c.lut6[{nc}](concat(" + ", ".join(f"b[{i}](x)" for i in bits) + ", axis=0))")
    lines.append(",\n".join(tables) + ", axis=0)")
    return "\n".join(lines) + "\n"


def train(path, name, seed, extra=()) -> dict:
    """``catgrad train`` with the balanced vote over the whole training set (one step)."""
    out = io.StringIO()
    args = ["train", str(path), "--model", name, "--data", "digits", "--encode", "thermometer:3", "--encode-scale",
            "global", "--batch", "100000", "--combine", "balanced", "--epochs", "1", "--seed", str(seed), "--json",
            "--quiet", *extra]
    with redirect_stdout(out):
        rc = catgrad(args)
    assert rc == 0
    return json.loads(out.getvalue().splitlines()[-1])


def mlp(hidden: int, seed: int) -> dict:
    src = f"import nn\ndef mlp = nn.dense[64, {hidden}] >> relu >> nn.dense[{hidden}, 10]\n"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "mlp.cat"
        p.write_text(src)
        out = io.StringIO()
        with redirect_stdout(out):
            rc = catgrad(["train", str(p), "--model", "mlp", "--data", "digits", "--optimizer", "adam(lr=1e-2)",
                          "--epochs", "30", "--batch", "32", "--seed", str(seed), "--json", "--quiet"])
        assert rc == 0
        return json.loads(out.getvalue().splitlines()[-1])


def check_files(out_dir: str) -> None:
    """Train ``examples/digits10.cat`` (seed 0), write its circuit as Verilog, AIGER and BLIF with
    ``catgrad compile``, and check them with the real tools: ABC's cec (BLIF = AIGER = the Verilog
    read by yosys), yosys ``stat`` against our counts, Icarus simulation of the Verilog on the
    test images against the bit-parallel evaluator and against ``catgrad evaluate``."""
    from catgrad.circuit import Evaluator, tools
    from catgrad.data import load
    from catgrad.train.checkpoint import load as load_ck
    from catgrad.train.circuit import netlist_of
    from catgrad.train.encode import Encoder

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    cat, ck = HERE / "digits10.cat", d / "digits10.ck"
    res = train(cat, "digits10", 0, ["--checkpoint", str(ck), "--force"])
    for target, suffix in (("verilog", "v"), ("aiger", "aig"), ("blif", "blif")):
        assert catgrad(["compile", str(cat), "--model", "digits10", "--checkpoint", str(ck), "--target", target,
                        "-o", str(d / f"digits10.{suffix}"), "--force"]) == 0
    nl, _ = netlist_of(str(cat), "digits10", str(ck))
    rep = nl.report()
    _, test = load("digits").split(test_fraction=0.2, seed=0)
    bits = Encoder.from_state(load_ck(ck)[1]["encoder"])(test.x)
    ours = Evaluator(nl)(bits)
    cls = ours.astype(int) @ (1 << np.arange(ours.shape[1]))
    print(f"digits10 (seed 0): test accuracy {res['test_accuracy']:.4f}, circuit {np.mean(cls == test.y):.4f}; "
          f"{rep['two_input_gates']} two-input gates, depth {rep['depth']}, {rep['aig_nodes']} AIG nodes")
    tools.yosys_blif(str(d / "digits10.v"), "digits10", str(d / "digits10_yosys.blif"))
    print("ABC cec BLIF vs AIGER:", tools.cec(str(d / "digits10.blif"), str(d / "digits10.aig")))
    print("ABC cec Verilog (via yosys) vs AIGER:", tools.cec(str(d / "digits10_yosys.blif"), str(d / "digits10.aig")))
    stat = tools.yosys_stat(str(d / "digits10.v"), "digits10")
    print("yosys stat:", stat, "ours:", {k: v for k, v in rep["by_type"].items() if v})
    sim = tools.simulate(nl, bits, "digits10")
    print("Icarus simulation equals the evaluator on the", len(bits), "test images:", bool(np.array_equal(sim, ours)))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--heads", default="2,4,8,12,16,24,32")
    ap.add_argument("--plot", default=None)
    ap.add_argument("--classes", default=None, help="e.g. 0,1: train on these classes only (no MLP rows)")
    ap.add_argument("--write", default=None, help="write the seed-0 model with this many heads to examples/digits10.cat")
    ap.add_argument("--check", default=None, metavar="DIR",
                    help="train examples/digits10.cat, write its netlists to DIR and check them with ABC, yosys, Icarus")
    a = ap.parse_args(argv)
    if a.check:
        return check_files(a.check)
    if a.write:
        (HERE / "digits10.cat").write_text(model_source(int(a.write), 0))
        return
    rows = []
    print("| heads | test accuracy, seeds | mean | min | two-input gates (mean) | depth |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for h in [int(v) for v in a.heads.split(",")]:
            res = []
            for s in range(a.seeds):
                p = Path(d) / f"d{h}_{s}.cat"
                p.write_text(model_source(h, s, classes=a.classes))
                res.append(train(p, "digits10", s, ["--classes", a.classes] if a.classes else []))
            acc = [r["test_accuracy"] for r in res]
            g = float(np.mean([r["two_input_gates"] for r in res]))
            rows.append((h, acc, g))
            print(f"| {h} | {', '.join(f'{v:.3f}' for v in acc)} | {np.mean(acc):.3f} | {min(acc):.3f} | {g:.0f} | "
                  f"{max(r['depth'] for r in res)} |", flush=True)
    if a.classes:
        return
    mlps = []
    print("\n| float MLP 64-h-10 (relu, Adam 1e-2, 30 epochs) | test accuracy, seeds | mean | weights |")
    print("|---|---|---|---|")
    for hidden in (4, 8, 16, 32):
        acc = [mlp(hidden, s)["test_accuracy"] for s in range(a.seeds)]
        mlps.append((hidden, float(np.mean(acc))))
        print(f"| h = {hidden} | {', '.join(f'{v:.3f}' for v in acc)} | {np.mean(acc):.3f} | {64 * hidden + hidden * 10} |",
              flush=True)
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        gates = [g for _, _, g in rows]
        ax.errorbar(gates, [np.mean(v) for _, v, _ in rows],
                    yerr=[[np.mean(v) - min(v) for _, v, _ in rows], [max(v) - np.mean(v) for _, v, _ in rows]],
                    marker="o", capsize=3, label="RDA circuit (mean, min-max over seeds)")
        for (h, _, g), acc in zip(rows, [np.mean(v) for _, v, _ in rows]):
            ax.annotate(f"H={h}", (g, acc), textcoords="offset points", xytext=(4, -12), fontsize=8)
        for k, (hidden, acc) in enumerate(mlps):  # labels alternate sides so close lines stay readable
            ax.axhline(acc, ls=":", color="gray")
            ax.text(gates[0] if k % 2 == 0 else gates[-1], acc, f"float MLP 64-{hidden}-10", fontsize=8, va="bottom",
                    ha="left" if k % 2 == 0 else "right", color="gray")
        ax.axhline(0.9, color="red", lw=0.8)
        ax.axvline(10000, color="red", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("two-input gates of the trained circuit (with the vote readout)")
        ax.set_ylabel("test accuracy (10 classes)")
        ax.set_title("scikit-learn digits: RDA-trained LUT circuits")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)
        print(f"wrote {a.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
