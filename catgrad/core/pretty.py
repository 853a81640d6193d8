"""A readable text form of a diagram: one line per box, in SSA style."""

from __future__ import annotations


def format_graph(g) -> str:
    def name(w):
        return f"%{w}"

    lines = ["(" + ", ".join(f"{name(w)}: {g.types[w]}" for w in g.inputs) + ") {"]
    for op, ins, outs, _ in g.boxes:
        attrs = ", ".join(f"{k}={v}" for k, v in op.attrs if k != "type")
        args = ", ".join(name(w) for w in ins)
        res = ", ".join(f"{name(w)}: {g.types[w]}" for w in outs)
        lines.append(f"  {res} = {op.name}({args}{'; ' + attrs if attrs else ''})")
    lines.append("  return " + ", ".join(name(w) for w in g.outputs))
    lines.append("}")
    return "\n".join(lines)
