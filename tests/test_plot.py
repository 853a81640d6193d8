"""Training curves: `catgrad train --plot` draws loss and accuracy per epoch with matplotlib."""

import struct

import pytest

from catgrad.cli import main
from catgrad.errors import CatgradError
from catgrad.plot import training_curves
from test_predict import IRIS


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_train_plot_writes_the_curves(tmp_path, capsys):
    out = tmp_path / "curves.png"
    rc = main(["train", IRIS, "--model", "mlp", "--data", "iris", "--optimizer", "adam(lr=1e-2)", "--epochs", "5",
               "--val-fraction", "0.2", "--plot", str(out), "--quiet", "--json"])
    assert rc == 0
    assert _png_size(out) == (900, 360)  # two panels: loss and accuracy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_regression_history_has_one_panel_and_bad_paths_are_refused_early(tmp_path, capsys):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e} for e in range(1, 6)]
    training_curves(history, tmp_path / "loss.png")
    assert _png_size(tmp_path / "loss.png") == (500, 360)
    svg = tmp_path / "loss.svg"
    training_curves(history, svg)
    assert svg.read_text().count("<svg") == 1 and "validation" in svg.read_text()
    with pytest.raises(CatgradError, match="no finished epoch"):
        training_curves([], tmp_path / "none.png")
    rc = main(["train", IRIS, "--model", "mlp", "--data", "iris", "--epochs", "1", "--plot", str(tmp_path / "c.jpg")])
    assert rc == 1 and "use a .png, .svg or .pdf" in capsys.readouterr().err
    assert not (tmp_path / "c.jpg").exists()
