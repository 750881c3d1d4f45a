"""The TensorFlow ops a TensorFlow.js graph model may use, as torch functions (see :mod:`w2p_eval.judges.tfjs`).

Semantics are TensorFlow's (NHWC, "SAME" padding split as TF splits it, AvgPool not counting padding). A value
flowing through the graph is a :class:`Val`: a tensor plus ``nchw`` — True when a rank-4 tensor that TF sees as
NHWC is held as NCHW (what conv/pool ops make, so chains of them never transpose). Ops that care about axes
either map them (reductions, elementwise broadcasting) or take the value back to NHWC first (:meth:`Val.nhwc`).

Every builder gets the node (:class:`Node`) and returns ``fn(values: list[Val]) -> Val``; attributes are read
from the node here, once, and constant operands (filters, shapes, axes) are converted at load time by the
builder through ``node.const(i)``. An op not in :data:`OPS` is refused by the reader with one line naming it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError
from w2p_eval.judges.tfjs_conv import conv, matmul, pool, prelu
from w2p_eval.judges.tfjs_value import Node, Val

__all__ = ["OPS", "Node", "Val"]


# ----------------------------------------------------------------------------- elementwise

def _pair(a: Val, b: Val) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Two operands broadcast as TF broadcasts them, in NCHW when either is held so."""
    if not (a.nchw or b.nchw):
        return a.t, b.t, False
    return _like_nchw(a), _like_nchw(b), True


def _like_nchw(v: Val) -> torch.Tensor:
    if v.nchw:
        return v.t
    t = v.t
    if t.dim() > 4:
        raise InputError(f"expected at most rank 4 beside an image tensor, got shape {tuple(t.shape)}")
    return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape)).permute(0, 3, 1, 2)


def _binary(fn):
    def build(node: Node):
        def run(v: list[Val]) -> Val:
            a, b, nchw = _pair(v[0], v[1])
            return Val(fn(a, b), nchw)
        return run
    return build


def _unary(fn):
    def build(node: Node):
        return lambda v: Val(fn(v[0].t), v[0].nchw)
    return build


def _leaky(node: Node):
    alpha = node.number("alpha", 0.2)
    return lambda v: Val(F.leaky_relu(v[0].t, alpha), v[0].nchw)


def _add_n(node: Node):
    def run(v: list[Val]) -> Val:
        out = v[0]
        for other in v[1:]:
            a, b, nchw = _pair(out, other)
            out = Val(a + b, nchw)
        return out
    return run


def _softmax(node: Node):
    return lambda v: Val(torch.softmax(v[0].t, dim=1 if v[0].nchw else -1), v[0].nchw)


# ----------------------------------------------------------------------------- reductions and shapes

_PHYSICAL = (0, 2, 3, 1)  # NHWC axis -> its place in NCHW


def _reduce(fn):
    def build(node: Node):
        axes = [int(a) for a in np.atleast_1d(node.const(1, "the reduction axes"))]
        keep = node.flag("keep_dims")

        def run(v: list[Val]) -> Val:
            rank = v[0].t.dim()
            logical = sorted(a % rank for a in axes)
            if keep and v[0].nchw:
                return Val(fn(v[0].t, [_PHYSICAL[a] for a in logical], True), True)
            return Val(fn(v[0].nhwc(), logical, keep))
        return run
    return build


def _max(x, dims, keep):
    return torch.amax(x, dim=dims, keepdim=keep)


def _min(x, dims, keep):
    return torch.amin(x, dim=dims, keepdim=keep)


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keep)
    return x


def _reshape(node: Node):
    shape = [int(s) for s in np.atleast_1d(node.const(1, "the shape"))]
    return lambda v: Val(v[0].nhwc().reshape(shape))


def _squeeze(node: Node):
    dims = node.ints("squeeze_dims", []) or node.ints("axis", [])

    def run(v: list[Val]) -> Val:
        x = v[0].nhwc()
        rank = x.dim()
        keep = [s for i, s in enumerate(x.shape)
                if not ((i in {d % rank for d in dims}) if dims else s == 1)]
        return Val(x.reshape(keep))
    return run


def _expand_dims(node: Node):
    axis = int(np.atleast_1d(node.const(1, "the axis"))[0])

    def run(v: list[Val]) -> Val:
        x = v[0].nhwc()
        return Val(x.unsqueeze(axis if axis >= 0 else x.dim() + 1 + axis))
    return run


def _pad(node: Node):
    pads = node.const(1, "the paddings").astype(np.int64)
    value = float(node.consts[2]) if len(node.consts) > 2 and node.consts[2] is not None else 0.0
    flat = [int(p) for pair in pads[::-1] for p in pair]  # F.pad wants last axis first
    return lambda v: Val(F.pad(v[0].nhwc(), flat, value=value))


def _concat(node: Node):
    axis = int(np.atleast_1d(node.const(len(node.inputs) - 1, "the axis"))[0])

    def run(v: list[Val]) -> Val:
        parts = [x.nhwc() for x in v[:-1]]
        return Val(torch.cat(parts, dim=axis % parts[0].dim()))
    return run


def _strided_slice(node: Node):
    begin, end, step = (np.atleast_1d(node.const(i, what)).astype(np.int64).tolist()
                        for i, what in ((1, "begin"), (2, "end"), (3, "strides")))
    masks = {k: node.integer(k) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                          "shrink_axis_mask")}
    if masks["ellipsis_mask"]:
        raise node.refuse("ellipsis_mask")
    if any(s == 0 for s in step):
        raise node.refuse("stride 0")

    def run(v: list[Val]) -> Val:
        x = v[0].nhwc()
        index, squeeze, dim = [], [], 0
        for i in range(len(begin)):
            bit = 1 << i
            if masks["new_axis_mask"] & bit:
                index.append(None)
                continue
            if masks["shrink_axis_mask"] & bit:
                b = begin[i] + (x.shape[dim] if begin[i] < 0 else 0)
                index.append(slice(b, b + 1))
                squeeze.append(len(index) - 1)
            else:
                b = None if masks["begin_mask"] & bit else begin[i]
                e = None if masks["end_mask"] & bit else end[i]
                index.append(slice(b, e, step[i]) if step[i] > 0 else None)
                if step[i] < 0:
                    raise node.refuse("negative stride")
            dim += 1
        y = x[tuple(index)]
        return Val(y.reshape([s for i, s in enumerate(y.shape) if i not in squeeze]) if squeeze else y)
    return run


def _identity(node: Node):
    return lambda v: v[0]


def _prelu(node: Node):
    def run(v: list[Val]) -> Val:
        x, alpha, nchw = _pair(v[0], v[1])
        if nchw and alpha.numel() in (1, x.shape[1]):
            return Val(prelu(x, alpha, True), True)
        return Val(torch.where(x >= 0, x, x * alpha), nchw)
    return run


def _conv_builder(depthwise: bool, fused: bool):
    return lambda node: conv(node, depthwise, fused)


OPS: dict[str, Callable[[Node], Callable[[list[Val]], Val]]] = {
    "Conv2D": _conv_builder(False, False),
    "_FusedConv2D": _conv_builder(False, True),
    "DepthwiseConv2dNative": _conv_builder(True, False),
    "DepthwiseConv2d": _conv_builder(True, False),
    "FusedDepthwiseConv2dNative": _conv_builder(True, True),
    "MatMul": lambda node: matmul(node, False),
    "_FusedMatMul": lambda node: matmul(node, True),
    "MaxPool": lambda node: pool(node, "max"),
    "AvgPool": lambda node: pool(node, "avg"),
    "Add": _binary(torch.add), "AddV2": _binary(torch.add), "BiasAdd": _binary(torch.add),
    "Sub": _binary(torch.sub), "Mul": _binary(torch.mul), "RealDiv": _binary(torch.div),
    "Div": _binary(torch.div), "Maximum": _binary(torch.maximum), "Minimum": _binary(torch.minimum),
    "SquaredDifference": _binary(lambda a, b: (a - b) * (a - b)), "AddN": _add_n,
    "Relu": _unary(torch.relu), "Relu6": _unary(lambda x: torch.clamp(x, 0.0, 6.0)), "Elu": _unary(F.elu),
    "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh), "Rsqrt": _unary(torch.rsqrt),
    "Sqrt": _unary(torch.sqrt), "Square": _unary(torch.square), "Abs": _unary(torch.abs),
    "Neg": _unary(torch.neg), "Exp": _unary(torch.exp), "Log": _unary(torch.log),
    "LeakyRelu": _leaky, "Prelu": _prelu, "Softmax": _softmax, "Identity": _identity,
    "Mean": _reduce(lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
    "Sum": _reduce(lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
    "Max": _reduce(_max), "Min": _reduce(_min), "Prod": _reduce(_prod),
    "Reshape": _reshape, "Squeeze": _squeeze, "ExpandDims": _expand_dims, "Pad": _pad, "PadV2": _pad,
    "ConcatV2": _concat, "StridedSlice": _strided_slice,
}

# inputs each op reads (a node with fewer is refused when the graph is built, not an IndexError at run time)
MIN_INPUTS: dict[str, int] = {
    **{op: 2 for op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "DepthwiseConv2d",
                        "FusedDepthwiseConv2dNative", "MatMul", "_FusedMatMul", "Add", "AddV2", "BiasAdd", "Sub",
                        "Mul", "RealDiv", "Div", "Maximum", "Minimum", "SquaredDifference", "Prelu", "Mean", "Sum",
                        "Max", "Min", "Prod", "Reshape", "ExpandDims", "Pad", "PadV2", "ConcatV2")},
    "StridedSlice": 4,
}
