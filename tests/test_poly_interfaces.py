"""The interfaces (domains, codomains, tags) that poly's constructions carry, and the
small operations the law tests do not reach. Added for mutants that survived
(docs/testing.md, "Mutation testing"): a wrong interface would only show when a
program is wired further."""

import numpy as np
import pytest

import catgrad as cg
from catgrad.calculus.poly import (
    FinLens,
    FinPoly,
    Hom,
    Monomial,
    PolyMap,
    System,
    Tensor,
    hom_compose,
    hom_eval,
    stream,
)

f64 = cg.f64
P = FinPoly({"a": [0], "b": [0, 1]})
Q = FinPoly({"a": [5]})


def test_coproduct_and_product_tag_with_zero_and_one():
    s = P + Q
    assert s.positions == ((0, "a"), (0, "b"), (1, "a"))
    assert s[(1, "a")] == (5,) and s[(0, "b")] == (0, 1)
    m = P * Q
    assert m[("b", "a")] == ((0, 0), (0, 1), (1, 5))


def test_poly_maps_carry_their_interfaces():
    p, q, r = Monomial(f64[2]), Monomial(f64[()]), Monomial(f64[3], f64[1])
    assert hom_eval(p, q).dom == Tensor(Hom(p, q), p) and hom_eval(p, q).cod == q
    comp = hom_compose(p, q, r)
    assert comp.dom == Tensor(Hom(p, q), Hom(q, r)) and comp.cod == Hom(p, r)
    assert Hom(p, q) != Hom(p, r) and Hom(p, q) != Hom(r, q) and hash(Hom(p, q)) == hash(Hom(p, q))
    assert Tensor(p, q) != Tensor(q, p) and Tensor(p, q) != Tensor(p, r) and hash(Tensor(p, q)) == hash(Tensor(p, q))
    assert Monomial(f64[2], f64[1]) != Monomial(f64[2]) and Monomial(f64[1], f64[2]) != Monomial(f64[2], f64[2])
    assert hash(Monomial(f64[2])) == hash(Monomial(f64[2], f64[2]))
    assert p.hom(q) == Hom(p, q) and Hom(p, q) @ r == Tensor(Hom(p, q), r)
    sin = cg.ops.sin(f64[2])
    m = PolyMap.from_lens(cg.lens(sin))
    assert m.dom == Monomial(f64[2], f64[2]) and m.cod == Monomial(f64[2], f64[2])
    lens = cg.Lens(cg.trace(f64[2])(lambda a: a.sum()), cg.trace(f64[2], f64[()])(lambda a, d: (a * d).sum()))
    m2 = PolyMap.from_lens(lens)  # directions of the domain differ from its positions
    assert m2.dom == Monomial(f64[2], f64[()]) and m2.cod == Monomial(f64[()], f64[()])
    fin = FinLens.id(P)
    assert PolyMap.of(fin).dom == P and PolyMap.of(fin).cod == P and PolyMap.of(m) is m
    with pytest.raises(cg.CatgradTypeError, match="expected a lens of polynomials, got int"):
        PolyMap.of(3)


def test_composite_and_parallel_poly_maps():
    R = FinPoly({"x": [7, 8], "y": [9]})
    f = PolyMap.of(FinLens.of(P, R, lambda i: {"a": "y", "b": "x"}[i], lambda i, e: {7: 0, 8: 1, 9: 0}[e]))
    g = PolyMap.of(FinLens.id(R))
    fg = f >> g
    assert fg.dom == P and fg.cod == R and fg.on_pos("b") == "x" and fg.on_dir("b", 8) == 1
    par = f @ FinLens.id(Q)  # a FinLens on the right is converted
    assert par.dom == Tensor(P, Q) and par.cod == Tensor(R, Q)
    assert par.on_pos(("b", "a")) == ("x", "a") and par.on_dir(("b", "a"), (8, 5)) == (1, 5)


def test_systems_carry_their_interfaces():
    S = FinPoly.monomial([0, 1], [0, 1])
    iface = FinPoly.monomial(["lo", "hi"], [0, 1])
    phi = FinLens.of(S, iface, lambda s: ["lo", "hi"][s], lambda s, d: (s + d) % 2)
    c = System.finite(phi)
    assert c.interface == iface and c.step(1, 1) == 0 and c.states(0, [1, 1, 0]) == [0, 1, 0, 0]
    both = c @ c
    assert both.interface == Tensor(iface, iface) and both.readout((0, 1)) == ("lo", "hi")
    assert both.update((0, 1), (1, 1)) == (1, 0)
    wired = c.wire(FinLens.of(iface, Q, lambda o: "a", lambda o, e: 1))
    assert wired.interface == Q and wired.readout(0) == "a" and wired.update(0, 5) == 1
    assert repr(wired) == f"System(-> {Q})"
    # a lens-given system wired along a finite lens, and next to a finite system
    lens_sys = System.moore(cg.ops.sin(f64[()]), cg.trace(f64[()], f64[()])(lambda s, b: s + b))
    assert lens_sys.interface == Monomial(f64[()], f64[()])
    mixed = lens_sys @ c
    assert mixed.lens is None and mixed.interface == Tensor(lens_sys.interface, iface)
    id_lens = cg.Lens.id(f64[()])
    rewired = lens_sys.wire(id_lens)
    assert rewired.lens is not None and rewired.interface == lens_sys.interface
    poly_wired = System(lens_sys.interface, lens_sys.readout, lens_sys.update).wire(id_lens)
    assert poly_wired.lens is None and poly_wired.interface == Monomial(f64[()], f64[()])
    assert np.allclose(poly_wired.readout([np.array(0.5)]), [np.sin(0.5)])
    assert np.allclose(poly_wired.update([np.array(0.5)], [np.array(2.0)]), [2.5])
    with pytest.raises(cg.CatgradError, match="^a finite system's domain must be S y\\^S"):
        System.finite(FinLens.id(FinPoly({0: ["x"], 1: ["x"]})))


def test_a_system_from_a_lens_that_does_not_start_at_s_s_is_refused():
    lens = cg.Lens(cg.ops.sin(f64[2]), cg.trace(f64[2], f64[2])(lambda a, d: (a * d).sum()))
    with pytest.raises(cg.CatgradTypeError, match="must start at \\(S, S\\)"):
        System.from_lens(lens)


def test_monomial_lens_checks_every_part_of_its_type():
    p, q = Monomial(f64[2]), Monomial(f64[()])
    get = cg.trace(f64[2])(lambda a: (a * a).sum())
    put = cg.trace(f64[2], f64[()])(lambda a, d: a * d)
    assert p.lens(q, get, put).get is get
    wrong_get_dom = cg.trace(f64[3])(lambda a: (a * a).sum())
    wrong_get_cod = cg.ops.sin(f64[2])
    wrong_put_dom = cg.trace(f64[2], f64[2])(lambda a, d: a * d)
    wrong_put_cod = cg.trace(f64[2], f64[()])(lambda a, d: (a * d).sum())
    for g, u in [(wrong_get_dom, put), (wrong_get_cod, put), (get, wrong_put_dom), (get, wrong_put_cod)]:
        with pytest.raises(cg.CatgradTypeError, match="a lens .* needs get"):
            p.lens(q, g, u)


def test_stream_splits_many_wire_objects_and_wraps_one_wire_objects():
    x, y = np.array([1.0, 2.0]), np.array(3.0)
    assert [(a, b) for a, b in stream([(x, y)], f64[2], f64[()])] == [([x], [y])]
    pairs = list(stream([((x, x), (y, y))], f64[2] @ f64[2], f64[()] @ f64[()]))
    assert len(pairs[0][0]) == 2 and len(pairs[0][1]) == 2
    assert pairs[0][0][1] is x and pairs[0][1][1] is y
