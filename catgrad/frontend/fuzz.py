"""Fuzzing harness for the front end (used by tests/test_lang_fuzz.py and
benchmarks/fuzz_frontend.py; needs hypothesis, a dev dependency).

The property: for any text, ``catgrad check`` either accepts it (exit 0) or prints
located diagnostics (exit 1); nothing else (no traceback, no hang, no other code).
Inputs come from two sources: hypothesis-generated programs over the language's
vocabulary (well-typed ones and near misses), and random mutations of the examples
and the prelude (deleting, duplicating, swapping and inserting tokens, lines and
characters).
"""

from __future__ import annotations

import random
import re
import signal
from contextlib import contextmanager

from .diagnostics import render_all
from .loader import check_text

TYPES = ["f32[B, 4]", "f32[B, 3]", "f32[4]", "f64[3]", "f64[]", "bit[8]", "bit[N]", "f32[n, m]", "(f32[3], f32[3])",
         "float[B, 4]", "float[4]"]
OPS = ["exp", "sin", "tanh", "relu", "sigmoid", "sum", "add", "mul", "softmax", "transpose", "not", "or", "xor",
       "and", "id", "copy", "discard", "swap", "perm", "nn.dense", "nn.layer", "loss.mse", "circuits.half_adder", "train_eval", "nn.batchnorm[4]"]
INFIX = [">>", "@", "+", "-", "*", "/", "^", "&", "|", "**"]
TOKENS = INFIX + ["(", ")", "[", "]", "{", "}", ",", "=", ":", "->", "~", "let", "param", "state", "update", "def", "import", "\n",
                  "x", "y", "0", "2.5", '"s"', "f32[3]", "#", "##", "glorot", "nn.dense[4, 3]", "B", "-", "~"]


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_exit_code(text: str, path: str = "<fuzz>.cat") -> int:
    """What ``catgrad check`` would return for ``text``: 0 or 1. Any other outcome
    (an exception escaping) is a bug and propagates."""
    session, _ = check_text(text, path)
    if session.diagnostics:
        out = render_all(session.diagnostics, session.sources)
        if not out or "Traceback" in out:
            raise AssertionError("empty or traceback-like diagnostics")
        return 1
    return 0


# -- mutations ---------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_']*|[0-9.]+|>>|->|\*\*|\S|\n")


def mutate(text: str, rng: random.Random, rounds: int = 3) -> str:
    for _ in range(rng.randint(1, rounds)):
        toks = _TOKEN_RE.findall(text) or [""]
        k = rng.randrange(9)
        i = rng.randrange(len(toks))
        if k == 0:  # delete a token
            del toks[i]
            text = " ".join(toks).replace(" \n ", "\n")
        elif k == 1:  # insert a vocabulary token
            toks.insert(i, rng.choice(TOKENS))
            text = " ".join(toks).replace(" \n ", "\n")
        elif k == 2:  # replace a token
            toks[i] = rng.choice(TOKENS + OPS)
            text = " ".join(toks).replace(" \n ", "\n")
        elif k == 3:  # duplicate a token run
            j = min(len(toks), i + rng.randint(1, 8))
            toks[i:i] = toks[i:j]
            text = " ".join(toks).replace(" \n ", "\n")
        elif k == 4:  # delete or duplicate a line
            lines = text.split("\n")
            j = rng.randrange(len(lines))
            if rng.random() < 0.5:
                del lines[j]
            else:
                lines.insert(j, lines[j])
            text = "\n".join(lines)
        elif k == 5:  # swap two lines
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif k == 6:  # flip a character
            if text:
                j = rng.randrange(len(text))
                text = text[:j] + chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x2FFF)])) + text[j + 1:]
        elif k == 7:  # change a number
            nums = list(re.finditer(r"\b[0-9]+\b", text))
            if nums:
                m = rng.choice(nums)
                text = text[: m.start()] + str(rng.choice([0, 1, 2, 3, 7, 64, 10**9])) + text[m.end():]
        else:  # truncate
            text = text[: rng.randrange(len(text) + 1)]
    return text


# -- hypothesis programs -------------------------------------------------------------------


def programs():
    """A hypothesis strategy for program texts over the language's vocabulary."""
    from hypothesis import strategies as st

    names = st.sampled_from(["x", "y", "z", "h", "a", "b"])
    atoms = st.one_of(names, st.sampled_from(["1", "2.0", "0.5", "()"]))

    def extend(sub):
        return st.one_of(
            st.builds(lambda l, o, r: f"{l} {o} {r}", sub, st.sampled_from(INFIX), sub),
            st.builds(lambda f, xs: f"{f}({', '.join(xs)})", st.sampled_from(OPS), st.lists(sub, max_size=3)),
            st.builds(lambda f, d: f"{f}[{d}]", st.sampled_from(["nn.dense", "id", "copy", "swap", "perm", "x"]),
                      st.sampled_from(["4, 3", "2", "1, 1", "2, 0, 1", "n, m", ""])),
            st.builds(lambda xs: "(" + ", ".join(xs) + ")", st.lists(sub, min_size=2, max_size=3)),
            st.builds(lambda e: f"-{e}", sub),
            st.builds(lambda e, k: f"sum({e}, {k}=1)", sub, st.sampled_from(["axes", "axis", "keepdims"])),
        )

    exprs = st.recursive(atoms, extend, max_leaves=8)
    params = st.lists(st.builds(lambda n, t: f"{n} : {t}", st.sampled_from(["x", "y", "a"]), st.sampled_from(TYPES)),
                      min_size=0, max_size=3)
    stmt = st.one_of(
        st.builds(lambda n, e: f"  let {n} = {e}", names, exprs),
        st.builds(lambda n, t, i: f"  param {n} : {t} ~ {i}", st.sampled_from(["W", "b", "x"]),
                  st.sampled_from(TYPES), st.sampled_from(["glorot", "zeros", "normal(0.1)", "uniform(0, 1)",
                                                           "bits(0.5)", "glorx", "he(3)"])),
        st.builds(lambda n, t, i: f"  state {n} : {t} ~ {i}", st.sampled_from(["s", "x"]),
                  st.sampled_from(TYPES), st.sampled_from(["zeros", "ones", "key"])),
        st.builds(lambda n, e: f"  update {n} = {e}", st.sampled_from(["s", "x", "q"]), exprs),
    )

    def pointful(name, dims, ps, ret, stmts, e):
        head = f"def {name}{dims}({', '.join(ps)})" + (f" -> {ret}" if ret else "")
        if stmts:
            return head + " {\n" + "\n".join(stmts) + f"\n  {e}\n}}"
        return f"{head} = {e}"

    def pointfree(name, sig, e):
        return f"def {name}{sig} = {e}"

    d = st.one_of(
        st.builds(pointful, st.sampled_from(["f", "g", "main"]), st.sampled_from(["", "[n]", "[n, m]"]), params,
                  st.one_of(st.just(""), st.sampled_from(TYPES)), st.lists(stmt, max_size=3), exprs),
        st.builds(pointfree, st.sampled_from(["f", "g", "pf"]),
                  st.sampled_from(["", " : f32[B, 4] -> f32[B, 3]", " : (f64[3], f64[3]) -> f64[3]", " : bit[8] -> bit[8]"]),
                  st.builds(lambda xs: " >> ".join(xs), st.lists(st.sampled_from(OPS + ["nn.dense[4, 3]", "f", "g"]),
                                                               min_size=1, max_size=4))),
    )
    header = st.sampled_from(["", "import nn\n", "import nn\nimport loss\nimport circuits\n", "import nope\n"])
    return st.builds(lambda h, ds: h + "\n".join(ds) + "\n", header, st.lists(d, min_size=1, max_size=4))
