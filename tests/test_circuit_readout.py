"""The vote readout (class = most head votes, ties to the lowest index) built as gates."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catgrad.circuit import Evaluator, Netlist, Port, tools
from catgrad.circuit.readout import vote_readout, votes
from catgrad.circuit.writers import write


def reference(row, heads, n_classes):
    counts = [sum(row[h * n_classes + c] for h in range(heads)) for c in range(n_classes)]
    return counts.index(max(counts))  # the first maximum


def identity(width):
    nl = Netlist([Port("y", width)], [Port("o", width)])
    nl.outputs = list(range(2, 2 + width))
    return nl


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(2, 11), st.integers(0, 2**32 - 1))
def test_the_readout_circuit_is_the_argmax_of_the_vote_counts(heads, n_classes, seed):
    rng = np.random.default_rng(seed)
    p = rng.random()
    y = rng.random((300, heads * n_classes)) < p
    y[:20] = y[:1]  # repeated rows, and
    y[20:40] = False  # all-zero rows: every class tied
    nl = vote_readout(identity(heads * n_classes), n_classes)
    bits = Evaluator(nl)(y).astype(np.int64)
    got = bits @ (1 << np.arange(bits.shape[1]))
    want = np.array([reference(r.tolist(), heads, n_classes) for r in y])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(votes(y, n_classes), want)
    assert nl.output_names() == [f"class[{i}]" for i in range(max(1, (n_classes - 1).bit_length()))]


def test_a_bad_head_count_is_refused():
    with pytest.raises(ValueError, match="multiple of 10"):
        vote_readout(identity(25), 10)


@pytest.mark.skipif(not tools.which(*tools.ABC), reason="ABC (Debian package berkeley-abc) is not installed")
def test_abc_finds_the_readout_s_blif_and_aiger_equivalent(tmp_path):
    nl = vote_readout(identity(5 * 4), 4)
    (tmp_path / "r.blif").write_bytes(write(nl, "blif", "r"))
    (tmp_path / "r.aig").write_bytes(write(nl, "aiger", "r"))
    assert tools.cec(str(tmp_path / "r.blif"), str(tmp_path / "r.aig"))
