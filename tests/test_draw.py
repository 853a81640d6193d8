"""Drawing: the networkx functor keeps the hypergraph's structure; Graphviz renders it."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings

import catgrad as cg
from catgrad.draw import layers, render, to_dot, to_networkx
from strategies import smooth_diagrams

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_DOT = shutil.which("dot") is not None


@settings(max_examples=25)
@given(smooth_diagrams())
def test_networkx_graph_is_the_hypergraph(d):
    g = d.graph
    G = to_networkx(d)
    assert nx.is_directed_acyclic_graph(G)
    boxes = [n for n in G if n[0] == "box"]
    assert len(boxes) == len(g.boxes)
    # one edge per use of a wire: box inputs plus diagram outputs
    assert G.number_of_edges() == sum(len(b.ins) for b in g.boxes) + len(g.outputs)
    for k, (op, ins, outs, _) in enumerate(g.boxes):
        node = ("box", k)
        assert G.nodes[node]["op"] == op.name
        assert sorted(e[2]["port"] for e in G.in_edges(node, data=True)) == list(range(len(ins)))
    # networkx's topological order reaches every box
    order = [n for n in nx.topological_sort(G) if n[0] == "box"]
    assert {k for _, k in order} == set(range(len(g.boxes)))


def test_copies_and_discards_are_visible():
    t = cg.f64[3]
    d = (cg.copy(t) >> (cg.ops.sin(t) @ cg.ops.exp(t)) >> cg.ops.add(t, t)) @ cg.discard(t)
    G = to_networkx(d)
    assert G.out_degree(("input", 0)) == 2  # the copied wire: two uses, one key
    assert {w for _, _, w in G.out_edges(("input", 0), data="wire")} == {0}
    assert G.out_degree(("input", 1)) == 0  # the discarded wire
    src = to_dot(d).source
    assert src.count("shape=point") == 1 and src.count("shape=circle") == 1


def test_para_inputs_are_named_after_parameters():
    mlp = cg.load(EXAMPLES / "iris.cat")["mlp"]
    G = to_networkx(mlp)
    names = [G.nodes[("input", i)]["name"] for i in range(len(mlp.body.dom))]
    assert names == [*mlp.names, "x0"]


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
def test_svg_has_one_node_per_box_port_copy_and_discard(tmp_path):
    mlp = cg.load(EXAMPLES / "iris.cat")["mlp"]
    d = cg.R(mlp)
    out = render(d, tmp_path / "r.svg")
    root = ET.parse(out).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    drawn = root.findall(".//s:g[@class='node']", ns)
    G = to_networkx(d)
    wires = [w for _, _, w in G.edges(data="wire")]
    copies = sum(1 for w in set(wires) if wires.count(w) > 1)
    discards = sum(1 for n in G if n[0] == "input" and G.out_degree(n) == 0)
    assert len(drawn) == G.number_of_nodes() + copies + discards


def test_render_rejects_unknown_suffix_and_leaves_nothing(tmp_path):
    with pytest.raises(cg.CatgradError, match="suffix"):
        render(cg.ops.exp(cg.f64[2]), tmp_path / "x.jpeg")
    assert list(tmp_path.iterdir()) == []


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "catgrad", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_draw_dot_and_errors(tmp_path):
    r = _cli("draw", EXAMPLES / "iris.cat", "mlp", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("digraph mlp {") and "einsum" in r.stdout
    r = _cli("draw", EXAMPLES / "iris.cat", "mlp", "--grad", "-o", tmp_path / "g.dot", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "g.dot").read_text().startswith("digraph")
    r = _cli("draw", EXAMPLES / "iris.cat", "mpl", "-o", tmp_path / "bad.dot", cwd=tmp_path)
    assert r.returncode == 1 and "did you mean 'mlp'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.dot").exists()


# -- baseline drawings ---------------------------------------------------------------------------
# tests/baselines/NAME.dot is the accepted drawing (looked at as NAME.png before it was accepted);
# CATGRAD_UPDATE_BASELINES=1 rewrites them, to be looked at again before committing.

BASELINES = Path(__file__).resolve().parent / "baselines"
DEEP = "import nn\ndef deep = " + " >> ".join(["nn.dense[32, 32] >> tanh"] * 30) + "\n"
CASES = {
    "iris_mlp": (EXAMPLES / "iris.cat", "mlp", []),
    "iris_mlp_grad": (EXAMPLES / "iris.cat", "mlp", ["--grad"]),
    "deep30_grad": (None, "deep", ["--grad"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_drawings_match_their_baselines(name, tmp_path):
    import os

    src, model, extra = CASES[name]
    if src is None:
        src = tmp_path / "deep.cat"
        src.write_text(DEEP)
    fmts = ["dot"] + (["svg"] if HAVE_DOT else [])
    for fmt in fmts:
        r = _cli("draw", src, model, *extra, "-o", tmp_path / f"{name}.{fmt}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    got = (tmp_path / f"{name}.dot").read_text()
    if os.environ.get("CATGRAD_UPDATE_BASELINES"):
        (BASELINES / f"{name}.dot").write_text(got)
        if HAVE_DOT:
            subprocess.run(["dot", "-Tpng", "-Gsize=30,8", "-o", BASELINES / f"{name}.png", BASELINES / f"{name}.dot"],
                           check=True)  # at most 30 x 8 inches: a picture to look at, not to compare
    assert got == (BASELINES / f"{name}.dot").read_text()
    if HAVE_DOT:  # Graphviz lays out every node and label of the baseline (positions may differ by version)
        texts = sorted(t.text for t in ET.parse(tmp_path / f"{name}.svg").getroot().iter("{http://www.w3.org/2000/svg}text"))
        assert texts and all(line in got for line in texts)


def test_para_style_and_named_outputs():
    mlp = cg.load(EXAMPLES / "iris.cat")["mlp"]
    src = to_dot(mlp, "mlp", output_names=["logits"]).source
    # each parameter shares a rank with the box it feeds, and its wire carries no label (the type is on it)
    for p in mlp.params:
        assert f'label="{p.name}\n{p.type}"' in src
    assert src.count("rank=same") == len(mlp.params)
    assert "logits" in src and "out0" not in src
    assert src.count("subgraph cluster_") == 2  # the two dense layers, framed


def test_deep_networks_collapse_to_one_box_per_layer():
    deep = cg.loads(DEEP)["deep"]
    names = list(deep.names) + ["x", "dy"]
    src = to_dot(cg.R(deep), input_names=names, n_params=len(deep.params)).source
    assert src.count("shape=box") == 60  # 30 dense layers and 30 tanh calls, not 330 boxes
    assert to_dot(cg.R(deep), collapse=False).source.count("shape=box") == len(cg.R(deep).graph.boxes)


def _ops(boxes):
    return sorted(b.op.name for b in boxes)


def test_every_box_of_r_deep_is_in_the_group_of_the_layer_it_came_from():
    """R(deep) is grouped exactly by deep's calls: every box is in a group, the groups are the
    30 dense uses and the 30 tanh calls, each group holds exactly the boxes R makes for one such
    layer on its own, and a box that reads a parameter is in that parameter's layer."""
    deep = cg.loads(DEEP)["deep"]
    rd = cg.R(deep)
    G = to_networkx(rd, list(deep.names) + ["x", "dy"])
    group = layers(G)
    boxes = [n for n in G if n[0] == "box"]
    assert set(group) == set(boxes)
    names = {"dense"} | {f"dense_{k}" for k in range(2, 31)} | {f"tanh#{k}" for k in range(1, 31)}
    assert set(group.values()) == names
    one = cg.loads("import nn\ndef d = nn.dense[32, 32]\ndef t(x : f32[B, 32]) -> f32[B, 32] = tanh(x)\n")
    # a dense layer's forward boxes (the tanh after it reads its output) and its reverse rule
    want = {"dense": _ops(one["d"].body.boxes + cg.R(one["d"]).boxes), "tanh": _ops(cg.R(one["t"]).boxes)}
    graph = rd.graph
    for g in names:
        members = [graph.boxes[k] for (_, k), h in group.items() if h == g]
        assert _ops(members) == want[g.split("#")[0].split("_")[0]], g
    for n in boxes:  # a parameter read belongs to its own layer
        for u in G.predecessors(n):
            if u[0] == "input" and u[1] < len(deep.params):
                assert G.nodes[u]["name"].rsplit(".", 1)[0] == group[n]


def test_scopes_are_metadata_and_survive_r_and_retype():
    t = cg.f64[3]
    f = cg.ops.sin(t) >> cg.ops.exp(t)
    s = f.scoped("layer")
    assert s == f and all(b.scope == ("layer",) for b in s.boxes)  # equality ignores where boxes came from
    assert all(b.scope[:1] == ("layer",) for b in cg.R(s).boxes)
    assert all(b.scope == ("layer",) for b in cg.core.retype.retype(s, {cg.f64: cg.f32}).boxes)
    p = cg.Para([], f).prefixed("enc")
    assert all(b.scope == ("enc",) for b in p.body.boxes)


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
def test_graphviz_time_limit_gives_a_message(tmp_path):
    deep = cg.loads(DEEP)["deep"]
    with pytest.raises(cg.CatgradError, match=r"did not finish laying out 330 boxes within 0.01 s"):
        render(cg.R(deep), tmp_path / "x.svg", collapse=False, timeout=0.01)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
def test_jupyter_sees_svg():
    svg = cg.load(EXAMPLES / "iris.cat")["mlp"]._repr_svg_()
    root = ET.fromstring(svg.split("?>", 1)[1].split(">", 1)[1] if svg.startswith("<?xml") and "<!DOCTYPE" in svg else svg)
    assert root.tag.endswith("svg")
