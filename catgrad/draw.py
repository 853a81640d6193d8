"""Drawing diagrams: two functors out of the Diagram, into networkx and Graphviz.

:func:`to_networkx` gives the diagram's hypergraph as a ``networkx.MultiDiGraph``.
Its nodes are ``("input", i)``, ``("box", k)`` and ``("output", j)``. There is one
edge per *use* of a wire, from the wire's producer to its consumer, keyed by
``(wire, port)`` and labelled with the wire number, its type and the consumer's port.
A wire used twice is a copy: two edges with the same ``wire``. An input used nowhere is a discard: a node with no
out-edges. So networkx's algorithms (depth, topological generations, reachability)
apply to models directly.

:func:`to_dot` draws it as a string diagram, left to right. Boxes are ops, copies are
black dots, discards are open dots, and every wire is labelled with its type.
:func:`render` writes ``.dot``/``.gv`` source, or ``.svg``/``.png``/``.pdf`` through
Graphviz's ``dot`` program, atomically.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from .core.diagram import as_diagram
from .errors import CatgradError
from .files import atomic_write

FORMATS = ("dot", "gv", "svg", "png", "pdf")


def _port_names(d, names) -> list:
    if names is None:
        names = [p.name for p in getattr(d, "params", ())]
    dom = as_diagram(d).dom
    return [names[i] if i < len(names) else f"x{i - len(names)}" if names else f"x{i}" for i in range(len(dom))]


def to_networkx(d, input_names=None) -> nx.MultiDiGraph:
    """The hypergraph of ``d`` (a Diagram or a Para) as a ``networkx.MultiDiGraph``.

    >>> import catgrad as cg
    >>> t = cg.f64[3]
    >>> g = to_networkx(cg.copy(t) >> (cg.ops.sin(t) @ cg.ops.exp(t)) >> cg.ops.add(t, t))
    >>> sorted(n for n in g if n[0] == "box")
    [('box', 0), ('box', 1), ('box', 2)]
    >>> g.out_degree(("input", 0))  # the copy: one wire, two uses
    2
    """
    graph = as_diagram(d).graph
    names = _port_names(d, input_names)
    G = nx.MultiDiGraph()
    producer = {}
    for i, w in enumerate(graph.inputs):
        G.add_node(("input", i), kind="input", name=names[i], type=str(graph.types[w]))
        producer[w] = ("input", i)
    for k, (op, ins, outs) in enumerate(graph.boxes):
        attrs = {key: val for key, val in op.attrs if key not in ("type", "shape")}
        G.add_node(("box", k), kind="box", op=op.name, attrs=attrs)
        for port, w in enumerate(ins):
            G.add_edge(producer[w], ("box", k), key=(w, port), wire=w, port=port, type=str(graph.types[w]))
        for w in outs:
            producer[w] = ("box", k)
    for j, w in enumerate(graph.outputs):
        G.add_node(("output", j), kind="output", type=str(graph.types[w]))
        G.add_edge(producer[w], ("output", j), key=(w, 0), wire=w, port=0, type=str(graph.types[w]))
    return G


def _box_label(op: str, attrs: dict) -> str:
    if op == "einsum":
        return f"einsum\n{attrs.get('spec', '')}"
    if op == "constant":
        return f"{attrs.get('value')}"
    shown = ", ".join(f"{k}={v}" for k, v in attrs.items() if v is not None)
    return f"{op}\n{shown}" if shown else op


def _node_id(n) -> str:
    return f"{n[0]}{n[1]}"


def to_dot(d, title: str | None = None, input_names=None):
    """A ``graphviz.Digraph`` drawing ``d`` as a string diagram (``.source`` is the DOT text)."""
    import graphviz

    G = to_networkx(d, input_names)
    dot = graphviz.Digraph(name=title or "diagram")
    dot.attr(rankdir="LR", fontname="Helvetica", nodesep="0.25", ranksep="0.35")
    if title:
        dot.attr(label=title, labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.5")
    for n, data in G.nodes(data=True):
        if data["kind"] == "input":
            dot.node(_node_id(n), f"{data['name']}", shape="plaintext")
        elif data["kind"] == "output":
            dot.node(_node_id(n), f"out{n[1]}", shape="plaintext")
        else:
            dot.node(_node_id(n), _box_label(data["op"], data["attrs"]), shape="box", style="rounded")
    # group the uses of each wire: one use is a plain edge, several go through a copy dot
    uses: dict = {}
    for u, v, data in G.edges(data=True):
        uses.setdefault((u, data["wire"]), []).append((v, data))
    for (u, w), targets in uses.items():
        label = targets[0][1]["type"]
        if len(targets) == 1:
            dot.edge(_node_id(u), _node_id(targets[0][0]), label=label)
            continue
        copy = f"copy{w}"
        dot.node(copy, "", shape="point", width="0.08")
        dot.edge(_node_id(u), copy, label=label, arrowhead="none")
        for v, _ in targets:
            dot.edge(copy, _node_id(v))
    for n, data in G.nodes(data=True):
        if data["kind"] == "input" and G.out_degree(n) == 0:
            discard = f"discard{n[1]}"
            dot.node(discard, "", shape="circle", width="0.08", fixedsize="true")
            dot.edge(_node_id(n), discard, label=data["type"], arrowhead="none")
    return dot


def render(d, path, title: str | None = None, input_names=None) -> Path:
    """Write a drawing of ``d`` to ``path``; the format follows the suffix
    (``.dot``/``.gv`` source, or ``.svg``/``.png``/``.pdf`` via Graphviz's ``dot``)."""
    import graphviz

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise CatgradError(f"{path}: cannot tell the drawing format from the suffix; use one of "
                           + ", ".join("." + f for f in FORMATS))
    dot = to_dot(d, title, input_names)
    if fmt in ("dot", "gv"):
        data = dot.source.encode()
    else:
        try:
            data = dot.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise CatgradError(
                f"{path}: drawing .{fmt} needs Graphviz's dot program (apt-get install graphviz); "
                "a .dot file can be written without it"
            ) from None
    atomic_write(path, lambda fh: fh.write(data), what="the drawing")
    return path


__all__ = ["FORMATS", "render", "to_dot", "to_networkx"]


# -- the `catgrad draw` command -----------------------------------------------------------


def run_draw(args) -> int:
    import sys

    from .calculus.rdc import R
    from .frontend.module import load

    f = load(args.file)[args.name]
    names = [p.name for p in getattr(f, "params", ())]
    title = args.name
    if args.grad:
        names = names + [f"x{i}" for i in range(len(f.dom))] + [f"d{j}" for j in range(len(f.cod))]
        f, title = R(f), f"R[{args.name}]"
    if args.output is None:
        print(to_dot(f, title, names).source, end="")
    else:
        render(f, args.output, title, names)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("draw", help="draw a definition as a string diagram (Graphviz)")
    p.add_argument("file", help="the .cat file")
    p.add_argument("name", help="a definition (or an expression such as 'nn.dense[4, 3]')")
    p.add_argument("-o", "--output", default=None, metavar="PATH",
                   help="write .dot/.gv, or .svg/.png/.pdf (needs Graphviz); default: DOT text on stdout")
    p.add_argument("--grad", action="store_true", help="draw the reverse derivative R of the definition")
    p.set_defaults(run=run_draw)
