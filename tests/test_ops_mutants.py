"""Tests that close the classes of mutants of ``catgrad.ops`` that survived the rest of
the suite (docs/testing.md, mutation testing; each mutant run in a fresh process):

- every error an op's type rule (or kernel) raises: its class exactly and its whole
  message, plus the boundary inputs that each check must still accept;
- the numpy kernels in every call form (value, strided inputs, into ``out=``, into a
  strided ``out``, written out as their inline templates) against plain numpy, loops over
  every window, or torch: sums over every set of axes, convolutions on each layout and
  block path, unfold/fold/pools, two-operand einsum of every index mix, comparisons;
- working arrays: conv reuses its blocks (also a shorter last block) and keeps a zero
  border in reused memory; unfold and tiling fold copy straight into ``out``;
- the torch rules against the same references, and plain products spelled as matmul;
- reverse derivatives against torch.autograd at the attributes tests/test_ops.py leaves
  out (axes, keepdims, symbolic sizes, negative and repeated indices, ties);
- random numbers: the lowbias32 hash, every key bit, numpy = torch, precision, statistics;
- the sympy rules, the constant helpers and the op functions.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import catgrad as cg
from catgrad.errors import AttributeValueError, CatgradTypeError, ShapeError, SymbolicSizeError, UnknownOpError
from catgrad.compiler import compile_numpy, prepare
from test_rd_references import rel_err, torch_vjp

O = cg.ops
f64, f32, i64, bit = cg.f64, cg.f32, cg.i64, cg.bit

# -- errors: (what raises it, the exact class, the whole message) ---------------------------------

ERRORS = {
    "unknown op": (lambda: O.softmx, UnknownOpError, "unknown op 'softmx' (did you mean 'softmax'?)"),
    "maximum on bits": (lambda: O.maximum(bit[3], bit[3]), CatgradTypeError,
                        "maximum is not defined on bits, got bit[3]"),
    "ge on bits": (lambda: O.ge(bit[3], bit[3]), CatgradTypeError, "ge is not defined on bits, got bit[3]"),
    "pow p a string": (lambda: O.pow(f64[3], p="2"), CatgradTypeError,
                       "pow: the exponent p must be a number, got '2'"),
    "pow p a bool": (lambda: O.pow(f64[3], p=True), CatgradTypeError,
                     "pow: the exponent p must be a number, got True"),
    "pow on ints": (lambda: O.pow(i64[3], p=2), CatgradTypeError,
                    "pow needs a float input (f32 or f64), got i64[3]"),
    "constant type": (lambda: O.constant(type=3, value=1.0), CatgradTypeError,
                      "constant needs type=<a wire type>, got 3"),
    "constant value": (lambda: O.constant(type=f64[3], value="1"), CatgradTypeError,
                       "constant value must be a number, got '1'"),
    "constant bool": (lambda: O.constant(type=f64[3], value=True), CatgradTypeError,
                      "constant value must be a number, got True"),
    "bit constant": (lambda: O.constant(type=bit[3], value=2), CatgradTypeError,
                     "a bit constant must be 0 or 1, got 2"),
    "cast dtype": (lambda: O.cast(f64[3], dtype="f16x"), CatgradTypeError,
                   "cast needs dtype= one of ['bf16', 'bit', 'f32', 'f64', 'i64']"),
    "cast no dtype": (lambda: O.cast(f64[3], dtype=None), CatgradTypeError,
                      "cast needs dtype= one of ['bf16', 'bit', 'f32', 'f64', 'i64']"),
    "where on bits": (lambda: O.where(bit[3], bit[3], bit[3]), CatgradTypeError,
                      "where is not defined on bits (use c x + (1 + c) y), got bit[3]"),
    "where types": (lambda: O.where(f64[3], f64[3], f32[3]), CatgradTypeError,
                    "where needs inputs of one type, got f64[3] and f32[3]"),
    "all_reduce of nothing": (lambda: O.all_reduce(), CatgradTypeError, "all_reduce takes at least one wire"),
    "all_reduce on ints": (lambda: O.all_reduce(f64[2], i64[3]), CatgradTypeError,
                           "all_reduce needs a float input (f32 or f64), got i64[3]"),
    # conv
    "conv rank": (lambda: O.conv(f64[2, 3], f64[4, 3]), CatgradTypeError,
                  "conv needs x : [N, C, *spatial] and w : [Cout, C / groups, *kernel] of one rank, "
                  "got f64[2, 3] and f64[4, 3]"),
    "conv ranks differ": (lambda: O.conv(f64[2, 3, 5], f64[4, 3, 2, 2]), CatgradTypeError,
                          "conv needs x : [N, C, *spatial] and w : [Cout, C / groups, *kernel] of one rank, "
                          "got f64[2, 3, 5] and f64[4, 3, 2, 2]"),
    "conv dtypes": (lambda: O.conv(f64[2, 3, 5], f32[4, 3, 2]), CatgradTypeError,
                    "conv: input and weight must share a dtype, got f64[2, 3, 5] and f32[4, 3, 2]"),
    "conv on ints": (lambda: O.conv(i64[2, 3, 5], i64[4, 3, 2]), CatgradTypeError,
                     "conv needs a float input (f32 or f64), got i64[2, 3, 5]"),
    "conv groups 0": (lambda: O.conv(f64[2, 4, 5], f64[4, 4, 2], groups=0), CatgradTypeError,
                      "conv: groups must be an int >= 1, got 0"),
    "conv groups bool": (lambda: O.conv(f64[2, 4, 5], f64[4, 4, 2], groups=True), CatgradTypeError,
                         "conv: groups must be an int >= 1, got True"),
    "conv groups float": (lambda: O.conv(f64[2, 4, 5], f64[4, 4, 2], groups=1.0), CatgradTypeError,
                          "conv: groups must be an int >= 1, got 1.0"),
    "conv symbolic kernel": (lambda: O.conv(f64[2, 4, 5], f64[4, 4, "K"]), SymbolicSizeError,
                             "conv: the kernel sizes must be fixed numbers, got f64[4, 4, K]"),
    "conv channels": (lambda: O.conv(f64[2, 4, 5], f64[4, 3, 2]), CatgradTypeError,
                      "conv: the weight f64[4, 3, 2] should have 4 input channels, as f64[2, 4, 5] has"),
    "conv symbolic groups in": (lambda: O.conv(f64[2, "C", 5], f64[4, 2, 2], groups=2), SymbolicSizeError,
                                "conv: with groups, channel sizes must be fixed numbers, got f64[2, C, 5] and f64[4, 2, 2]"),
    "conv symbolic groups out": (lambda: O.conv(f64[2, 4, 5], f64["D", 2, 2], groups=2), SymbolicSizeError,
                                 "conv: with groups, channel sizes must be fixed numbers, got f64[2, 4, 5] and f64[D, 2, 2]"),
    "conv symbolic groups w": (lambda: O.conv(f64[2, 4, 5], f64[4, "E", 2], groups=2), SymbolicSizeError,
                               "conv: with groups, channel sizes must be fixed numbers, got f64[2, 4, 5] and f64[4, E, 2]"),
    "conv groups out": (lambda: O.conv(f64[2, 4, 5], f64[3, 2, 2], groups=2), CatgradTypeError,
                        "conv: 4 input and 3 output channels must both divide by groups = 2"),
    "conv groups in": (lambda: O.conv(f64[2, 3, 5], f64[4, 1, 2], groups=2), CatgradTypeError,
                       "conv: 3 input and 4 output channels must both divide by groups = 2"),
    "conv group channels": (lambda: O.conv(f64[2, 4, 5], f64[4, 1, 2], groups=2), CatgradTypeError,
                            "conv: the weight f64[4, 1, 2] should have 2 input channels "
                            "(= 4 channels of f64[2, 4, 5] / groups 2)"),
    "conv span": (lambda: O.conv(f64[2, 4, 5], f64[4, 4, 6]), CatgradTypeError,
                  "conv: the kernel spans 6 pixels on spatial axis 0 but the padded input has only 5 "
                  "(size 5 + 2 x padding 0) in f64[2, 4, 5]"),
    "grouped conv span": (lambda: O.conv(f64[2, 4, 5], f64[4, 2, 6], groups=2), CatgradTypeError,
                          "conv: the kernel spans 6 pixels on spatial axis 0 but the padded input has only 5 "
                          "(size 5 + 2 x padding 0) in f64[2, 4, 5]"),
    # window geometry
    "unfold no spatial axis": (lambda: O.unfold(f64[2, 3], kernel=2), CatgradTypeError,
                               "unfold needs an input [N, C, *spatial] with at least one spatial axis, got f64[2, 3]"),
    "unfold symbolic": (lambda: O.unfold(f64[2, 3, "S"], kernel=2), SymbolicSizeError,
                        "unfold: the spatial sizes of f64[2, 3, S] must be fixed numbers"),
    "fold kernel too wide": (lambda: O.fold(f64[1, 1, 2, 2], kernel=5, size=(3,)), CatgradTypeError,
                             "fold: the kernel spans 5 pixels on spatial axis 0 but the padded input has only 3 "
                             "(size 3 + 2 x padding 0) in f64[1, 1, 3]"),
    "fold stride 0": (lambda: O.fold(f64[1, 1, 2, 2], kernel=2, size=(3,), stride=0), CatgradTypeError,
                      "fold: stride must be an int >= 1 or 1 of them (one per spatial axis), got 0"),
    "kernel 0": (lambda: O.unfold(f64[2, 3, 5], kernel=0), CatgradTypeError,
                 "unfold: kernel must be an int >= 1 or 1 of them (one per spatial axis), got 0"),
    "kernel tuple length": (lambda: O.unfold(f64[2, 3, 5, 5], kernel=(2, 2, 2)), CatgradTypeError,
                            "unfold: kernel must be an int >= 1 or 2 of them (one per spatial axis), got (2, 2, 2)"),
    "kernel entry 0": (lambda: O.unfold(f64[2, 3, 5, 5], kernel=(2, 0)), CatgradTypeError,
                       "unfold: kernel must be an int >= 1 or 2 of them (one per spatial axis), got (2, 0)"),
    "kernel bool": (lambda: O.unfold(f64[2, 3, 5], kernel=True), CatgradTypeError,
                    "unfold: kernel must be an int >= 1 or 1 of them (one per spatial axis), got True"),
    "kernel entry bool": (lambda: O.unfold(f64[2, 3, 5], kernel=(True,)), CatgradTypeError,
                          "unfold: kernel must be an int >= 1 or 1 of them (one per spatial axis), got (True,)"),
    "kernel a string": (lambda: O.unfold(f64[2, 3, 5], kernel="2"), CatgradTypeError,
                        "unfold: kernel must be an int >= 1 or 1 of them (one per spatial axis), got '2'"),
    "stride 0": (lambda: O.unfold(f64[2, 3, 5], kernel=2, stride=0), CatgradTypeError,
                 "unfold: stride must be an int >= 1 or 1 of them (one per spatial axis), got 0"),
    "padding -1": (lambda: O.unfold(f64[2, 3, 5], kernel=2, padding=-1), CatgradTypeError,
                   "unfold: padding must be an int >= 0 or 1 of them (one per spatial axis), got -1"),
    "dilation 0": (lambda: O.unfold(f64[2, 3, 5], kernel=2, dilation=0), CatgradTypeError,
                   "unfold: dilation must be an int >= 1 or 1 of them (one per spatial axis), got 0"),
    "unfold span": (lambda: O.unfold(f64[2, 3, 5, 4], kernel=(2, 3), dilation=(1, 3), padding=(0, 1)),
                    CatgradTypeError,
                    "unfold: the kernel spans 7 pixels on spatial axis 1 but the padded input has only 6 "
                    "(size 4 + 2 x padding 1) in f64[2, 3, 5, 4]"),
    "unfold fill": (lambda: O.unfold(f64[2, 3, 5], kernel=2, fill="0"), CatgradTypeError,
                    "unfold: fill must be a number, got '0'"),
    "unfold fill bool": (lambda: O.unfold(f64[2, 3, 5], kernel=2, fill=False), CatgradTypeError,
                         "unfold: fill must be a number, got False"),
    "fold size": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=5), CatgradTypeError,
                  "fold: size must list the output's spatial sizes, got 5"),
    "fold size empty": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=()), CatgradTypeError,
                        "fold: size must list the output's spatial sizes, got ()"),
    "fold size 0": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=(0,)), CatgradTypeError,
                    "fold: size must list the output's spatial sizes, got (0,)"),
    "fold size float": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=(5.0,)), CatgradTypeError,
                        "fold: size must list the output's spatial sizes, got (5.0,)"),
    "fold rank": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=(5, 5)), CatgradTypeError,
                  "fold: size (5, 5) has 2 spatial axes, so the input needs rank 6, got f64[2, 3, 4, 2]"),
    "fold windows": (lambda: O.fold(f64[2, 3, 3, 2], kernel=2, size=(5,)), CatgradTypeError,
                     "fold: windows of f64[2, 3, 5] with this geometry have type [N, C, *(4,), *(2,)], "
                     "got f64[2, 3, 3, 2]"),
    "pool padding": (lambda: O.maxpool(f64[2, 3, 6, 6], kernel=(2, 3), padding=(1, 2)), CatgradTypeError,
                     "maxpool: padding (1, 2) must be at most half the kernel (2, 3)"),
    "pool window in padding": (lambda: O.avgpool(f64[2, 3, 2], kernel=2, dilation=3, padding=1, stride=1),
                               CatgradTypeError,
                               "avgpool: window 0 on spatial axis 0 of f64[2, 3, 2] lies wholly in the padding "
                               "(kernel (2,), stride (1,), padding (1,), dilation (3,))"),
    "pool on ints": (lambda: O.maxpool(i64[2, 3, 6], kernel=2), CatgradTypeError,
                     "maxpool needs a float input (f32 or f64), got i64[2, 3, 6]"),
    # einsum and friends
    "spec arrow": (lambda: O.einsum(f64[3], spec="i"), CatgradTypeError,
                   "einsum spec must look like 'ij,jk->ik', got 'i'"),
    "spec type": (lambda: O.einsum(f64[3], spec=3), CatgradTypeError,
                  "einsum spec must look like 'ij,jk->ik', got 3"),
    "spec count": (lambda: O.einsum(f64[3], f64[3], spec="i->i"), CatgradTypeError,
                   "einsum spec 'i->i' names 1 operand(s) but 2 were given"),
    "spec letters": (lambda: O.einsum(f64[3], spec="1->1"), CatgradTypeError,
                     "einsum spec '1->1': indices must be letters"),
    "spec output letters": (lambda: O.einsum(f64[3], spec="i->_"), CatgradTypeError,
                            "einsum spec 'i->_': indices must be letters"),
    "spec repeat": (lambda: O.einsum(f64[3, 3], spec="ii->i"), CatgradTypeError,
                    "einsum spec 'ii->i': index repeated within 'ii'"),
    "spec repeat in output": (lambda: O.einsum(f64[3], spec="i->ii"), CatgradTypeError,
                              "einsum spec 'i->ii': index repeated within 'ii'"),
    "einsum dtypes": (lambda: O.einsum(f64[3], f32[3], spec="i,i->i"), CatgradTypeError,
                      "einsum operands must share a dtype, got f64[3] and f32[3]"),
    "einsum rank": (lambda: O.einsum(f64[3], f64[3, 2], spec="i,i->i"), CatgradTypeError,
                    "einsum 'i,i->i': operand 'i' has rank 1 but the wire is f64[3, 2]"),
    "einsum size": (lambda: O.einsum(f64[3], f64[2], spec="i,i->i"), CatgradTypeError,
                    "einsum 'i,i->i': index 'i' is 3 in one operand and 2 in f64[2]"),
    "einsum output": (lambda: O.einsum(f64[3], f64[3], spec="i,i->j"), CatgradTypeError,
                      "einsum 'i,i->j': output index 'j' is in no operand"),
    "einsum lone index": (lambda: O.einsum(f64[3], f64[3, 2], spec="i,ij->i"), CatgradTypeError,
                          "einsum 'i,ij->i': index 'j' occurs only in operand 1; sum it with the sum op first"),
    "matmul rank 0": (lambda: O.matmul(f64[()], f64[3]), CatgradTypeError,
                      "matmul needs operands of rank >= 1, got f64[] and f64[3]"),
    "matmul rank 0 right": (lambda: O.matmul(f64[3], f64[()]), CatgradTypeError,
                            "matmul needs operands of rank >= 1, got f64[3] and f64[]"),
    "matmul batched ranks": (lambda: O.matmul(f64[2, 3], f64[4, 3, 5]), CatgradTypeError,
                             "batched matmul needs equal ranks, got f64[2, 3] and f64[4, 3, 5]"),
    "matmul letters": (lambda: O.matmul(f64[(1,) * 52], f64[1, 1]), CatgradTypeError,
                       "matmul of a rank-52 and a rank-2 operand needs 53 einsum indices; there are 52 "
                       "(the letters a-z, A-Z)"),
    "matmul letters, vector": (lambda: O.matmul(f64[(1,) * 53], f64[1]), CatgradTypeError,
                               "matmul of a rank-53 and a rank-1 operand needs 53 einsum indices; there are 52 "
                               "(the letters a-z, A-Z)"),
    "batched matmul": (lambda: O.matmul(f64[2, 3, 4], f64[5, 2, 4, 3]), CatgradTypeError,
                       "batched matmul needs equal ranks, got f64[2, 3, 4] and f64[5, 2, 4, 3]"),
    "matmul arity": (lambda: O.matmul(f64[3]), CatgradTypeError, "matmul takes 2 operands, got 1"),
    "transpose": (lambda: O.transpose(f64[2, 3], perm=(0, 0)), CatgradTypeError,
                  "transpose: (0, 0) is not a permutation of the axes of f64[2, 3]"),
    "reshape": (lambda: O.reshape(f64[2, 3], shape=(4, 2)), CatgradTypeError,
                "reshape: f64[2, 3] has a different number of elements from f64[4, 2]"),
    "reshape symbolic": (lambda: O.reshape(f64["B", 3], shape=(3, "C")), CatgradTypeError,
                         "reshape: f64[B, 3] has a different number of elements from f64[3, C]"),
    "reshape symbolic count": (lambda: O.reshape(f64["B", "B"], shape=("B", 1)), CatgradTypeError,
                               "reshape: f64[B, B] has a different number of elements from f64[B, 1]"),
    "broadcast fewer": (lambda: O.broadcast(f64[2, 3], shape=(3,)), CatgradTypeError,
                        "broadcast: cannot broadcast f64[2, 3] to fewer axes (3,)"),
    "broadcast": (lambda: O.broadcast(f64[2, 3], shape=(2, 4)), CatgradTypeError,
                  "broadcast: cannot broadcast f64[2, 3] to shape (2, 4)"),
    # one axis of fixed size
    "slice axis": (lambda: O.slice(f64[3], axis=1, start=0, stop=1), CatgradTypeError,
                   "slice: axis 1 is out of range for f64[3]"),
    "slice axis negative": (lambda: O.slice(f64[3], axis=-2, start=0, stop=1), CatgradTypeError,
                            "slice: axis -2 is out of range for f64[3]"),
    "slice axis float": (lambda: O.slice(f64[3], axis=0.0, start=0, stop=1), AttributeValueError,
                         "slice: axis must be one integer, got 0.0"),
    "slice symbolic": (lambda: O.slice(f64[2, "B"], axis=-1, start=0, stop=1), SymbolicSizeError,
                       "slice: axis 1 of f64[2, B] has the symbolic size B; it needs a fixed size"),
    "slice past the end": (lambda: O.slice(f64[3, 4], axis=1, start=2, stop=5), CatgradTypeError,
                           "slice: need 0 <= start <= stop <= 4 on axis 1 of f64[3, 4], got 2:5"),
    "slice reversed": (lambda: O.slice(f64[3, 4], axis=-1, start=3, stop=2), CatgradTypeError,
                       "slice: need 0 <= start <= stop <= 4 on axis 1 of f64[3, 4], got 3:2"),
    "slice negative": (lambda: O.slice(f64[3, 4], axis=1, start=-1, stop=2), CatgradTypeError,
                       "slice: need 0 <= start <= stop <= 4 on axis 1 of f64[3, 4], got -1:2"),
    "slice float start": (lambda: O.slice(f64[3, 4], axis=1, start=0.0, stop=2), CatgradTypeError,
                          "slice: need 0 <= start <= stop <= 4 on axis 1 of f64[3, 4], got 0.0:2"),
    "slice float stop": (lambda: O.slice(f64[3, 4], axis=1, start=0, stop=2.0), CatgradTypeError,
                         "slice: need 0 <= start <= stop <= 4 on axis 1 of f64[3, 4], got 0:2.0"),
    "pad before": (lambda: O.pad(f64[3], axis=0, before=-1, after=0), CatgradTypeError,
                   "pad: before and after must be counts >= 0, got -1, 0"),
    "pad after": (lambda: O.pad(f64[3], axis=0, before=0, after=1.0), CatgradTypeError,
                  "pad: before and after must be counts >= 0, got 0, 1.0"),
    "pad axis": (lambda: O.pad(f64[3], axis=3, before=0, after=1), CatgradTypeError,
                 "pad: axis 3 is out of range for f64[3]"),
    "pad symbolic": (lambda: O.pad(f64["B", 2], axis=0, before=0, after=1), SymbolicSizeError,
                     "pad: axis 0 of f64[B, 2] has the symbolic size B; it needs a fixed size"),
    # random
    "random attribute": (lambda: O.uniform(i64[()], type=f64[3], lo=0.0), CatgradTypeError,
                         "uniform: unknown attribute 'lo' (did you mean 'low'?); it takes: type, low, high"),
    "random attribute far": (lambda: O.normal(i64[()], type=f64[3], zzz=0.0), CatgradTypeError,
                             "normal: unknown attribute 'zzz'; it takes: type, mean, std"),
    "random key shape": (lambda: O.normal(i64[3], type=f64[3]), CatgradTypeError,
                         "normal: the key must be an i64[] wire, got i64[3]"),
    "random key dtype": (lambda: O.uniform(f64[()], type=f64[3]), CatgradTypeError,
                         "uniform: the key must be an i64[] wire, got f64[]"),
    "random key count": (lambda: O.uniform(i64[()], i64[()], type=f64[3]), CatgradTypeError,
                         "uniform takes 1 input(s), got 2: (i64[], i64[])"),
    "random type int": (lambda: O.normal(i64[()], type=i64[3]), CatgradTypeError,
                        "normal needs type=<a float wire type>, got i64[3]"),
    "random type name": (lambda: O.bernoulli(i64[()], type="f64"), CatgradTypeError,
                         "bernoulli needs type=<a float wire type>, got 'f64'"),
    "random number": (lambda: O.normal(i64[()], type=f64[3], std="1"), CatgradTypeError,
                      "normal: std must be a number, got '1'"),
    "random number bool": (lambda: O.uniform(i64[()], type=f64[3], low=True), CatgradTypeError,
                           "uniform: low must be a number, got True"),
    "bernoulli p > 1": (lambda: O.bernoulli(i64[()], type=f64[3], p=1.5), CatgradTypeError,
                        "bernoulli: p must lie in [0, 1], got 1.5"),
    "bernoulli p < 0": (lambda: O.bernoulli(i64[()], type=f64[3], p=-0.1), CatgradTypeError,
                        "bernoulli: p must lie in [0, 1], got -0.1"),
    "random_split key": (lambda: O.random_split(i64[2]), CatgradTypeError,
                         "random_split: the key must be an i64[] wire, got i64[2]"),
    # reductions
    "keepdims 1": (lambda: O.sum(f64[3], keepdims=1), CatgradTypeError, "sum: keepdims must be true or false, got 1"),
    "keepdims yes": (lambda: O.max(f64[3], keepdims="yes"), CatgradTypeError,
                     "max: keepdims must be true or false, got 'yes'"),
    "keepdims None": (lambda: O.logsumexp(f64[3], keepdims=None), CatgradTypeError,
                      "logsumexp: keepdims must be true or false, got None"),
    "mean keepdims": (lambda: O.mean(f64[3], keepdims=0), CatgradTypeError,
                      "mean: keepdims must be true or false, got 0"),
    "max on bits": (lambda: O.max(bit[3]), CatgradTypeError, "max is not defined on bits, got bit[3]"),
    "max axis": (lambda: O.max(f64[3], axes=(1,)), CatgradTypeError, "max: axis 1 is out of range for f64[3]"),
    "logsumexp on ints": (lambda: O.logsumexp(i64[3]), CatgradTypeError,
                          "logsumexp needs a float input (f32 or f64), got i64[3]"),
    "mean on ints": (lambda: O.mean(i64[3]), CatgradTypeError, "mean needs a float input (f32 or f64), got i64[3]"),
    "softmax axis": (lambda: O.softmax(f64[3], axis=1), CatgradTypeError, "softmax: axis 1 is out of range for f64[3]"),
    "softmax on ints": (lambda: O.softmax(i64[3]), CatgradTypeError,
                        "softmax needs a float input (f32 or f64), got i64[3]"),
    # concat, split, take, scatter_add
    "concat of nothing": (lambda: O.concat(), CatgradTypeError, "concat needs at least one input"),
    "concat dtypes": (lambda: O.concat(f64[2], f32[2]), CatgradTypeError,
                      "concat: inputs must share a dtype and rank, got f64[2] and f32[2]"),
    "concat ranks": (lambda: O.concat(f64[2], f64[2, 1]), CatgradTypeError,
                     "concat: inputs must share a dtype and rank, got f64[2] and f64[2, 1]"),
    "concat shapes": (lambda: O.concat(f64[2, 3], f64[3, 3], axis=1), CatgradTypeError,
                      "concat: inputs may differ only along axis 1, got f64[2, 3] and f64[3, 3]"),
    "concat axis": (lambda: O.concat(f64[2], f64[2], axis=1), CatgradTypeError,
                    "concat: axis 1 is out of range for f64[2]"),
    "concat symbolic": (lambda: O.concat(f64[2], f64["B"]), SymbolicSizeError,
                        "concat: axis 0 of f64[B] has the symbolic size B; it needs a fixed size"),
    "split no sizes": (lambda: O.split(f64[4], axis=0, sizes=()), CatgradTypeError,
                       "split: sizes must be a list of counts, got ()"),
    "split negative": (lambda: O.split(f64[4], axis=0, sizes=(5, -1)), CatgradTypeError,
                       "split: sizes must be a list of counts, got (5, -1)"),
    "split float": (lambda: O.split(f64[4], axis=0, sizes=(2.0, 2)), CatgradTypeError,
                    "split: sizes must be a list of counts, got (2.0, 2)"),
    "split int": (lambda: O.split(f64[4], axis=0, sizes=4), CatgradTypeError,
                  "split: sizes must be a list of counts, got 4"),
    "split total": (lambda: O.split(f64[2, 4], axis=-1, sizes=(1, 2)), CatgradTypeError,
                    "split: sizes (1, 2) add up to 3 but axis 1 of f64[2, 4] has 4"),
    "split axis": (lambda: O.split(f64[2, 4], axis=2, sizes=(1, 1)), CatgradTypeError,
                   "split: axis 2 is out of range for f64[2, 4]"),
    "take indices": (lambda: O.take(f64[5, 3], f64[2]), CatgradTypeError, "take: indices must be i64, got f64[2]"),
    "take table": (lambda: O.take(f64[()], i64[2]), CatgradTypeError,
                   "take: the table must have rank >= 1 (rows first), got f64[]"),
    "scatter indices": (lambda: O.scatter_add(f64[2], f64[2, 3], size=4), CatgradTypeError,
                        "scatter_add: indices must be i64, got f64[2]"),
    "scatter source": (lambda: O.scatter_add(i64[2], f64[3, 3], size=4), CatgradTypeError,
                       "scatter_add: the source f64[3, 3] must start with the index shape (2,)"),
    "scatter size": (lambda: O.scatter_add(i64[2], f64[2, 3], size=-1), CatgradTypeError,
                     "scatter_add: size must be a count of rows, got -1"),
    "scatter size bool": (lambda: O.scatter_add(i64[2], f64[2, 3], size=True), CatgradTypeError,
                          "scatter_add: size must be a count of rows, got True"),
    "scatter size float": (lambda: O.scatter_add(i64[2], f64[2, 3], size=4.0), CatgradTypeError,
                           "scatter_add: size must be a count of rows, got 4.0"),
    # Z2
    "not on floats": (lambda: O.not_(f64[3]), CatgradTypeError, "not is defined on bits, got f64[3]"),
    "or on floats": (lambda: O.or_(f64[3], f64[3]), CatgradTypeError, "or is defined on bits, got f64[3]"),
    "or of two types": (lambda: O.or_(bit[2], bit[3]), CatgradTypeError,
                        "or needs inputs of one type, got bit[2] and bit[3]"),
    "maxpool kernel": (lambda: O.maxpool(f64[1, 1, 3], kernel=5), CatgradTypeError,
                       "maxpool: the kernel spans 5 pixels on spatial axis 0 but the padded input has only 3 "
                       "(size 3 + 2 x padding 0) in f64[1, 1, 3]"),
    "exp on ints": (lambda: O.exp(i64[3]), CatgradTypeError, "exp needs a float input (f32 or f64), got i64[3]"),
    "tanh on bits": (lambda: O.tanh(bit[2]), CatgradTypeError, "tanh needs a float input (f32 or f64), got bit[2]"),
    "sub of two types": (lambda: O.sub(f64[3], f32[3]), CatgradTypeError,
                         "sub needs inputs of one type, got f64[3] and f32[3]"),
    "div on ints": (lambda: O.div(i64[3], i64[3]), CatgradTypeError, "div needs a float input (f32 or f64), got i64[3]"),
    "sum axis": (lambda: O.sum(f64[2, 3], axes=5), CatgradTypeError, "sum: axis 5 is out of range for f64[2, 3]"),
    "mean axes repeated": (lambda: O.mean(f64[2, 3], axes=(1, -1)), CatgradTypeError,
                           "mean: repeated axis in (1, -1)"),
    "logsumexp axis": (lambda: O.logsumexp(f64[2, 3], axes=-3), CatgradTypeError,
                       "logsumexp: axis -3 is out of range for f64[2, 3]"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_class_and_whole_message(case):
    make, cls, message = ERRORS[case]
    with pytest.raises(cls, match="^" + re.escape(message) + "$") as e:
        make()
    assert type(e.value) is cls


def test_index_out_of_range_at_run_time():
    f = O.take(f64[3, 2], i64[2])
    with pytest.raises(ShapeError, match=r"^index 3 is out of range for a table of 3 rows \(-3 \.\. 2\)$"):
        cg.evaluate(f, np.zeros((3, 2)), np.array([0, 3]))
    with pytest.raises(ShapeError, match=r"^index -4 is out of range for a table of 3 rows \(-3 \.\. 2\)$"):
        cg.evaluate(f, np.zeros((3, 2)), np.array([-4, -3]))
    with pytest.raises(ShapeError, match=r"^index 3 is out of range for a table of 3 rows \(-3 \.\. 2\)$"):
        cg.evaluate(f, np.zeros((3, 2)), np.array([-3, 3]))  # -3 is the first row, not the culprit
    g = O.scatter_add(i64[2], f64[2], size=4)
    with pytest.raises(ShapeError, match=r"^index 4 is out of range for a table of 4 rows \(-4 \.\. 3\)$"):
        cg.evaluate(g, np.array([4, 0]), np.ones(2))


# -- the inputs each check must still accept (its boundary), with the output types -----------------

ACCEPTED = {
    "bernoulli without p": (lambda: O.bernoulli(i64[()], type=f64[3]), [f64[3]]),
    "matmul with every letter": (lambda: O.matmul(f64[(1,) * 51], f64[1, 2]), [f64[(1,) * 50 + (2,)]]),
    "matmul with every letter, vector": (lambda: O.matmul(f64[(1,) * 52], f64[1]), [f64[(1,) * 51]]),
    "slice empty at the end": (lambda: O.slice(f64[3, 4], axis=1, start=4, stop=4), [f64[3, 0]]),
    "slice whole axis, negative axis": (lambda: O.slice(f64[3, 4], axis=-2, start=0, stop=3), [f64[3, 4]]),
    "slice numpy ints": (lambda: O.slice(f64[3, 4], axis=np.int64(1), start=np.int64(1), stop=np.int32(2)),
                         [f64[3, 1]]),
    "pad nothing": (lambda: O.pad(f64[3, 4], axis=-1, before=0, after=0), [f64[3, 4]]),
    "pad numpy ints": (lambda: O.pad(f64[3], axis=0, before=np.int64(1), after=np.int64(2)), [f64[6]]),
    "pad symbolic elsewhere": (lambda: O.pad(f64["B", 4], axis=1, before=1, after=0), [f64["B", 5]]),
    "bernoulli p = 0": (lambda: O.bernoulli(i64[()], type=f64[2], p=0.0), [f64[2]]),
    "bernoulli p = 1": (lambda: O.bernoulli(i64[()], type=f64[2], p=1), [f64[2]]),
    "uniform bounds": (lambda: O.uniform(i64[()], type=f32[2, 3], low=-1, high=2.5), [f32[2, 3]]),
    "normal": (lambda: O.normal(i64[()], type=f64[()], mean=1.0, std=2), [f64[()]]),
    "bit constants": (lambda: O.constant(type=bit[2], value=1), [bit[2]]),
    "bit constant 0": (lambda: O.constant(type=bit[2], value=0), [bit[2]]),
    "int constant": (lambda: O.constant(type=f32[2], value=3), [f32[2]]),
    "cast by name": (lambda: O.cast(f64[2], dtype="f32"), [f32[2]]),
    "pow numpy p": (lambda: O.pow(f32[2], p=np.float32(0.5)), [f32[2]]),
    "pow int p": (lambda: O.pow(f32[2], p=np.int64(3)), [f32[2]]),
    "scatter size 0": (lambda: O.scatter_add(i64[()], f64[3], size=0), [f64[0, 3]]),
    "scatter numpy size": (lambda: O.scatter_add(i64[2, 2], f64[2, 2, 3], size=np.int64(5)), [f64[5, 3]]),
    "split with empty pieces": (lambda: O.split(f64[2, 4], axis=1, sizes=[0, 4, 0]), [f64[2, 0], f64[2, 4], f64[2, 0]]),
    "split numpy sizes": (lambda: O.split(f64[4], axis=-1, sizes=(np.int64(1), 3)), [f64[1], f64[3]]),
    "concat one input": (lambda: O.concat(f64[2, 3], axis=-1), [f64[2, 3]]),
    "concat symbolic elsewhere": (lambda: O.concat(f64["B", 1], f64["B", 2], axis=1), [f64["B", 3]]),
    "take from a vector": (lambda: O.take(f32[7], i64[2, 3]), [f32[2, 3]]),
    "keepdims numpy bool": (lambda: O.sum(f64[2, 3], axes=1, keepdims=np.bool_(True)), [f64[2, 1]]),
    "max keepdims": (lambda: O.max(f64[2, 3], axes=(0,), keepdims=True), [f64[1, 3]]),
    "logsumexp": (lambda: O.logsumexp(f64[2, 3, 4], axes=(0, 2)), [f64[3]]),
    "mean keepdims": (lambda: O.mean(f32[2, 3, 4], axes=(-1, 0), keepdims=True), [f32[1, 3, 1]]),
    "softmax negative axis": (lambda: O.softmax(f64[2, 3], axis=-2), [f64[2, 3]]),
    "kernel spans the padded input": (lambda: O.unfold(f64[1, 2, 5], kernel=3, dilation=3, padding=1), [f64[1, 2, 1, 3]]),
    "kernel per axis": (lambda: O.unfold(f64[1, 2, 5, 6], kernel=[2, 3], stride=(1, 3), padding=(0, 1),
                                         dilation=np.int64(1)), [f64[1, 2, 4, 2, 2, 3]]),
    "fold size as a list": (lambda: O.fold(f64[2, 3, 4, 2], kernel=2, size=[5]), [f64[2, 3, 5]]),
    "pool padding half the kernel": (lambda: O.maxpool(f64[2, 3, 6], kernel=2, padding=1), [f64[2, 3, 4]]),
    "pool stride defaults to the kernel": (lambda: O.avgpool(f64[2, 3, 7, 6], kernel=(2, 3)), [f64[2, 3, 3, 2]]),
    "pool dilation": (lambda: O.avgpool(f64[1, 1, 5], kernel=2, dilation=3, padding=1, stride=1), [f64[1, 1, 4]]),
    "conv groups numpy int": (lambda: O.conv(f64[2, 4, 5], f64[6, 2, 2], groups=np.int64(2)), [f64[2, 6, 4]]),
    "conv symbolic batch and channels": (lambda: O.conv(f64["N", "C", 5], f64["D", "C", 5]), [f64["N", "D", 1]]),
    "einsum with spaces": (lambda: O.einsum(f64[2, 3], f64[3], spec="ij, j -> i"), [f64[2]]),
    "einsum upper case": (lambda: O.einsum(f64[2, 3], spec="iJ->Ji"), [f64[3, 2]]),
    "matmul vector-matrix": (lambda: O.matmul(f64[3], f64[3, 4]), [f64[4]]),
    "matmul batched vector": (lambda: O.matmul(f64[5, 2, 3], f64[3]), [f64[5, 2]]),
    "matmul batched": (lambda: O.matmul(f64[5, 2, 3], f64[5, 3, 4]), [f64[5, 2, 4]]),
    "broadcast stretch": (lambda: O.broadcast(f64[2, 1], shape=(3, 2, 4)), [f64[3, 2, 4]]),
    "reshape symbolic": (lambda: O.reshape(f64["B", 2, 3], shape=(6, "B")), [f64[6, "B"]]),
    "transpose": (lambda: O.transpose(f64[2, 3, 4], perm=[2, 0, 1]), [f64[4, 2, 3]]),
    "all_reduce mixed floats": (lambda: O.all_reduce(f32[2], f64[()]), [f32[2], f64[()]]),
    "random_split": (lambda: O.random_split(i64[()]), [i64[()], i64[()]]),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_boundary_inputs_are_accepted(case):
    make, cod = ACCEPTED[case]
    assert make().cod == cg.Ob(*cod)


# -- numpy kernels: every call form against an independent reference ---------------------------

from catgrad.core.primitive import bind, find_rule, lookup  # noqa: E402


def _writes_out(op) -> bool:
    fn, rule = find_rule(op, "numpy")
    kernel = bind(op, "numpy", {})
    return bool(getattr(kernel, "writes_out", False) or (not rule.staged and getattr(fn, "writes_out", False)))


def _inline_forms(kernel, xs):
    """The kernel's call written out for code generators (``inline``, and ``inline_at`` for
    these operands), each as a function ``(xs, out=None) -> value`` to run like the kernel."""
    templates = []
    if getattr(kernel, "inline", None) is not None:
        templates.append((kernel.inline, []))
    if getattr(kernel, "inline_at", None) is not None:
        r = kernel.inline_at([x.shape for x in xs], [x.dtype for x in xs])
        if r is not None:
            templates.append(r)
    return [_runner(template, consts) for template, consts in templates]


def _runner(template, consts):
    for k in range(len(consts)):
        template = template.replace(f"{{c{k}}}", f"_c{k}")
    env = {"np": np, **{f"_c{k}": c for k, c in enumerate(consts)}}

    def run(xs, out=None):
        names = [f"_x{i}" for i in range(len(xs))]
        code = template.format(*names, out="" if out is None else ", out=_out")
        return eval(code, {**env, **dict(zip(names, xs)), "_out": out})  # noqa: S307 - our own template

    return run


def check_kernel(op, xs, want, rtol):
    """The numpy kernel of ``op`` on ``xs``: the value (shape, dtype, entries within
    ``rtol`` of ``want``); on strided copies of the inputs; into a contiguous ``out``
    (returned) and a strided one (the rest of its memory untouched); and written out
    as its inline template, where it has one."""
    want = np.asarray(want)
    kernel = bind(op, "numpy", {})

    def same(got, what):
        got = np.asarray(got)
        assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, got.dtype, want.shape, want.dtype)
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)

    calls = [(lambda xs, out=None: kernel(*xs) if out is None else kernel(*xs, out=out), "kernel")]
    calls += [(f, "inline") for f in _inline_forms(kernel, xs)]
    for call, what in calls:
        same(call(xs), what)
        if what == "kernel":
            same(call([_strided(x) for x in xs]), what + " on strided inputs")
        if not _writes_out(op):
            continue
        out = np.full(want.shape, -7, want.dtype)
        res = call(xs, out)
        same(out, what + " into out")
        if what == "inline":  # (np.dot hands back a scalar for a 0-d out; the generated code takes its value)
            same(res, what + " into out, its value")
            continue  # (a generator gives an inline call a C-contiguous out of the result's dtype only)
        if not want.ndim:  # (np.dot hands back a scalar for a 0-d out, having written it)
            same(res, what + " into a 0-d out, its value")
            continue
        assert res is out, what
        if want.ndim:
            big = np.full(want.shape + (2,), -7, want.dtype)
            view = big[..., 0]
            res = call(xs, view)
            same(view, what + " into a strided out")
            assert res is view, what
            assert (big[..., 1] == -7).all(), what + ": wrote outside its out"


def _strided(x):
    """The same values in memory that is not C-contiguous (where there is more than one entry)."""
    if x.ndim >= 2:
        return np.asfortranarray(x)
    if x.ndim == 1:
        return np.repeat(x, 2)[::2]
    return x


SUMS = [((6, 4), (1,)), ((5, 3, 2), (1, 2)), ((5, 3, 2), (2,)), ((3, 40), (1,)), ((5, 1), (1,)),
        ((4, 5, 6), (0,)), ((4, 5, 6), (0, 1)), ((4, 5, 6), (0, 2)), ((2, 3, 4, 5), (0, 2, 3)),
        ((2, 3, 4, 5), (0, 1, 3)), ((2, 3, 4, 5), (0, 3)), ((0, 3, 2), (0, 2)), ((2, 0, 3), (0, 2)),
        ((2, 3, 4), (1,)), ((2, 3, 4), (0, 1, 2)), ((2, 3, 4), None), ((2, 3, 4), ()), ((), None), ((7,), (0,)),
        ((3, 4), (-1, 0)), ((2, 3, 0), (0, 2))]
# every set of axes of a rank-5 operand (each path, and the sets that look like one but are not)
SUMS += [((2, 3, 1, 2, 3), tuple(a for a in range(5) if m >> a & 1)) for m in range(32)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dt", [f64, f32])
@pytest.mark.parametrize("shape, axes", SUMS)
def test_float_sums_on_every_path(shape, axes, dt, keepdims):
    rng = np.random.default_rng(len(shape) + 7 * len(axes or ()))
    x = rng.standard_normal(shape).astype(dt.numpy)
    ax = None if axes is None else tuple(axes)
    want = np.sum(x.astype(np.float64), axis=ax, keepdims=keepdims).astype(dt.numpy)
    if axes == ():
        want = x
    op = lookup("sum").op([dt[shape]], axes=axes, keepdims=keepdims)
    check_kernel(op, [x], want, 1e-12 if dt is f64 else 2e-6)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape, axes, size", [(("B", 3), (1,), (5, 3)), (("B", 3), (0,), (5, 3)),
                                               ((3, "B"), (1,), (3, 5)), (("B", 3, 4), (0, 2), (2, 3, 4)),
                                               (("B", 3), None, (4, 3))])
def test_float_sums_with_a_symbolic_size(shape, axes, size, keepdims):
    x = np.random.default_rng(5).standard_normal(size)
    op = lookup("sum").op([f64[shape]], axes=axes, keepdims=keepdims)
    check_kernel(op, [x], np.sum(x, axis=None if axes is None else tuple(axes), keepdims=keepdims), 1e-12)


# -- convolution: the numpy kernel's layouts and blocks, the torch rule and R, against torch ---------

F = torch.nn.functional

CONVS = [  # x shape, w shape, attributes: each numpy path (batch-first, channels-first, grouped; windows
    # read per kernel offset or per output position; one block or several) and each R path
    ((2, 3, 7), (4, 3, 3), {}),
    ((2, 4, 6, 5), (6, 2, 3, 2), {"stride": (2, 1), "padding": 1, "groups": 2}),
    ((2, 1, 8, 8), (4, 1, 3, 3), {"padding": 2, "dilation": 2}),
    ((1, 2, 4, 5, 4), (2, 2, 2, 3, 2), {"stride": (1, 2, 1), "padding": (0, 1, 1)}),
    ((3, 2, 5, 5), (8, 2, 5, 5), {"padding": (1, 2)}),  # a weight larger than the input
    ((2, 3, 5, 5), (2, 3, 4, 4), {"dilation": (1, 1), "stride": 1}),  # more kernel offsets than outputs
    ((2, 3, 9, 8), (2, 3, 4, 3), {"dilation": 2, "stride": (2, 3), "padding": (1, 0)}),
    ((2, 6, 7), (9, 2, 3), {"groups": 3, "padding": 2, "stride": 2}),
    ((2, 4, 6), (4, 1, 3), {"groups": 4, "dilation": 2}),
    ((2, 4, 6, 6), (4, 2, 2, 2), {"groups": 2, "stride": 2}),  # grouped, stride 2: R through fold
    ((1, 1, 6), (1, 1, 2), {"stride": 3}),
    ((4, 2, 6), (3, 2, 3), {"padding": 3}),  # padding larger than the kernel's reach
    ((5, 16, 28, 28), (4, 16, 3, 3), {}),  # several blocks of images
    ((8, 12, 28, 28), (4, 12, 3, 3), {"padding": 1}),  # several blocks of channels when read channels-first
    ((64, 1, 28, 28), (4, 1, 3, 3), {}),  # one channel (MNIST's first layer): blocks of images
    ((1, 1100, 16, 16), (300, 1100, 1, 1), {}),  # one image, a weight larger than it: blocks of channels
]


def _torch_conv_reference(x, w, stride=1, padding=0, dilation=1, groups=1):
    fn = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.ndim]
    return fn(torch.tensor(x), torch.tensor(w), stride=stride, padding=padding, dilation=dilation,
              groups=groups).numpy()


@pytest.mark.parametrize("dt", [f64, f32])
@pytest.mark.parametrize("xs, ws, attrs", CONVS)
def test_conv_numpy_kernel_on_every_path(xs, ws, attrs, dt):
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x, w = rng.standard_normal(xs).astype(dt.numpy), rng.standard_normal(ws).astype(dt.numpy)
    op = lookup("conv").op([dt[xs], dt[ws]], **attrs)
    want = _torch_conv_reference(x, w, **attrs)
    check_kernel(op, [x, w], want, 1e-11 if dt is f64 else 1e-4)
    # the batch-swapped view R's weight gradient passes (axis 0 runs faster than axis 1)
    swapped = np.ascontiguousarray(x.transpose((1, 0) + tuple(range(2, x.ndim)))).transpose(
        (1, 0) + tuple(range(2, x.ndim)))
    np.testing.assert_allclose(bind(op, "numpy", {})(swapped, w), want, rtol=1e-4, atol=1e-4 if dt is f32 else 1e-11)


@pytest.mark.parametrize("xs, ws, attrs", CONVS[:12])
def test_conv_torch_rule_and_R_against_torch(xs, ws, attrs):
    rng = np.random.default_rng(sum(xs) * 3 + sum(ws))
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    f = O.conv(f64[xs], f64[ws], **attrs)
    (got,) = cg.evaluate(f, torch.tensor(x), torch.tensor(w), backend="torch")
    np.testing.assert_allclose(got.numpy(), _torch_conv_reference(x, w, **attrs), rtol=1e-12, atol=1e-12)
    v = rng.standard_normal(f.cod[0].shape)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    fn = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[len(xs)]
    y = fn(tx, tw, **attrs)
    gx, gw = torch.autograd.grad(y, [tx, tw], torch.tensor(v))
    assert rel_err(cg.evaluate(cg.R(f), x, w, v), [gx.numpy(), gw.numpy()]) <= 1e-12


def test_conv_kernel_with_a_symbolic_batch_keeps_no_stale_state():
    """The kernel keeps working arrays between calls (by shape): calls with another batch
    size, then the first again, are still right, and an output handed back earlier is not
    changed by a later call."""
    op = lookup("conv").op([f64["B", 3, 6, 6], f64[4, 3, 3, 3]], padding=1)
    kernel = bind(op, "numpy", {})
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 3, 3, 3))
    seen = []
    for n in (3, 5, 1, 3):
        x = rng.standard_normal((n, 3, 6, 6))
        y = kernel(x, w)
        np.testing.assert_allclose(y, _torch_conv_reference(x, w, padding=1), rtol=1e-12, atol=1e-12)
        seen.append((y, y.copy()))
    for y, copy in seen:
        assert np.array_equal(y, copy)
    op = lookup("conv").op([f64["B", 4, 6], f64[4, 2, 3]], groups=2)
    kernel = bind(op, "numpy", {})
    w = rng.standard_normal((4, 2, 3))
    for n in (2, 4, 2):
        x = rng.standard_normal((n, 4, 6))
        np.testing.assert_allclose(kernel(x, w), _torch_conv_reference(x, w, groups=2), rtol=1e-12, atol=1e-12)


# -- unfold, fold and pooling: numpy kernels and torch rules against loops over every window ----------


def _geometry(x_spatial, kernel, stride, padding, dilation):
    n = len(x_spatial)
    tup = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n  # noqa: E731
    K, p, d = tup(kernel), tup(padding), tup(dilation)
    s = K if stride is None else tup(stride)
    O = tuple((S + 2 * p[i] - d[i] * (K[i] - 1) - 1) // s[i] + 1 for i, S in enumerate(x_spatial))
    return K, s, p, d, O


def _unfold_reference(x, kernel, stride=1, padding=0, dilation=1, fill=0.0):
    """Every window copied out with one loop over output positions and kernel offsets."""
    K, s, p, d, O = _geometry(x.shape[2:], kernel, stride, padding, dilation)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(a, a) for a in p], constant_values=fill)
    out = np.empty(x.shape[:2] + O + K, x.dtype)
    for o in np.ndindex(*O):
        for k in np.ndindex(*K):
            out[(Ellipsis,) + o + k] = xp[(slice(None), slice(None)) + tuple(
                o[i] * s[i] + k[i] * d[i] for i in range(len(K)))]
    return out


def _fold_reference(y, kernel, size, stride=1, padding=0, dilation=1):
    """Every window entry added back onto its pixel (padding dropped): the transpose of unfold."""
    K, s, p, d, O = _geometry(size, kernel, stride, padding, dilation)
    acc = np.zeros(y.shape[:2] + tuple(S + 2 * a for S, a in zip(size, p)), y.dtype)
    for o in np.ndindex(*O):
        for k in np.ndindex(*K):
            acc[(slice(None), slice(None)) + tuple(o[i] * s[i] + k[i] * d[i] for i in range(len(K)))] += \
                y[(Ellipsis,) + o + k]
    return acc[(slice(None), slice(None)) + tuple(slice(a, a + S) for S, a in zip(size, p))]


WINDOWS = [  # input shape, attributes: windows that tile the input exactly, tile it with a remainder
    # or padding, overlap, skip pixels, dilate; one, two and three spatial axes
    ((2, 3, 6), {"kernel": 2, "stride": 2}),
    ((2, 3, 7), {"kernel": 2, "stride": 2}),
    ((2, 3, 6), {"kernel": 2, "stride": 2, "padding": 1}),
    ((2, 3, 7), {"kernel": 3}),
    ((2, 2, 6, 4), {"kernel": (2, 2), "stride": (2, 2)}),
    ((2, 2, 6, 5), {"kernel": (3, 2), "stride": (3, 2), "padding": (0, 1)}),
    ((2, 2, 6, 5), {"kernel": (2, 3), "stride": (2, 1), "padding": (1, 0)}),
    ((1, 1, 7, 6), {"kernel": 2, "dilation": 2, "padding": 1, "stride": 2}),
    ((1, 2, 4, 3, 5), {"kernel": (2, 2, 3), "stride": (1, 2, 1)}),
    ((1, 2, 4, 4, 6), {"kernel": 2, "stride": 2}),
    ((2, 1, 9), {"kernel": 2, "stride": 4}),
    ((3, 2, 5, 5), {"kernel": 2, "stride": (1, 3), "dilation": (2, 1), "padding": (1, 1)}),
]


@pytest.mark.parametrize("dt", [f64, f32])
@pytest.mark.parametrize("shape, attrs", WINDOWS)
def test_unfold_and_fold_kernels_against_loops(shape, attrs, dt):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dt.numpy)
    tol = 1e-12 if dt is f64 else 1e-5
    for fill in (0.0, -np.inf) if dt is f64 else (0.0,):
        op = lookup("unfold").op([dt[shape]], fill=fill, **attrs)
        want = _unfold_reference(x, fill=fill, **attrs)
        if fill == 0.0:
            check_kernel(op, [x], want, tol)
        else:  # (-inf entries: compared exactly)
            assert np.array_equal(bind(op, "numpy", {})(x), want)
        (t,) = cg.evaluate(cg.Diagram.from_op(op), torch.tensor(x), backend="torch")
        assert np.array_equal(t.numpy(), want)
    cols = rng.standard_normal(want.shape).astype(dt.numpy)
    fold = lookup("fold").op([dt[want.shape]], size=shape[2:], **attrs)
    want = _fold_reference(cols, size=shape[2:], **attrs)
    check_kernel(fold, [cols], want, tol)
    (t,) = cg.evaluate(cg.Diagram.from_op(fold), torch.tensor(cols), backend="torch")
    np.testing.assert_allclose(t.numpy(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape, attrs", WINDOWS)
def test_R_of_unfold_and_fold_against_torch(shape, attrs):
    rng = np.random.default_rng(sum(shape) + 1)
    f = O.unfold(f64[shape], **attrs)
    g = O.fold(f.cod[0], size=shape[2:], **attrs)
    for h in (f, g):
        xs, vs = [rng.standard_normal(h.dom[0].shape)], [rng.standard_normal(h.cod[0].shape)]
        assert rel_err(cg.evaluate(cg.R(h), *xs, *vs), torch_vjp(h, xs, vs)) <= 1e-12


POOLS = [((2, 3, 8), {"kernel": 2}),
         ((2, 2, 7, 6), {"kernel": 3, "stride": 2, "padding": 1}),
         ((2, 2, 8, 8), {"kernel": (2, 3), "stride": (2, 1), "dilation": (1, 2)}),
         ((1, 2, 4, 4, 6), {"kernel": 2, "stride": (2, 1, 2)}),
         ((2, 1, 7), {"kernel": 3, "stride": 1, "padding": 1, "dilation": 2}),
         ((1, 2, 5, 7), {"kernel": (1, 3)})]


def _pool_reference(x, which, kernel, stride=None, padding=0, dilation=1):
    win = _unfold_reference(x, kernel, stride, padding, dilation, -np.inf if which == "maxpool" else 0.0)
    axes = tuple(range(x.ndim, win.ndim))
    return np.max(win, axis=axes) if which == "maxpool" else np.mean(win, axis=axes)


@pytest.mark.parametrize("which", ["maxpool", "avgpool"])
@pytest.mark.parametrize("dt", [f64, f32])
@pytest.mark.parametrize("shape, attrs", POOLS)
def test_pool_kernels_and_R_against_loops_and_torch(shape, attrs, dt, which):
    rng = np.random.default_rng(sum(shape) + len(which))
    x = rng.standard_normal(shape).astype(dt.numpy)
    op = lookup(which).op([dt[shape]], **attrs)
    want = _pool_reference(x, which, **attrs)
    tol = 1e-12 if dt is f64 else 1e-5
    check_kernel(op, [x], want, tol)
    (t,) = cg.evaluate(cg.Diagram.from_op(op), torch.tensor(x), backend="torch")
    np.testing.assert_allclose(t.numpy(), want, rtol=tol, atol=tol)
    if dt is f64:
        f = cg.Diagram.from_op(op)
        v = rng.standard_normal(f.cod[0].shape)
        assert rel_err(cg.evaluate(cg.R(f), x, v), torch_vjp(f, [x], [v])) <= 1e-12


# -- einsum: the numpy plans and the torch matmul spellings against np.einsum -----------------------



@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_R_of_maxpool_never_shares_with_the_padding(backend):
    """Padding takes no part in a maximum, even where the largest real entry of a border
    window is 0 (as after relu): the whole cotangent goes to that entry."""
    x = -np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    x[0, 0, 0, 0] = x[0, 0, 4, 4] = 0.0
    f = O.maxpool(f64[1, 1, 5, 5], kernel=3, stride=2, padding=1)
    v = np.random.default_rng(0).standard_normal(f.cod[0].shape)
    args = [x, v] if backend == "numpy" else [torch.tensor(x), torch.tensor(v)]
    (got,) = cg.evaluate(cg.R(f), *args, backend=backend)
    got = got.numpy() if backend == "torch" else got
    np.testing.assert_allclose(got, torch_vjp(f, [x], [v])[0], rtol=1e-13, atol=1e-13)
    assert got[0, 0, 0, 0] == v[0, 0, 0, 0] and got[0, 0, 4, 4] == v[0, 0, 2, 2]

def _two_operand_specs():
    """Every mix of batch (in both operands and the output), contracted, left-only and
    right-only indices up to small counts, each term in a scrambled order."""
    rng = np.random.default_rng(0)
    specs = []
    for nb in range(3):
        for nk in range(3):
            for nl in range(3):
                for nr in range(3):
                    if nb + nk + nl + nr > 5 or nb + nk + nl == 0 or nb + nk + nr == 0:
                        continue
                    letters = iter("abcdefgh")
                    b, k, l, r = ([next(letters) for _ in range(m)] for m in (nb, nk, nl, nr))
                    for _ in range(2):
                        x, y, z = (list(rng.permutation(t)) if t else [] for t in (b + k + l, b + k + r, b + l + r))
                        specs.append(f"{''.join(x)},{''.join(y)}->{''.join(z)}")
    specs += ["ij,jk->ik", "ji,jk->ik", "ij,kj->ik", "ji,kj->ik", "ij,jk->ki", "ji,kj->ki", "j,jk->k", "ij,j->i",
              "j,kj->k", "ji,j->i", "i,i->", "i,j->ij", "i,j->ji", "ij,ij->", "ij,ji->"]
    return list(dict.fromkeys(specs))


SIZES = dict(zip("abcdefghijk", (2, 3, 4, 2, 3, 5, 2, 3, 4, 3, 5)))


@pytest.mark.parametrize("dt", [f64, f32, i64])
@pytest.mark.parametrize("spec", _two_operand_specs())
def test_two_operand_einsum_on_numpy_and_torch(spec, dt):
    x, y = spec.split("->")[0].split(",")
    rng = np.random.default_rng(len(spec))
    a = rng.integers(-3, 4, [SIZES[c] for c in x]).astype(dt.numpy)
    b = rng.integers(-3, 4, [SIZES[c] for c in y]).astype(dt.numpy)
    want = np.einsum(spec, a.astype(np.float64), b.astype(np.float64)).astype(dt.numpy)  # (exact: small integers)
    op = lookup("einsum").op([dt[a.shape], dt[b.shape]], spec=spec)
    check_kernel(op, [a, b], want, 0.0)
    (t,) = cg.evaluate(cg.Diagram.from_op(op), torch.tensor(a), torch.tensor(b), backend="torch")
    assert t.numpy().dtype == want.dtype and np.array_equal(t.numpy(), want)



@pytest.mark.parametrize("spec", ["ij, jk -> ik", " bij,bjk ->bik", "ji , kj->ik", "i,i -> "])
def test_einsum_specs_may_have_spaces(spec):
    x, y = spec.replace(" ", "").split("->")[0].split(",")
    rng = np.random.default_rng(len(spec))
    a, b = (rng.standard_normal([SIZES[c] for c in t]) for t in (x, y))
    want = np.einsum(spec.replace(" ", ""), a, b)
    op = lookup("einsum").op([f64[a.shape], f64[b.shape]], spec=spec)
    check_kernel(op, [a, b], want, 1e-13)
    (t,) = cg.evaluate(cg.Diagram.from_op(op), torch.tensor(a), torch.tensor(b), backend="torch")
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-13, atol=1e-13)

@pytest.mark.parametrize("spec, shapes", [("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 2)]), ("ij->ji", [(3, 4)]),
                                          ("ijk->kij", [(2, 3, 4)]), ("a,b,c->abc", [(2,), (3,), (2,)])])
def test_einsum_of_one_or_three_operands(spec, shapes):
    rng = np.random.default_rng(len(spec))
    xs = [rng.standard_normal(s) for s in shapes]
    want = np.einsum(spec, *xs)
    f = O.einsum(*[f64[s] for s in shapes], spec=spec)
    assert rel_err(cg.evaluate(f, *xs), [want]) <= 1e-14
    assert rel_err([t.numpy() for t in cg.evaluate(f, *map(torch.tensor, xs), backend="torch")], [want]) <= 1e-14
    v = rng.standard_normal(want.shape)
    assert rel_err(cg.evaluate(cg.R(f), *xs, v), torch_vjp(f, xs, [v])) <= 1e-12


@pytest.mark.parametrize("spec", ["ij,jk->ik", "bij,bjk->bik", "i,i->", "ij,kj->ki", "i,j->ij"])
def test_einsum_over_bits_sums_mod_2(spec):
    x, y = spec.split("->")[0].split(",")
    rng = np.random.default_rng(len(spec))
    a = rng.integers(0, 2, [SIZES[c] for c in x]).astype(bool)
    b = rng.integers(0, 2, [SIZES[c] for c in y]).astype(bool)
    want = np.einsum(spec, a.astype(np.int64), b.astype(np.int64)) % 2 == 1
    f = O.einsum(bit[a.shape], bit[b.shape], spec=spec)
    (got,) = cg.evaluate(f, a, b)
    assert got.dtype == bool and np.array_equal(got, want)
    (t,) = cg.evaluate(f, torch.tensor(a), torch.tensor(b), backend="torch")
    assert t.dtype == torch.bool and np.array_equal(t.numpy(), want)


@pytest.mark.parametrize("ranks", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 4), (4, 2)])
def test_matmul_is_numpys_matmul(ranks):
    rng = np.random.default_rng(sum(ranks))
    sa = ((2, 3)[:ranks[0] - 2] + (4, 5)) if ranks[0] >= 2 else (5,)
    sb = ((2, 3)[:ranks[1] - 2] + (5, 3)) if ranks[1] >= 2 else (5,)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    want = np.matmul(a, b)
    f = O.matmul(f64[sa], f64[sb])
    assert rel_err(cg.evaluate(f, a, b), [want]) <= 1e-14

    @cg.trace(f64[sa], f64[sb])
    def g(x, y):
        return O.matmul(x, y)

    assert rel_err(cg.evaluate(g, a, b), [want]) <= 1e-14


# -- elementwise kernels that write into out= (and their written-out forms) ----------------------------

ELEMENTWISE = {
    "heaviside": (1, lambda x: (x > 0).astype(x.dtype)),
    "relu": (1, lambda x: np.where(x > 0, x, 0).astype(x.dtype)),
    "sigmoid": (1, lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)),
    "softplus": (1, lambda x: np.log1p(np.exp(x.astype(np.float64))).astype(x.dtype)),
    "eq": (2, lambda x, y: (x == y).astype(x.dtype)),
    "ge": (2, lambda x, y: (x >= y).astype(x.dtype)),
    "gt": (2, lambda x, y: (x > y).astype(x.dtype)),
}


@pytest.mark.parametrize("shape", [(3, 4), (5,), ()])
@pytest.mark.parametrize("dt", [f64, f32])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_kernels_in_every_call_form(name, dt, shape):
    arity, ref = ELEMENTWISE[name]
    rng = np.random.default_rng(len(name))
    xs = [rng.integers(-2, 3, shape).astype(dt.numpy) * np.asarray(0.75, dt.numpy) for _ in range(arity)]
    op = lookup(name).op([dt[shape]] * arity)
    check_kernel(op, xs, ref(*xs), 1e-15 if dt is f64 else 1e-6)
    (t,) = cg.evaluate(cg.Diagram.from_op(op), *map(torch.tensor, xs), backend="torch")
    np.testing.assert_allclose(t.numpy(), ref(*xs), rtol=1e-15 if dt is f64 else 1e-6)
    assert t.numpy().dtype == dt.numpy


@pytest.mark.parametrize("dt", [i64])
@pytest.mark.parametrize("name", ["eq", "ge", "gt"])
def test_integer_comparisons(name, dt):
    x, y = np.array([[-1, 0, 3], [2, 2, 5]]), np.array([[0, 0, 3], [1, 3, 5]])
    op = lookup(name).op([dt[2, 3], dt[2, 3]])
    check_kernel(op, [x, y], ELEMENTWISE[name][1](x, y), 0.0)


# -- random numbers: the hash, every key bit, streams, precision, numpy = torch --------------------


def _lowbias32(v: int) -> int:
    """Wellons' lowbias32 on one 32-bit number, in Python integers."""
    v ^= v >> 16
    v = (v * 0x7FEB352D) & 0xFFFFFFFF
    v ^= v >> 15
    v = (v * 0x846CA68B) & 0xFFFFFFFF
    return v ^ (v >> 16)


def test_the_mixing_function_is_lowbias32_in_numpy_and_torch_lanes():
    from catgrad.ops.random import _mix

    vals = [0, 1, 2, 3, 0xFFFF, 0x10000, 0x12345678, 0x9E3779B9, 0xDEADBEEF, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF]
    vals += [int(v) for v in np.random.default_rng(0).integers(0, 2**32, 200)]
    want = np.array([_lowbias32(v) for v in vals], np.int64)
    assert np.array_equal(_mix(np.array(vals, np.int64)), want)
    assert np.array_equal(_mix(torch.tensor(vals, dtype=torch.int64)).numpy(), want)


def _draw(name, key, backend="numpy", **attrs):
    t = attrs.pop("type", f64[64])
    f = getattr(O, name)(i64[()], type=t, **attrs)
    k = np.int64(key) if backend == "numpy" else torch.tensor(key, dtype=torch.int64)
    out = cg.evaluate(f, k, backend=backend)
    return [o.numpy() if backend == "torch" else np.asarray(o) for o in out]


KEYS = [0, 1, -1, 5, 2**31, 2**32 + 7, 2**40 + 3, 2**62 + 11, -(2**63), 0x0123456789ABCDEF]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_bit_of_the_key_changes_every_draw(backend):
    base = 0x0123456789ABCDEF
    for name in ("uniform", "normal"):
        (x,) = _draw(name, base, backend)
        for b in range(64):
            key = base ^ (1 << b)
            key = key - 2**64 if key >= 2**63 else key
            (y,) = _draw(name, key, backend)
            assert np.all(x != y), (name, b)
    f = O.random_split(i64[()])
    keys = lambda k: [int(v) for v in cg.evaluate(  # noqa: E731
        f, np.int64(k) if backend == "numpy" else torch.tensor(k, dtype=torch.int64), backend=backend)]
    parent = keys(base)
    for b in range(64):
        key = base ^ (1 << b)
        child = keys(key - 2**64 if key >= 2**63 else key)
        assert child[0] != parent[0] and child[1] != parent[1], b


@pytest.mark.parametrize("key", KEYS)
def test_numpy_and_torch_draw_the_same_numbers(key):
    for name, attrs, exact in [("uniform", {"low": -2.0, "high": 3.0}, True), ("bernoulli", {"p": 0.3}, True),
                               ("normal", {"mean": 1.0, "std": 2.0}, False)]:
        for t in (f64[5, 7], f32[40]):
            (a,) = _draw(name, key, "numpy", type=t, **attrs)
            (b,) = _draw(name, key, "torch", type=t, **attrs)
            assert a.dtype == b.dtype == t.dtype.numpy
            if exact:
                assert np.array_equal(a, b), (name, key, t)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-13 if t.dtype is f64 else 1e-6, atol=1e-13)
    f = O.random_split(i64[()])
    a = cg.evaluate(f, np.int64(key))
    b = cg.evaluate(f, torch.tensor(key, dtype=torch.int64), backend="torch")
    assert [int(v) for v in a] == [int(v) for v in b]


@pytest.mark.parametrize("dt, bits", [(f64, 53), (f32, 24)])
def test_uniform_numbers_have_the_dtypes_precision_and_spread(dt, bits):
    n = 40000
    for backend in ("numpy", "torch"):
        (u,) = _draw("uniform", 2**40 + 9, backend, type=dt[n])
        u = u.astype(np.float64)
        assert u.min() >= 0.0 and u.max() < 1.0
        scaled = u * 2.0**bits
        assert np.array_equal(scaled, np.floor(scaled))  # multiples of 2^-bits ...
        assert not np.array_equal(scaled / 2, np.floor(scaled / 2))  # ... and not all of 2^-(bits-1)
        assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
        assert abs(u.var() - 1 / 12) < 0.01
        counts = np.bincount((u * 16).astype(int), minlength=16)
        assert np.all(np.abs(counts - n / 16) < 6 * np.sqrt(n / 16))
        # neighbouring entries are not correlated
        assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)


def test_normal_and_bernoulli_statistics():
    n = 40000
    for backend in ("numpy", "torch"):
        (z,) = _draw("normal", 77, backend, type=f64[n], mean=1.5, std=2.0)
        assert abs(z.mean() - 1.5) < 5 * 2.0 / np.sqrt(n)
        assert abs(z.std() - 2.0) < 0.05
        s = (z - 1.5) / 2.0
        assert abs(np.mean(s**3)) < 0.1 and abs(np.mean(s**4) - 3.0) < 0.2  # symmetric, normal tails
        (b,) = _draw("bernoulli", 78, backend, type=f32[n], p=0.3)
        assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 5 * np.sqrt(0.21 / n)
        (u,) = _draw("uniform", 79, backend, type=f64[n], low=-2.0, high=3.0)
        assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 5 * 5 / np.sqrt(12 * n)
    for p in (0.0, 1.0):
        (b,) = _draw("bernoulli", 80, type=f64[100], p=p)
        assert np.all(b == p)


def test_streams_and_split_keys_are_independent():
    """Uniform draws, the two uniform streams behind the normal draws and the draws from
    the two split keys are all different, uncorrelated sequences."""
    from catgrad.ops.random import _np_uniform01

    n, key = 20000, 123
    streams = [_np_uniform01(np.int64(key), (n,), np.float64, s) for s in range(3)]
    k1, k2 = (np.int64(k) for k in cg.evaluate(O.random_split(i64[()]), np.int64(key)))
    assert len({int(k1), int(k2), key}) == 3
    streams += [_draw("uniform", int(k), type=f64[n])[0] for k in (k1, k2)]
    for i in range(len(streams)):
        for j in range(i):
            assert abs(np.corrcoef(streams[i], streams[j])[0, 1]) < 5 / np.sqrt(n), (i, j)
    # the split keys are functions of the key
    again = cg.evaluate(O.random_split(i64[()]), np.int64(key))
    assert [int(k1), int(k2)] == [int(k) for k in again]



# The generator as documented (docs/language.md, "The generator"), in Python integers.
_M32, _GOLDEN = 0xFFFFFFFF, 0x9E3779B9


def _seed_ref(key: int, stream: int) -> int:
    lo, hi = key & _M32, (key >> 32) & _M32
    return _lowbias32(_lowbias32(lo) ^ hi ^ ((stream * _GOLDEN) & _M32))


def _uniform01_ref(key: int, n: int, stream: int, bits: int) -> list:
    s = _seed_ref(key, stream)
    out = []
    for c in range(n):
        h1 = _lowbias32(_lowbias32((2 * c) & _M32) ^ s)
        h2 = _lowbias32(_lowbias32((2 * c + 1) & _M32) ^ s)
        out.append((((h1 << 21) | (h2 >> 11)) >> (53 - bits)) * 2.0**-bits)
    return out


def _split_ref(key: int) -> list:
    def derive(stream):
        v = ((_lowbias32(_seed_ref(key, stream) ^ 0x5BD1E995) << 32) | _seed_ref(key, stream + 1)) & (2**64 - 1)
        return v - 2**64 if v >= 2**63 else v  # an i64 key

    return [derive(11), derive(13)]


@pytest.mark.filterwarnings("error")  # the products wrap on purpose: no overflow warnings
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("key", KEYS)
def test_draws_follow_the_documented_generator_bit_for_bit(key, backend):
    """uniform, bernoulli, normal and random_split against the generator written out in
    Python integers: the same bits on every backend, and from one version to the next
    (a checkpoint's key must keep drawing the same numbers), and no warnings."""
    for t, bits in ((f64[3, 5], 53), (f32[7], 24)):
        n = math.prod(t.shape)
        u = np.array(_uniform01_ref(key, n, 0, bits)).reshape(t.shape)
        (got,) = _draw("uniform", key, backend, type=t, low=-2.0, high=3.0)
        assert got.tobytes() == (-2.0 + 5.0 * u).astype(t.dtype.numpy).tobytes(), (t, backend)
        (got,) = _draw("bernoulli", key, backend, type=t, p=0.375)
        assert got.tobytes() == (u < 0.375).astype(t.dtype.numpy).tobytes()
        u0, u1 = (np.array(_uniform01_ref(key, n, s, 53)) for s in (1, 2))
        z = [math.sqrt(-2.0 * math.log1p(-a)) * math.cos(2.0 * math.pi * b) for a, b in zip(u0, u1)]
        (got,) = _draw("normal", key, backend, type=t, mean=0.5, std=2.0)
        assert got.dtype == t.dtype.numpy
        np.testing.assert_allclose(got, (0.5 + 2.0 * np.array(z)).reshape(t.shape).astype(t.dtype.numpy),
                                   rtol=1e-14 if t.dtype is f64 else 1e-6, atol=1e-14)
    k = np.int64(key) if backend == "numpy" else torch.tensor(key, dtype=torch.int64)
    assert [int(v) for v in cg.evaluate(O.random_split(i64[()]), k, backend=backend)] == _split_ref(key)


def test_op_functions_carry_their_primitives_name_and_doc():
    for name in ("exp", "maxpool", "uniform", "einsum"):
        fn = getattr(O, name)
        assert fn.__name__ == name and fn.__doc__ == lookup(name).doc and fn.__doc__

# -- reverse derivatives against torch.autograd at the attributes tests/test_ops.py leaves out -----


R_CASES = {
    "sum keepdims": lambda: O.sum(f64[2, 3, 4], axes=(0, 2), keepdims=True),
    "sum every axis": lambda: O.sum(f64[2, 3, 4]),
    "sum last axis": lambda: O.sum(f64[2, 3, 4], axes=-1),
    "mean keepdims": lambda: O.mean(f64[2, 3, 4], axes=(0, 2), keepdims=True),
    "mean": lambda: O.mean(f64[2, 3, 4], axes=(2, 0)),
    "mean every axis": lambda: O.mean(f64[2, 3]),
    "mean over a symbolic axis": lambda: O.mean(f64["B", 3], axes=0),
    "mean over a symbolic axis, keepdims": lambda: O.mean(f64[2, "B", 3], axes=(1, 2), keepdims=True),
    "max keepdims": lambda: O.max(f64[2, 3, 4], axes=(1,), keepdims=True),
    "max every axis": lambda: O.max(f64[2, 3]),
    "max two axes": lambda: O.max(f64[2, 3, 4], axes=(0, 2)),
    "logsumexp keepdims": lambda: O.logsumexp(f64[2, 3, 4], axes=(0, 2), keepdims=True),
    "logsumexp every axis": lambda: O.logsumexp(f64[2, 3]),
    "logsumexp": lambda: O.logsumexp(f64[2, 3, 4], axes=1),
    "softmax axis 0": lambda: O.softmax(f64[2, 3, 4], axis=0),
    "softmax axis 1": lambda: O.softmax(f64[2, 3, 4], axis=1),
    "softmax last": lambda: O.softmax(f64[2, 3, 4]),
    "broadcast leading and stretched": lambda: O.broadcast(f64[2, 1, 3], shape=(4, 2, 5, 3)),
    "broadcast a number": lambda: O.broadcast(f64[()], shape=(2, 2)),
    "broadcast stretched only": lambda: O.broadcast(f64[1, 3], shape=(4, 3)),
    "broadcast nothing": lambda: O.broadcast(f64[2, 3], shape=(2, 3)),
    "broadcast symbolic": lambda: O.broadcast(f64["B", 1], shape=("B", 3)),
    "concat three": lambda: O.concat(f64[2, 3], f64[2, 1], f64[2, 2], axis=-1),
    "concat one": lambda: O.concat(f64[2, 3], axis=0),
    "concat axis 0": lambda: O.concat(f64[1, 3], f64[2, 3]),
    "split three": lambda: O.split(f64[2, 6], axis=1, sizes=(3, 1, 2)),
    "split one piece": lambda: O.split(f64[2, 4], axis=-1, sizes=(4,)),
    "split axis 0": lambda: O.split(f64[5, 2], axis=0, sizes=(2, 3)),
    "slice": lambda: O.slice(f64[2, 5, 3], axis=-2, start=1, stop=4),
    "slice to the end": lambda: O.slice(f64[2, 5], axis=1, start=2, stop=5),
    "pad": lambda: O.pad(f64[2, 3, 2], axis=-2, before=2, after=1),
    "pad first axis": lambda: O.pad(f64[2, 3], axis=0, before=0, after=3),
    "transpose default": lambda: O.transpose(f64[2, 3, 4]),
    "transpose perm": lambda: O.transpose(f64[2, 3, 4], perm=(1, 2, 0)),
    "reshape": lambda: O.reshape(f64[2, 3, 4], shape=(4, 6)),
    "pow 1": lambda: O.pow(f64[2, 3], p=1.0),
    "pow 3": lambda: O.pow(f64[2, 3], p=3),
    "pow -1.5": lambda: O.pow(f64[2, 3], p=-1.5),
    "where": lambda: O.where(f64[2, 3], f64[2, 3], f64[2, 3]),
    "softplus": lambda: O.softplus(f64[2, 3]),
    "div": lambda: O.div(f64[2, 3], f64[2, 3]),
    "all_reduce": lambda: O.all_reduce(f64[2, 3], f64[3]),
    "conv1d grouped": lambda: O.conv(f64[2, 4, 7], f64[6, 2, 3], groups=2, stride=2, padding=1),
    "take": lambda: O.take(f64[5, 3], i64[2, 4]),
    "scatter_add": lambda: O.scatter_add(i64[2, 4], f64[2, 4, 3], size=5),
    "scatter_add of one index": lambda: O.scatter_add(i64[()], f64[3], size=4),
}


@pytest.mark.parametrize("case", sorted(R_CASES))
def test_R_against_torch_autograd(case):
    f = R_CASES[case]()
    rng = np.random.default_rng(len(case))
    xs = []
    for t in f.dom:
        shape = tuple(3 if isinstance(d, str) else d for d in t.shape)
        if t.dtype is i64:  # indices: repeated and negative ones among them
            xs.append(rng.integers(-5, 5, shape))
        else:
            xs.append(rng.uniform(0.5, 1.5, shape))
    if case == "where":
        xs[0] = (rng.uniform(size=xs[0].shape) < 0.5).astype(float)
    vs = [rng.standard_normal(tuple(3 if isinstance(d, str) else d for d in t.shape)) for t in f.cod]
    ours = cg.evaluate(cg.R(f), *xs, *vs)
    floats = [i for i, t in enumerate(f.dom) if t.dtype is not i64]
    ts = [torch.tensor(x, requires_grad=i in floats) for i, x in enumerate(xs)]
    outs = cg.evaluate(f, *ts, backend="torch")
    grads = torch.autograd.grad(outs, [ts[i] for i in floats], [torch.tensor(v) for v in vs], allow_unused=True)
    theirs = [np.zeros(xs[i].shape) if g is None else g.numpy() for i, g in zip(floats, grads)]
    assert len(ours) == len(f.dom)
    for i in range(len(f.dom)):
        if i not in floats:  # indices carry no cotangent
            assert ours[i] is None or not np.any(ours[i])
    assert rel_err([ours[i] for i in floats], theirs) <= 1e-12


def test_R_of_max_shares_the_cotangent_among_ties_as_torch_does():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 5.0, 5.0]])
    for axes, keepdims in [((1,), False), ((1,), True), ((0,), False), (None, False), ((0, 1), True)]:
        f = O.max(f64[3, 4], axes=axes, keepdims=keepdims)
        v = np.random.default_rng(1).standard_normal(f.cod[0].shape)
        assert rel_err(cg.evaluate(cg.R(f), x, v), torch_vjp(f, [x], [v])) <= 1e-13, (axes, keepdims)


def test_R_of_maximum_and_minimum_at_ties_goes_to_the_first_input():
    x, y, d = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0]), np.array([10.0, 20.0, 30.0])
    dx, dy = cg.evaluate(cg.R(O.maximum(f64[3], f64[3])), x, y, d)
    assert np.array_equal(dx, [10.0, 20.0, 0.0]) and np.array_equal(dy, [0.0, 0.0, 30.0])
    dx, dy = cg.evaluate(cg.R(O.minimum(f64[3], f64[3])), x, y, d)
    assert np.array_equal(dx, [10.0, 0.0, 30.0]) and np.array_equal(dy, [0.0, 20.0, 0.0])


def test_R_of_cast_casts_back_between_floats_and_is_zero_otherwise():
    d = np.array([1.5, -2.25], np.float64)
    (g,) = cg.evaluate(cg.R(O.cast(f32[2], dtype=f64)), np.ones(2, np.float32), d)
    assert g.dtype == np.float32 and np.array_equal(g, d.astype(np.float32))
    (g,) = cg.evaluate(cg.R(O.cast(f64[2], dtype="f32")), np.ones(2), d.astype(np.float32))
    assert g.dtype == np.float64 and np.array_equal(g, d)
    (g,) = cg.evaluate(cg.R(O.cast(f64[2], dtype=i64)), np.ones(2), np.array([3, 4]))
    assert g.dtype == np.float64 and not g.any()


def test_R_of_all_reduce_gives_zero_for_an_unused_output():
    @cg.trace(f64[3], f64[2])
    def f(x, y):
        a, _ = O.all_reduce(x, y)
        return a

    d = np.array([1.0, 2.0, 3.0])
    gx, gy = cg.evaluate(cg.R(f), np.ones(3), np.ones(2), d)
    assert np.array_equal(gx, d) and np.array_equal(gy, np.zeros(2))


@pytest.mark.parametrize("xs, ws, attrs, fortran", [
    ((4, 16, 28, 28), (4, 16, 3, 3), {}, False),  # two blocks of two images
    ((8, 12, 28, 28), (4, 12, 3, 3), {"padding": 1}, True),  # channels-first: three blocks of four channels
    pytest.param((5, 16, 28, 28), (4, 16, 3, 3), {}, False, id="uneven blocks of images"),
    pytest.param((8, 12, 28, 28), (4, 12, 3, 3), {"padding": 1}, False, id="uneven blocks of images, padded"),
    pytest.param((5, 18, 28, 28), (4, 18, 3, 3), {}, True, id="uneven blocks of channels"),
])
def test_conv_kernel_reuses_its_working_arrays(xs, ws, attrs, fortran):
    """Into a given out, a call after the first allocates next to nothing (the im2col
    blocks and their products live in arrays kept between calls), also when the last
    block is shorter than the others."""
    from test_numpy_kernels import _allocated

    op = lookup("conv").op([f32[xs], f32[ws]], **attrs)
    kernel = bind(op, "numpy", {})
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    if fortran:
        x = np.asfortranarray(x)
    out = kernel(x, w)
    np.testing.assert_allclose(out, _torch_conv_reference(x, w, **attrs), rtol=1e-4, atol=1e-4)
    assert _allocated(lambda: kernel(x, w, out=out)) < 16_000


@pytest.mark.parametrize("xs, ws, attrs", [((2, 3, 7, 7), (4, 3, 3, 3), {"padding": 1}),
                                           ((2, 4, 9), (4, 2, 3), {"padding": 2, "groups": 2}),
                                           ((3, 2, 5, 5), (8, 2, 5, 5), {"padding": (1, 2)})])
def test_conv_padding_is_zero_in_reused_memory(xs, ws, attrs):
    """The padded copy of the input is made once and only its inside is written on later
    calls: its border must start as zeros even where the allocator hands back memory that
    held other numbers."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    want = _torch_conv_reference(x, w, **attrs)
    for layout in (x, np.asfortranarray(x)):
        op = lookup("conv").op([f64[xs], f64[ws]], **attrs)
        kernel = bind(op, "numpy", {})
        for _ in range(20):  # freed blocks of every size the kernel may ask for, full of NaN
            junk = [np.full(n, np.nan) for n in range(8, 4096, 8)]
            del junk
        np.testing.assert_allclose(kernel(layout, w), want, rtol=1e-12, atol=1e-12)


# -- data movement and selection on both backends, against numpy's own indexing --------------------

_rng = np.random.default_rng(42)
_A = _rng.standard_normal((3, 4, 5))
_IDX = np.array([[0, -1, 2], [-5, 4, 0]])  # negative and repeated indices
_SRC = _rng.standard_normal((2, 3, 4))


def _scatter_reference(idx, src, size):
    out = np.zeros((size,) + src.shape[idx.ndim:])
    for i in np.ndindex(*idx.shape):
        out[idx[i] % size] += src[i]
    return out


MOVES = {
    "take rows": (O.take(f64[5, 4], i64[2, 3]), [_A.reshape(-1)[:20].reshape(5, 4), _IDX],
                  lambda t, i: t[i]),
    "take from a vector": (O.take(f64[5], i64[2, 3]), [_A.reshape(-1)[:5], _IDX], lambda t, i: t[i]),
    "take one row": (O.take(f64[5, 2], i64[()]), [_A.reshape(-1)[:10].reshape(5, 2), np.array(-2)], lambda t, i: t[i]),
    "scatter_add": (O.scatter_add(i64[2, 3], f64[2, 3, 4], size=5), [_IDX, _SRC], lambda i, s: _scatter_reference(i, s, 5)),
    "scatter_add one index": (O.scatter_add(i64[()], f64[4], size=3), [np.array(-1), _SRC[0, 0]],
                              lambda i, s: _scatter_reference(i, s, 3)),
    "concat negative axis": (O.concat(f64[3, 4, 5], f64[3, 4, 2], axis=-1), [_A, _A[..., :2]],
                             lambda a, b: np.concatenate([a, b], axis=-1)),
    "concat middle axis": (O.concat(f64[3, 4, 5], f64[3, 1, 5], f64[3, 2, 5], axis=1), [_A, _A[:, :1], _A[:, 2:]],
                           lambda *xs: np.concatenate(xs, axis=1)),
    "split negative axis": (O.split(f64[3, 4, 5], axis=-1, sizes=(2, 0, 3)), [_A], lambda a: (a[..., :2], a[..., 2:2], a[..., 2:])),
    "split one piece": (O.split(f64[3, 4, 5], axis=1, sizes=(4,)), [_A], lambda a: a),
    "slice negative axis": (O.slice(f64[3, 4, 5], axis=-2, start=1, stop=3), [_A], lambda a: a[:, 1:3]),
    "slice last axis": (O.slice(f64[3, 4, 5], axis=2, start=4, stop=5), [_A], lambda a: a[..., 4:]),
    "pad negative axis": (O.pad(f64[3, 4, 5], axis=-2, before=2, after=1), [_A],
                          lambda a: np.concatenate([np.zeros((3, 2, 5)), a, np.zeros((3, 1, 5))], axis=1)),
    "pad first axis": (O.pad(f64[3, 4, 5], axis=0, before=0, after=2), [_A],
                       lambda a: np.concatenate([a, np.zeros((2, 4, 5))], axis=0)),
    "pad a vector": (O.pad(f64[5], axis=-1, before=1, after=0), [_A[0, 0]], lambda a: np.concatenate([[0.0], a])),
    "transpose default": (O.transpose(f64[3, 4, 5]), [_A], lambda a: a.transpose(2, 1, 0)),
    "transpose perm": (O.transpose(f64[3, 4, 5], perm=(1, 2, 0)), [_A], lambda a: a.transpose(1, 2, 0)),
    "broadcast": (O.broadcast(f64[4, 1], shape=(2, 4, 3)), [_A[0, :, :1]], lambda a: np.broadcast_to(a, (2, 4, 3))),
    "reshape": (O.reshape(f64[3, 4, 5], shape=(5, 12)), [_A], lambda a: a.reshape(5, 12)),
    "where": (O.where(f64[3, 4, 5], f64[3, 4, 5], f64[3, 4, 5]), [np.round(_A), _A, -_A],
              lambda c, x, y: np.where(c != 0, x, y)),
    "constant": (O.constant(type=f64[2, 3], value=-1.5), [], lambda: np.full((2, 3), -1.5)),
    "cast to i64": (O.cast(f64[3, 4, 5], dtype=i64), [_A * 3], lambda a: (a * 1).astype(np.int64)),
    "parity keepdims": (O.sum(bit[3, 4, 5], axes=(0, 2), keepdims=True), [_A > 0],
                        lambda a: np.sum(a, axis=(0, 2), keepdims=True) % 2 == 1),
    "parity": (O.sum(bit[3, 4, 5], axes=1), [_A > 0], lambda a: np.sum(a, axis=1) % 2 == 1),
    "max keepdims": (O.max(f64[3, 4, 5], axes=(0, 2), keepdims=True), [_A], lambda a: np.max(a, axis=(0, 2), keepdims=True)),
    "integer sum": (O.sum(i64[3, 4], axes=(1,), keepdims=True), [np.arange(12).reshape(3, 4)],
                    lambda a: np.sum(a, axis=1, keepdims=True)),
}


@pytest.mark.parametrize("case", sorted(MOVES))
def test_data_movement_on_both_backends(case):
    f, xs, ref = MOVES[case]
    want = ref(*xs)
    want = list(want) if isinstance(want, tuple) else [want]
    for backend in ("numpy", "torch"):
        args = xs if backend == "numpy" else [torch.tensor(x) for x in xs]
        got = cg.evaluate(f, *args, backend=backend)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            g = g.numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
            assert g.shape == w.shape and g.dtype == w.dtype, (backend, g.shape, g.dtype, w.shape, w.dtype)
            np.testing.assert_allclose(g, w, rtol=1e-15, atol=1e-15, err_msg=backend)


def test_stable_formulas_at_extreme_values():
    big = np.array([[1000.0, 1000.0, -np.inf], [-np.inf, -np.inf, -np.inf], [-1000.0, 0.0, 3.0]])
    want_lse = np.array([1000.0 + np.log(2.0), -np.inf, np.log(np.exp(-1003.0) + np.exp(-3.0) + 1.0) + 3.0])
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    for backend in ("numpy", "torch"):
        conv = (lambda a: a) if backend == "numpy" else torch.tensor
        back = lambda a: a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)  # noqa: E731
        with np.errstate(over="raise", invalid="raise", divide="ignore"):  # (no overflow, no NaN on the way)
            (lse,) = cg.evaluate(O.logsumexp(f64[3, 3], axes=1), conv(big), backend=backend)
            np.testing.assert_allclose(back(lse), want_lse, rtol=1e-15)
            (lse,) = cg.evaluate(O.logsumexp(f64[3, 3], axes=(1,), keepdims=True), conv(big), backend=backend)
            np.testing.assert_allclose(back(lse), want_lse[:, None], rtol=1e-15)
            (sm,) = cg.evaluate(O.softmax(f64[3, 3], axis=0), conv(np.nan_to_num(big, neginf=-2000.0)), backend=backend)
            np.testing.assert_allclose(back(sm).sum(axis=0), np.ones(3), rtol=1e-15)
            np.testing.assert_allclose(back(sm)[:, 0], [1.0, 0.0, 0.0], atol=1e-300)
            (s,) = cg.evaluate(O.sigmoid(f64[5]), conv(x), backend=backend)
            np.testing.assert_allclose(back(s), [0.0, 1 / (1 + np.exp(40.0)), 0.5, 1 / (1 + np.exp(-40.0)), 1.0],
                                       rtol=1e-14, atol=0)
            (sp,) = cg.evaluate(O.softplus(f64[5]), conv(x), backend=backend)
            np.testing.assert_allclose(back(sp), [0.0, np.log1p(np.exp(-40.0)), np.log(2.0), 40.0 + np.log1p(np.exp(-40.0)),
                                                  1000.0], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dt", [f32, f64])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sigmoid_is_relatively_accurate_far_left_of_zero(dt, backend):
    """sigmoid(x) = e^x / (1 + e^x) is tiny but not 0 for very negative x: right to a few
    ulp relatively, as long as e^x is a normal float of the dtype (below about -87 in f32
    and -708 in f64 it underflows with e^x)."""
    npdt = np.dtype(dt.numpy)
    lo = -80.0 if dt is f32 else -700.0
    x = np.concatenate([np.linspace(lo, -10.0, 101), np.linspace(-10.0, 30.0, 41)]).astype(npdt)
    want = 1.0 / (1.0 + np.exp(-x.astype(np.longdouble)))
    arg = x if backend == "numpy" else torch.tensor(x)
    (got,) = cg.evaluate(O.sigmoid(dt[x.size]), arg, backend=backend)
    got = got.numpy() if isinstance(got, torch.Tensor) else got
    assert got.dtype == npdt
    ulp = np.finfo(npdt).eps
    np.testing.assert_allclose(got.astype(np.longdouble), want, rtol=4 * ulp, atol=0)
    # and compiled: the generated code calls the same kernel
    if backend == "numpy":
        (cgot,) = compile_numpy(prepare(O.sigmoid(dt[x.size])))(x)
        assert np.array_equal(cgot, got)


def test_op_functions_on_types_wires_and_a_builder():
    d = O.exp(f64[3])
    assert isinstance(d, cg.Diagram) and d.dom == cg.Ob(f64[3]) and repr(O.exp) == "cg.ops.exp"
    assert O.get("not").prim is O.not_.prim and O.get("or").prim is O.or_.prim

    @cg.trace(f64[2])
    def g(x):  # a constant has no input wire: it is put into the builder it is given
        c = O.constant(type=f64[2], value=2.0, builder=x.builder)
        assert isinstance(c, cg.Wire)
        return O.sum(x * c, axes=0, keepdims=True)

    (y,) = cg.evaluate(g, np.array([1.0, 3.0]))
    assert y.shape == (1,) and y[0] == 8.0
    with pytest.raises(UnknownOpError, match=r"^unknown op 'nott' \(did you mean 'not'\?\)$"):
        O.get("nott")


@pytest.mark.parametrize("spec", _two_operand_specs())
def test_torch_spells_plain_products_as_matmul(spec):
    """The torch rule writes a plain matrix or vector product (one contracted index, no
    batch index, operands of rank <= 2) as torch.matmul, with torch.t for transposed
    operands or result, and every other contraction as torch.einsum."""
    x, y = spec.split("->")[0].split(",")
    out = spec.split("->")[1]
    shared = set(x) & set(y)
    plain = len(shared) == 1 and not shared & set(out) and len(x) <= 2 and len(y) <= 2
    op = lookup("einsum").op([f64[tuple(SIZES[c] for c in x)], f64[tuple(SIZES[c] for c in y)]], spec=spec)
    kernel = bind(op, "torch")
    graph = torch.fx.symbolic_trace(lambda a, b: kernel(a, b)).graph
    called = {n.target for n in graph.nodes if n.op == "call_function"}
    assert called <= ({torch.matmul, torch.t} if plain else {torch.einsum, torch.functional.einsum}), (spec, called)
    assert (torch.matmul in called) == plain


@pytest.mark.parametrize("t", [f64[2, 3], f32[()], i64[4], bit[3]])
def test_constant_helpers(t):
    for make, value in ((O.zeros, 0), (O.ones, 1), (O.zero, 0), (O.one, 1)):
        d = make(t)
        assert d.dom == cg.Ob() and d.cod == cg.Ob(t)
        (box,) = d.boxes
        v = dict(box.op.attrs)["value"]  # (zeros and ones write floats for float types)
        assert v == value and type(v) is (float if t.dtype.is_float and make in (O.zeros, O.ones) else int)
        for backend in ("numpy", "torch"):
            (x,) = cg.evaluate(d, backend=backend)
            x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            assert x.shape == t.shape and x.dtype == np.dtype(t.dtype.numpy) and np.all(x == value)


# -- the sympy rules: symbolic results, with numbers put in, are the numpy results -------------------

SYMBOLIC = {
    **{name: (lambda name=name: getattr(O, name)(f64[2, 3])) for name in
       ("exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "heaviside", "sign", "relu", "abs", "floor", "softplus")},
    "pow": lambda: O.pow(f64[2, 3], p=2.5),
    "sum": lambda: O.sum(f64[2, 3]),
    "sum keepdims": lambda: O.sum(f64[2, 3], axes=(1,), keepdims=True),
    "sum one axis": lambda: O.sum(f64[2, 3], axes=0),
    "mean": lambda: O.mean(f64[2, 3]),
    "mean keepdims": lambda: O.mean(f64[2, 3], axes=1, keepdims=True),
    "mean axes": lambda: O.mean(f64[2, 3], axes=(0,)),
    "einsum": lambda: O.einsum(f64[2, 3], f64[3], spec="ij,j->i"),
    "pad": lambda: O.pad(f64[2, 3], axis=1, before=1, after=2),  # (numpy's rule on objects: zeros as 0)
}


@pytest.mark.parametrize("case", sorted(SYMBOLIC))
def test_sympy_rules_agree_with_numpy(case):
    import sympy as sp

    f = SYMBOLIC[case]()
    rng = np.random.default_rng(len(case))
    values = [rng.choice([-1.0, 1.0], t.shape) * rng.uniform(0.3, 2.7, t.shape) for t in f.dom]
    if case in ("log", "sqrt", "pow"):
        values = [np.abs(v) for v in values]
    syms = [np.array(sp.symbols(f"x{k}_0:{int(np.prod(t.shape))}", real=True), dtype=object).reshape(t.shape)
            for k, t in enumerate(f.dom)]
    subs = {s: float(v) for S_, V in zip(syms, values) for s, v in zip(S_.ravel(), V.ravel())}
    (sym,) = cg.evaluate(f, *syms, backend="sympy")
    (num,) = cg.evaluate(f, *values)
    sym = np.asarray(sym, dtype=object)
    assert sym.shape == np.shape(num)
    got = np.array([float(sp.sympify(e).subs(subs)) for e in sym.ravel()]).reshape(sym.shape)
    np.testing.assert_allclose(got, num, rtol=1e-12, atol=1e-12)


_REDUCERS = {
    "sum": lambda x, ax, k: np.sum(x, axis=ax, keepdims=k),
    "mean": lambda x, ax, k: np.mean(x, axis=ax, keepdims=k),
    "max": lambda x, ax, k: np.max(x, axis=ax, keepdims=k),
    "logsumexp": lambda x, ax, k: np.log(np.sum(np.exp(x), axis=ax, keepdims=k)),
}


@pytest.mark.parametrize("name", sorted(_REDUCERS))
def test_reductions_keep_size_one_axes_on_both_backends(name):
    """Every set of axes of a [1, 3, 1, 2] operand, with and without keepdims: the axes of
    size 1 that are not reduced stay."""
    x = np.random.default_rng(2).standard_normal((1, 3, 1, 2))
    for m in range(16):
        axes = tuple(a for a in range(4) if m >> a & 1)
        for keepdims in (False, True):
            f = getattr(O, name)(f64[1, 3, 1, 2], axes=axes, keepdims=keepdims)
            want = x if not axes else _REDUCERS[name](x, axes, keepdims)
            for backend in ("numpy", "torch"):
                (got,) = cg.evaluate(f, x if backend == "numpy" else torch.tensor(x), backend=backend)
                got = got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
                assert got.shape == np.shape(want), (axes, keepdims, backend)
                np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("attrs", [{"kernel": 2, "stride": 2}, {"kernel": (4, 2), "stride": (4, 2)},
                                   {"kernel": 3, "stride": 1}])
def test_window_copies_go_straight_into_out(attrs):
    """unfold without padding, and fold of windows that tile the image exactly, copy
    straight into a given out: nothing of the data's size is allocated (128 kB here)."""
    from test_numpy_kernels import _allocated

    x = np.random.default_rng(0).standard_normal((4, 8, 32, 32)).astype(np.float32)
    unfold = bind(lookup("unfold").op([f32[x.shape]], **attrs), "numpy", {})
    cols = unfold(x)
    assert np.array_equal(cols, _unfold_reference(x, **attrs))
    assert _allocated(lambda: unfold(x, out=cols)) < 16_000
    fold = bind(lookup("fold").op([f32[cols.shape]], size=(32, 32), **attrs), "numpy", {})
    img = fold(cols)
    np.testing.assert_allclose(img, _fold_reference(cols, size=(32, 32), **attrs), rtol=1e-6, atol=1e-5)
    if attrs["kernel"] == attrs["stride"]:  # (overlapping windows are added up in a working array)
        assert _allocated(lambda: fold(cols, out=img)) < 16_000


@pytest.mark.parametrize("name", ["exp", "sigmoid", "abs"])
def test_sympy_rules_take_an_empty_operand(name):
    (sym,) = cg.evaluate(getattr(O, name)(f64[0, 3]), np.empty((0, 3), object), backend="sympy")
    assert sym.shape == (0, 3) and sym.dtype == object
