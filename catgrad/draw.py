"""Drawing diagrams: two functors out of the Diagram, into networkx and Graphviz.

:func:`to_networkx` gives the diagram's hypergraph as a ``networkx.MultiDiGraph``.
Its nodes are ``("input", i)``, ``("box", k)`` and ``("output", j)``. There is one
edge per *use* of a wire, from the wire's producer to its consumer, keyed by
``(wire, port)`` and labelled with the wire number, its type and the consumer's port.
A wire used twice is a copy: two edges with the same ``wire``. An input used nowhere is a discard: a node with no
out-edges. So networkx's algorithms (depth, topological generations, reachability)
apply to models directly.

:func:`to_dot` draws it as a string diagram, left to right, in the style of Para: a
parameter enters the box that uses it from above. Boxes are ops, copies are black dots,
discards are open dots, every wire is labelled with its type, outputs are named, and the ops
of one layer are framed together -- or drawn as one box per layer, so that deep networks and
their reverse derivatives stay legible. :func:`render` writes ``.dot``/``.gv`` source, or
``.svg``/``.png``/``.pdf`` through Graphviz's ``dot`` program (stopped after a time limit,
with a message, instead of hanging), atomically. :func:`svg` gives Jupyter its picture.
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
        # parameters, then a stateful model's state (its training form is drawn)
        names = [p.name for p in (*getattr(d, "params", ()), *getattr(d, "state", ()))]
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
    for k, (op, ins, outs, scope) in enumerate(graph.boxes):
        attrs = {key: val for key, val in op.attrs if key not in ("type", "shape")}
        G.add_node(("box", k), kind="box", op=op.name, attrs=attrs, scope=scope)
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


COLLAPSE_ABOVE = 40  # boxes; larger diagrams are drawn one box per layer unless asked otherwise
TIMEOUT = 30.0  # seconds Graphviz may take to lay out a drawing


def layers(G: nx.MultiDiGraph) -> dict:
    """Box node -> layer name, for grouping: the first name of the box's scope (the call of the
    drawn definition that made it, see :class:`~catgrad.core.diagram.Box`), for layers of two
    or more boxes. The boxes R makes from a box keep its scope, so R(f) is grouped by the
    layers of f exactly. A box with no scope, or alone in its layer, stays on its own."""
    group = {n: data["scope"][0] for n, data in G.nodes(data=True) if data["kind"] == "box" and data["scope"]}
    size: dict = {}
    for g in group.values():
        size[g] = size.get(g, 0) + 1
    return {n: g for n, g in group.items() if size[g] > 1}


def to_dot(d, title: str | None = None, input_names=None, output_names=None, collapse: bool | None = None,
           n_params: int | None = None):
    """A ``graphviz.Digraph`` drawing ``d`` as a string diagram (``.source`` is the DOT text).

    Left to right, in the style of Para: the parameters of a Para enter the boxes that use them
    from above, the other inputs from the left. Every wire is labelled with its type; copies
    are black dots, discards open dots; outputs are named by ``output_names`` (default ``y``).
    Boxes are grouped by layer (:func:`layers`): a frame around each layer, or, with
    ``collapse`` (the default above ``COLLAPSE_ABOVE`` boxes), one box per layer that lists
    its ops -- which keeps a 30-layer network and its reverse derivative legible and quick
    to lay out. ``n_params``: how many leading inputs are parameters (default: a Para's).
    """
    import graphviz

    G = to_networkx(d, input_names)
    if n_params is None:
        n_params = len(getattr(d, "params", ()) or ())
    n_out = sum(1 for n in G if n[0] == "output")
    if output_names is None:
        output_names = ["y"] if n_out == 1 else [f"y{j}" for j in range(n_out)]
    group = layers(G)
    n_boxes = sum(1 for n in G if n[0] == "box")
    if collapse is None:
        collapse = n_boxes > COLLAPSE_ABOVE
    node_of = {n: (f"layer_{_safe(group[n])}" if collapse and n in group else _node_id(n)) for n in G}

    dot = graphviz.Digraph(name=title or "diagram")
    dot.attr(rankdir="LR", fontname="Helvetica", nodesep="0.25", ranksep="0.35", newrank="true")
    if title:
        dot.attr(label=title, labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.5")
    is_param = lambda n: n[0] == "input" and n[1] < n_params  # noqa: E731
    # the boxes: framed by layer, or one box per layer
    members: dict = {}
    for n in G:
        if n[0] == "box":
            members.setdefault(group.get(n), []).append(n)
    for g, boxes in members.items():
        if collapse and g is not None:
            ops = [G.nodes[b]["op"] for b in boxes]
            counts = {o: ops.count(o) for o in dict.fromkeys(ops)}
            listing = ", ".join(o if c == 1 else f"{o} x{c}" for o, c in counts.items())
            dot.node(node_of[boxes[0]], f"{g}\n({_wrap(listing)})", shape="box", style="rounded,bold")
            continue
        target = dot if g is None else graphviz.Digraph(name=f"cluster_{_safe(g)}")
        if g is not None:
            target.attr(label=g, style="rounded,dashed", color="gray50", fontcolor="gray30", fontsize="10")
        for b in boxes:
            data = G.nodes[b]
            target.node(_node_id(b), _box_label(data["op"], data["attrs"]), shape="box", style="rounded")
        if g is not None:
            dot.subgraph(target)
    for n, data in G.nodes(data=True):
        if data["kind"] == "input" and is_param(n):  # its type on the node: the wire below it is short
            dot.node(_node_id(n), f"{data['name']}\n{data['type']}", shape="plaintext", fontcolor="gray25", fontsize="10")
        elif data["kind"] == "input":
            dot.node(_node_id(n), data["name"], shape="plaintext")
        elif data["kind"] == "output":
            dot.node(_node_id(n), output_names[n[1]] if n[1] < len(output_names) else f"y{n[1]}", shape="plaintext")
    # wires: one use is a plain edge, several go through a copy dot; parameters come from above
    uses: dict = {}
    for u, v, data in G.edges(data=True):
        a, b = node_of[u], node_of[v]
        if a == b:
            continue  # inside a collapsed layer
        targets = uses.setdefault((u, data["wire"]), [])
        if b not in [t for t, _ in targets]:
            targets.append((b, data))
    for (u, w), targets in uses.items():
        label = "" if is_param(u) else targets[0][1]["type"]
        src = node_of[u]
        above = {}
        if is_param(u):
            with dot.subgraph() as same:  # a parameter sits in its first consumer's column
                same.attr(rank="same")
                same.node(src)
                same.node(targets[0][0])
        if len(targets) == 1:
            dot.edge(src, targets[0][0], label=label, **above)
            continue
        copy = f"copy{w}"
        dot.node(copy, "", shape="point", width="0.08")
        dot.edge(src, copy, label=label, arrowhead="none")
        for v, _ in targets:
            dot.edge(copy, v)
    for n, data in G.nodes(data=True):
        if data["kind"] == "input" and G.out_degree(n) == 0:
            discard = f"discard{n[1]}"
            dot.node(discard, "", shape="circle", width="0.08", fixedsize="true")
            dot.edge(_node_id(n), discard, label=data["type"], arrowhead="none")
    return dot


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _wrap(text: str, width: int = 28) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _pipe(dot, fmt: str, timeout: float) -> bytes:
    """Graphviz's ``dot -T fmt`` on the source, stopped after ``timeout`` seconds."""
    import shutil
    import subprocess

    exe = shutil.which("dot")
    if exe is None:
        raise FileNotFoundError("dot")
    try:
        r = subprocess.run([exe, f"-T{fmt}"], input=dot.source.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError from None
    if r.returncode != 0:
        raise CatgradError(f"Graphviz failed: {r.stderr.decode(errors='replace').strip()[:300]}")
    return r.stdout


def render(d, path, title: str | None = None, input_names=None, output_names=None, collapse: bool | None = None,
           timeout: float = TIMEOUT, n_params: int | None = None) -> Path:
    """Write a drawing of ``d`` to ``path``; the format follows the suffix
    (``.dot``/``.gv`` source, or ``.svg``/``.png``/``.pdf`` via Graphviz's ``dot``, which
    is given ``timeout`` seconds)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise CatgradError(f"{path}: cannot tell the drawing format from the suffix; use one of "
                           + ", ".join("." + f for f in FORMATS))
    dot = to_dot(d, title, input_names, output_names, collapse, n_params)
    if fmt in ("dot", "gv"):
        data = dot.source.encode()
    else:
        try:
            data = _pipe(dot, fmt, timeout)
        except FileNotFoundError:
            raise CatgradError(
                f"{path}: drawing .{fmt} needs Graphviz's dot program (apt-get install graphviz); "
                "a .dot file can be written without it"
            ) from None
        except TimeoutError:
            n = len(as_diagram(d).graph.boxes)
            raise CatgradError(
                f"{path}: Graphviz did not finish laying out {n} boxes within {timeout:g} s, so catgrad stopped it;"
                " draw with layers collapsed (the default above "
                f"{COLLAPSE_ABOVE} boxes), a smaller piece, or write a .dot file"
            ) from None
    atomic_write(path, lambda fh: fh.write(data), what="the drawing")
    return path


def svg(d, title: str | None = None, timeout: float = TIMEOUT) -> str | None:
    """The drawing as SVG text, or None when Graphviz is missing or too slow (for Jupyter's
    ``_repr_svg_``, which must not raise)."""
    try:
        return _pipe(to_dot(d, title), "svg", timeout).decode()
    except (FileNotFoundError, TimeoutError, CatgradError):
        return None


__all__ = ["COLLAPSE_ABOVE", "FORMATS", "TIMEOUT", "layers", "render", "svg", "to_dot", "to_networkx"]


# -- the `catgrad draw` command -----------------------------------------------------------


def run_draw(args) -> int:
    import sys

    from .calculus.rdc import R
    from .frontend.module import load

    f = load(args.file)[args.name]
    params = [p.name for p in getattr(f, "params", ())]
    state = [p.name for p in getattr(f, "state", ())]  # a stateful model: its training form P x S x A -> B x S
    xs = ["x"] if len(f.dom) == 1 else [f"x{i}" for i in range(len(f.dom))]
    ys = [args.name] if len(f.cod) == 1 else [f"{args.name}.{j}" for j in range(len(f.cod))]
    names, outs, title = params + state + xs, ys + [f"{s}'" for s in state], args.name
    if args.grad:  # R[f] : P x A x B' -> P' x A' (a stateful model: its state is an input, S x A)
        names = params + state + xs + [f"d{y}" for y in ys]
        outs = [f"d{p}" for p in params + state] + [f"d{x}" for x in xs]
        g = f.forward("train").body if hasattr(f, "forward") else f
        f, title = R(g), f"R[{args.name}]"
    collapse = {"auto": None, "layers": True, "ops": False}[args.group]
    if args.output is None:
        print(to_dot(f, title, names, outs, collapse, len(params)).source, end="")
    else:
        render(f, args.output, title, names, outs, collapse, timeout=args.timeout, n_params=len(params))
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("draw", help="draw a definition as a string diagram (Graphviz)")
    p.add_argument("file", help="the .cat file")
    p.add_argument("name", help="a definition (or an expression such as 'nn.dense[4, 3]')")
    p.add_argument("-o", "--output", default=None, metavar="PATH",
                   help="write .dot/.gv, or .svg/.png/.pdf (needs Graphviz); default: DOT text on stdout")
    p.add_argument("--grad", action="store_true", help="draw the reverse derivative R of the definition")
    p.add_argument("--group", choices=("auto", "layers", "ops"), default="auto",
                   help=f"layers: one box per layer; ops: every op, framed by layer; auto: layers above {COLLAPSE_ABOVE} ops")
    p.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS",
                   help=f"stop Graphviz after this long (default {TIMEOUT:g})")
    p.set_defaults(run=run_draw)
