"""Python-built models for the training tests: dense layers and MLPs as cg.Para."""

import catgrad as cg

ACT = {"sigmoid": cg.ops.sigmoid, "relu": cg.ops.relu, "tanh": cg.ops.tanh, None: None}


def dense(d_in, d_out, act="sigmoid", batch="B", dtype=cg.f64, w_init=None, b_init=None, prefix=""):
    """act(x W + b): params W : [d_in, d_out], b : [d_out]; x : [batch, d_in] (or [d_in] if batch is None)."""
    x_t = dtype[d_in] if batch is None else dtype[batch, d_in]
    f = ACT[act]

    def body(b, ins):
        W, bias, x = ins
        z = x @ W + (bias if batch is None else bias.broadcast(batch, d_out))
        return [f(z) if f else z]

    d = cg.build(cg.Ob(dtype[d_in, d_out], dtype[d_out], x_t), body)
    params = [cg.Param(prefix + "W", dtype[d_in, d_out], w_init or cg.init.glorot()),
              cg.Param(prefix + "b", dtype[d_out], b_init or cg.init.zeros())]
    return cg.Para(params, d)


def mlp(widths, act="sigmoid", last=None, **kw):
    """Dense layers d0 -> d1 -> ... ; ``last`` is the final activation (default: same as ``act``)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(dense(a, b, act if i < len(widths) - 2 else (last if last != "same" else act), prefix=f"l{i}.", **kw))
    model = layers[0]
    for layer in layers[1:]:
        model = model >> layer
    return model
