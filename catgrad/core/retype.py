"""Retyping: the functor that changes the dtype of wires, box by box.

``retype(f, {f32: bf16})`` rebuilds ``f`` with every ``f32`` wire made ``bf16``. Each
box is instantiated again through its primitive (so the type rules re-check the
result), and attributes that hold a wire type or a dtype (``constant``'s ``type``,
``cast``'s ``dtype``) are mapped too. It is a strict monoidal functor: it preserves
``>>``, ``@``, copies and discards, because it only relabels wires and boxes.

>>> import catgrad as cg
>>> retype(cg.ops.exp(cg.f32[3]) >> cg.ops.sin(cg.f32[3]), {cg.f32: cg.f64}).dom
Ob(f64[3])
"""

from __future__ import annotations

from .diagram import Box, Diagram, Graph, as_diagram
from .types import DType, Ob, TensorType


def _map_type(t: TensorType, mapping: dict) -> TensorType:
    return t.with_dtype(mapping.get(t.dtype, t.dtype))


def _map_attr(v, mapping: dict):
    if isinstance(v, TensorType):
        return _map_type(v, mapping)
    if isinstance(v, DType):
        return mapping.get(v, v)
    return v


def retype(f, mapping: dict) -> Diagram:
    """``f`` with its wire dtypes replaced along ``mapping`` (``{DType: DType}``)."""
    g = as_diagram(f).graph
    if not mapping or not any(t.dtype in mapping for t in g.types):
        return as_diagram(f)
    types = [_map_type(t, mapping) for t in g.types]
    boxes = []
    for op, ins, outs, scope in g.boxes:
        attrs = {k: _map_attr(v, mapping) for k, v in op.attrs}
        new = op.prim.op(Ob(*(types[w] for w in ins)), **attrs)
        boxes.append(Box(new, ins, outs, scope))
    return Diagram(Graph(types, boxes, g.inputs, g.outputs))


__all__ = ["retype"]
