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

import base64
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError


@dataclass
class Val:
    """One tensor of the graph: ``t`` as held, ``nchw`` when ``t`` is a rank-4 NHWC value stored as NCHW."""

    t: torch.Tensor
    nchw: bool = False

    def nhwc(self) -> torch.Tensor:
        """The tensor in TF's own layout."""
        return self.t.permute(0, 2, 3, 1) if self.nchw else self.t

    def as_nchw(self) -> torch.Tensor:
        """A rank-4 NHWC value as NCHW (for conv/pool ops)."""
        if self.nchw:
            return self.t
        if self.t.dim() != 4:
            raise InputError(f"expected a rank-4 NHWC tensor for a conv/pool op, got shape {tuple(self.t.shape)}")
        return self.t.permute(0, 3, 1, 2)


@dataclass
class Node:
    """One GraphDef node: name, op, inputs (names), attr (JSON as in model.json) and its constant operands.

    ``consts`` holds the numpy value of every input that is a Const node (None otherwise); ``param`` registers
    a tensor made from a constant on the module (so ``.to(device)`` moves it) and returns a getter."""

    name: str
    op: str
    inputs: list[str]
    attr: dict
    consts: list[np.ndarray | None]
    param: Callable[[str, np.ndarray], Callable[[], torch.Tensor]] = field(repr=False, default=None)

    def const(self, i: int, what: str) -> np.ndarray:
        if i >= len(self.consts) or self.consts[i] is None:
            raise InputError(f"expected {what} (input {i}) of {self.op} node '{self.name}' to be a constant "
                             f"in the model file, got {'nothing' if i >= len(self.consts) else self.inputs[i]}")
        return self.consts[i]

    def ints(self, key: str, default=None) -> list[int]:
        value = self.attr.get(key, {}).get("list", {}).get("i")
        return [int(v) for v in value] if value else default

    def string(self, key: str, default: str = "") -> str:
        value = self.attr.get(key, {}).get("s")
        return base64.b64decode(value).decode() if value else default

    def strings(self, key: str) -> list[str]:
        return [base64.b64decode(v).decode() for v in self.attr.get(key, {}).get("list", {}).get("s", [])]

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self.attr.get(key, {}).get("b", default))

    def number(self, key: str, default: float = 0.0) -> float:
        return float(self.attr.get(key, {}).get("f", default))

    def integer(self, key: str, default: int = 0) -> int:
        return int(self.attr.get(key, {}).get("i", default))

    def refuse(self, what: str) -> InputError:
        return InputError(f"unsupported {what} in {self.op} node '{self.name}' of the TensorFlow.js model")


# ----------------------------------------------------------------------------- convolution and pooling

def _spatial(node: Node, key: str, default: int = 1) -> tuple[int, int]:
    """(h, w) of an NHWC attribute list such as strides/dilations/ksize."""
    values = node.ints(key, [default] * 4)
    if node.string("data_format", "NHWC") != "NHWC":
        raise node.refuse(f"data_format {node.string('data_format')}")
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise node.refuse(f"{key} {values}")
    return values[1], values[2]


def _same_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _padder(node: Node, kernel: tuple[int, int], strides, dilations) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """fn(x NCHW, fill) -> x padded as the node's padding attribute says (SAME / VALID / EXPLICIT)."""
    mode = node.string("padding", "VALID")
    if mode == "VALID":
        return lambda x, fill: x
    if mode == "EXPLICIT":
        p = node.ints("explicit_paddings", [0] * 8)
        if len(p) != 8 or any(p[:2]) or any(p[6:]):
            raise node.refuse(f"explicit_paddings {p}")
        pads = (p[4], p[5], p[2], p[3])
        return lambda x, fill: F.pad(x, pads, value=fill)
    if mode != "SAME":
        raise node.refuse(f"padding {mode}")

    def pad(x: torch.Tensor, fill: float) -> torch.Tensor:
        top, bottom = _same_pad(x.shape[2], kernel[0], strides[0], dilations[0])
        left, right = _same_pad(x.shape[3], kernel[1], strides[1], dilations[1])
        return F.pad(x, (left, right, top, bottom), value=fill) if top or bottom or left or right else x
    return pad


def _activation(node: Node, names: list[str], args: list[Callable[[], torch.Tensor]]):
    """The fused ops after a conv/matmul -> fn(y, nchw) applying them. ``args`` are the getters of the
    extra inputs in order (bias for BiasAdd, alpha for Prelu)."""
    steps = []
    args = list(args)
    if sum(n in ("BiasAdd", "Prelu") for n in names) > len(args):
        raise node.refuse(f"fused ops {names} with {len(args)} extra inputs")
    for name in names:
        if name == "BiasAdd":
            get = args.pop(0)
            steps.append(lambda y, c, g=get: y + (g().view(1, -1, 1, 1) if c else g()))
        elif name == "Relu":
            steps.append(lambda y, c: torch.relu(y))
        elif name == "Relu6":
            steps.append(lambda y, c: torch.clamp(y, 0.0, 6.0))
        elif name == "Elu":
            steps.append(lambda y, c: F.elu(y))
        elif name == "Sigmoid":
            steps.append(lambda y, c: torch.sigmoid(y))
        elif name == "Tanh":
            steps.append(lambda y, c: torch.tanh(y))
        elif name == "LeakyRelu":
            alpha = node.number("leakyrelu_alpha", 0.2)
            steps.append(lambda y, c, a=alpha: F.leaky_relu(y, a))
        elif name == "Prelu":
            get = args.pop(0)
            steps.append(lambda y, c, g=get: torch.where(y >= 0, y, y * (g().view(1, -1, 1, 1) if c else g())))
        else:
            raise node.refuse(f"fused op {name}")

    def apply(y: torch.Tensor, nchw: bool) -> torch.Tensor:
        for step in steps:
            y = step(y, nchw)
        return y
    return apply


def _fused_args(node: Node, first: int) -> list[Callable[[], torch.Tensor]]:
    """Getters of the fused ops' extra inputs (every input from ``first`` on, as TensorFlow.js reads them)."""
    return [node.param(f"arg{k}", node.const(k, "a fused-op argument")) for k in range(first, len(node.inputs))]


def _conv(node: Node, depthwise: bool, fused: bool):
    w = node.const(1, "the filter")
    if w.ndim != 4:
        raise node.refuse(f"filter of shape {w.shape}")
    kh, kw, cin, mult = w.shape
    if depthwise:  # [kh, kw, C, M] -> [C*M, 1, kh, kw], output channel c*M+m as TF orders it
        weight = np.ascontiguousarray(w.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None])
        groups = cin
    else:  # [kh, kw, Cin, Cout] -> [Cout, Cin, kh, kw]
        weight = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
        groups = 1
    get_w = node.param("filter", weight)
    strides, dilations = _spatial(node, "strides"), _spatial(node, "dilations")
    pad = _padder(node, (kh, kw), strides, dilations)
    post = _activation(node, node.strings("fused_ops"), _fused_args(node, 2)) if fused else None

    def run(v: list[Val]) -> Val:
        x = v[0].as_nchw()
        if x.shape[1] != cin:
            raise InputError(f"expected {cin} channels into '{node.name}', got {x.shape[1]}")
        y = F.conv2d(pad(x, 0.0), get_w(), stride=strides, dilation=dilations, groups=groups)
        return Val(post(y, True) if post else y, True)
    return run


def _pool(node: Node, kind: str):
    kernel, strides = _spatial(node, "ksize"), _spatial(node, "strides")
    pad = _padder(node, kernel, strides, (1, 1))
    same = node.string("padding", "VALID") != "VALID"

    def run(v: list[Val]) -> Val:
        x = v[0].as_nchw()
        if kind == "max":
            return Val(F.max_pool2d(pad(x, -math.inf), kernel, strides), True)
        total = F.avg_pool2d(pad(x, 0.0), kernel, strides)
        if same:  # TF divides by the number of real (unpadded) inputs under the window
            ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
            total = total / F.avg_pool2d(pad(ones, 0.0), kernel, strides)
        return Val(total, True)
    return run


def _matmul(node: Node, fused: bool):
    ta, tb = node.flag("transpose_a"), node.flag("transpose_b")
    consts = node.consts
    get_b = node.param("b", consts[1]) if len(consts) > 1 and consts[1] is not None else None
    post = _activation(node, node.strings("fused_ops"), _fused_args(node, 2)) if fused else None

    def run(v: list[Val]) -> Val:
        a = v[0].nhwc()
        b = get_b() if get_b is not None else v[1].nhwc()
        a = a.transpose(-1, -2) if ta else a
        b = b.transpose(-1, -2) if tb else b
        y = a @ b
        return Val(post(y, False) if post else y)
    return run


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
        return Val(torch.where(x >= 0, x, x * alpha), nchw)
    return run


def _conv_builder(depthwise: bool, fused: bool):
    return lambda node: _conv(node, depthwise, fused)


OPS: dict[str, Callable[[Node], Callable[[list[Val]], Val]]] = {
    "Conv2D": _conv_builder(False, False),
    "_FusedConv2D": _conv_builder(False, True),
    "DepthwiseConv2dNative": _conv_builder(True, False),
    "DepthwiseConv2d": _conv_builder(True, False),
    "FusedDepthwiseConv2dNative": _conv_builder(True, True),
    "MatMul": lambda node: _matmul(node, False),
    "_FusedMatMul": lambda node: _matmul(node, True),
    "MaxPool": lambda node: _pool(node, "max"),
    "AvgPool": lambda node: _pool(node, "avg"),
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
