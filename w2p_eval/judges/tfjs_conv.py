"""Convolution, pooling and matrix-product ops of TensorFlow.js graphs as torch functions (NCHW inside).

Attributes (strides, dilations, ksize, padding SAME / VALID / EXPLICIT, data_format, fused_ops) are read from the
node once; constant filters are transposed to torch's layout when the op is built. "SAME" padding is split as TF
splits it (the extra pixel after), and SAME average pooling divides by the real pixels under the window only.
On the CPU a convolution with its bias and activation is one oneDNN call, with its filter reordered for oneDNN
once per input shape and kept (:class:`PackedFilters`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError
from w2p_eval.judges.tfjs_value import Node, Val


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
        return lambda x, fill: _pad_nchw(x, pads, fill)
    if mode != "SAME":
        raise node.refuse(f"padding {mode}")

    def pad(x: torch.Tensor, fill: float) -> torch.Tensor:
        top, bottom = _same_pad(x.shape[2], kernel[0], strides[0], dilations[0])
        left, right = _same_pad(x.shape[3], kernel[1], strides[1], dilations[1])
        return _pad_nchw(x, (left, right, top, bottom), fill) if top or bottom or left or right else x
    return pad


def _pad_nchw(x: torch.Tensor, pads: tuple[int, int, int, int], fill: float) -> torch.Tensor:
    """F.pad of an NCHW tensor (left, right, top, bottom), keeping its memory format and filling only the border
    (F.pad fills the whole new tensor, then copies the inside over it)."""
    left, right, top, bottom = pads
    n, c, h, w = x.shape
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and c > 1 else \
        torch.contiguous_format
    out = torch.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                      memory_format=fmt)
    out[:, :, :top].fill_(fill)
    out[:, :, top + h:].fill_(fill)
    out[:, :, top:top + h, :left].fill_(fill)
    out[:, :, top:top + h, left + w:].fill_(fill)
    out[:, :, top:top + h, left:left + w] = x
    return out


def _activation(node: Node, names: list[str], args: list[Callable[[], torch.Tensor]]):
    """The fused ops after a conv/matmul -> fn(y, nchw) applying them (in place on ``y``, a fresh tensor, where
    torch can). ``args`` are the getters of the extra inputs in order (bias for BiasAdd, alpha for Prelu).
    ``Clamp`` (made by :mod:`w2p_eval.judges.tfjs_fuse` from Minimum/Maximum) reads its bounds from the node's
    ``w2p_clamp`` attribute."""
    steps = []
    args = list(args)
    if sum(n in ("BiasAdd", "Prelu") for n in names) > len(args):
        raise node.refuse(f"fused ops {names} with {len(args)} extra inputs")
    for name in names:
        if name == "BiasAdd":
            get = args.pop(0)
            steps.append(lambda y, c, g=get: y.add_(g().view(1, -1, 1, 1) if c else g()))
        elif name == "Relu":
            steps.append(lambda y, c: y.relu_())
        elif name == "Relu6":
            steps.append(lambda y, c: y.clamp_(0.0, 6.0))
        elif name == "Clamp":
            lo, hi = (float(v) for v in node.attr["w2p_clamp"]["list"]["f"])
            lo_, hi_ = (lo if math.isfinite(lo) else None), (hi if math.isfinite(hi) else None)
            steps.append(lambda y, c, a=lo_, b=hi_: y.clamp_(a, b))
        elif name == "Elu":
            steps.append(lambda y, c: F.elu(y, inplace=True))
        elif name == "Sigmoid":
            steps.append(lambda y, c: y.sigmoid_())
        elif name == "Tanh":
            steps.append(lambda y, c: y.tanh_())
        elif name == "LeakyRelu":
            alpha = node.number("leakyrelu_alpha", 0.2)
            steps.append(lambda y, c, a=alpha: F.leaky_relu(y, a, inplace=True))
        elif name == "Prelu":
            get = args.pop(0)
            steps.append(lambda y, c, g=get: prelu(y, g(), c))
        else:
            raise node.refuse(f"fused op {name}")

    def apply(y: torch.Tensor, nchw: bool) -> torch.Tensor:
        for step in steps:
            y = step(y, nchw)
        return y
    return apply


def prelu(y: torch.Tensor, alpha: torch.Tensor, nchw: bool) -> torch.Tensor:
    """TF's Prelu (y < 0 -> alpha * y): torch's one-pass kernel for one alpha per channel (or one for all)."""
    if nchw and alpha.numel() in (1, y.shape[1]):
        return F.prelu(y, alpha.reshape(-1))
    return torch.where(y >= 0, y, y * (alpha.view(1, -1, 1, 1) if nchw else alpha))


def _fused_args(node: Node, first: int) -> list[Callable[[], torch.Tensor]]:
    """Getters of the fused ops' extra inputs (every input from ``first`` on, as TensorFlow.js reads them)."""
    return [node.param(f"arg{k}", node.const(k, "a fused-op argument")) for k in range(first, len(node.inputs))]


def conv(node: Node, depthwise: bool, fused: bool):
    w = node.const(1, "the filter")
    if w.ndim != 4:
        raise node.refuse(f"filter of shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):  # an int32 filter would fail inside torch's conv
        raise node.refuse(f"filter of dtype {w.dtype} (expected float)")
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
    names, args = (node.strings("fused_ops"), _fused_args(node, 2)) if fused else ([], [])
    bias = None
    if names[:1] == ["BiasAdd"] and args:  # the bias goes into the convolution itself
        bias, names, args = args[0], names[1:], args[1:]
    post = _activation(node, names, args) if names else None
    pointwise = _pointwise(node, names)
    same = node.string("padding", "VALID") == "SAME"
    packed = PackedFilters(strides, dilations, groups)

    def conv2d(x: torch.Tensor, b: torch.Tensor | None, padding: tuple[int, int],
               front: tuple[int, int]) -> torch.Tensor:
        w = get_w()
        if pointwise is not None and x.device.type == "cpu" and x.dtype == torch.float32 \
                and not torch.is_grad_enabled():  # conv + bias + activation in one oneDNN call
            attr, scalars, eager = pointwise
            y = _POINTWISE(x, packed.get(w, front, x.shape, padding), b, list(padding), list(strides),
                           list(dilations), groups, attr, scalars, "")
            return post(y, True) if eager else y
        y = F.conv2d(x, _front_pad(w, front), b, stride=strides, padding=padding, dilation=dilations, groups=groups)
        return post(y, True) if post else y

    def run(v: list[Val]) -> Val:
        x = v[0].as_nchw()
        if x.shape[1] != cin:
            raise InputError(f"expected {cin} channels into '{node.name}', got {x.shape[1]}")
        b = bias().reshape(-1) if bias is not None else None
        if same:
            (top, bottom), (left, right) = (_same_pad(x.shape[2], kh, strides[0], dilations[0]),
                                            _same_pad(x.shape[3], kw, strides[1], dilations[1]))
            if top == bottom and left == right:  # symmetric: torch pads inside the convolution
                return Val(conv2d(x, b, (top, left), (0, 0)), True)
            if (bottom - top, right - left) in ((1, 0), (0, 1), (1, 1)) and dilations == (1, 1):
                # TF's extra pixel after: pad symmetrically by the larger side and give the kernel a zero row /
                # column before, so every output sees exactly TF's window (no padded copy of the input)
                return Val(conv2d(x, b, (bottom, right), (bottom - top, right - left)), True)
        return Val(conv2d(pad(x, 0.0), b, (0, 0), (0, 0)), True)
    return run


def _front_pad(w: torch.Tensor, front: tuple[int, int]) -> torch.Tensor:
    """The filter [O, I, kh, kw] with ``front`` = (rows, columns) of zeros before it (see :func:`conv`)."""
    return F.pad(w, (front[1], 0, front[0], 0)) if front != (0, 0) else w


class PackedFilters:
    """One convolution's filter as oneDNN lays it out for a given input shape, made once and kept (the last
    ``size`` input shapes), so that a call does not reorder the filter again: without it every CPU convolution
    starts with a reorder of its filter, one more parallel region whose threads wait on each other on a busy
    machine (FaceRes at 2 threads on the shared 2-core VM: 1.1-1.3x faster packed; at 1 thread the same speed).
    The packed filter is the same numbers in another memory order: outputs are bit-identical. A filter tensor
    replaced or changed in place (``.to()``, ``copy_``) is packed again; without oneDNN's reorder op the plain
    filter is used."""

    def __init__(self, strides: tuple[int, int], dilations: tuple[int, int], groups: int, size: int = 2):
        self.strides, self.dilations, self.groups, self.size = list(strides), list(dilations), groups, size
        self._cache: dict[tuple, tuple[torch.Tensor, int, torch.Tensor]] = {}

    def get(self, w: torch.Tensor, front: tuple[int, int], shape: torch.Size,
            padding: tuple[int, int]) -> torch.Tensor:
        """``w`` [O, I, kh, kw] float32 (``front`` zero rows/columns added before) for an NCHW input of ``shape``
        and ``padding``: an opaque oneDNN tensor for ``torch.ops.mkldnn._convolution_pointwise``."""
        if _REORDER is None:
            return _front_pad(w, front)
        key = (tuple(shape), tuple(padding), front)
        version = -1 if w.is_inference() else w._version  # an inference tensor keeps no version counter
        hit = self._cache.get(key)
        if hit is not None and hit[0] is w and hit[1] == version:
            return hit[2]
        packed = _REORDER(_front_pad(w, front), list(padding), self.strides, self.dilations, self.groups, list(shape))
        self._cache.pop(key, None)
        while len(self._cache) >= self.size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (w, version, packed)
        return packed


# oneDNN's fused convolution + pointwise op (what torch.compile's CPU backend emits), when this torch has it
_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None
_REORDER = getattr(getattr(torch.ops, "mkldnn", None), "_reorder_convolution_weight", None) \
    if _POINTWISE is not None else None


def _pointwise(node: Node, names: list[str]) -> tuple[str, list[float], bool] | None:
    """(attr, scalars, eager) of ``_convolution_pointwise`` for the fused ops after the bias; ``eager``: oneDNN has
    no such attr, so the convolution runs with "none" and the fused ops after it (:func:`_activation`). None
    without oneDNN's op."""
    if _POINTWISE is None:
        return None
    if not names:
        return "none", [], False
    if names in (["Relu"], ["Relu6"], ["Clamp"]):
        if names == ["Relu"]:
            return "relu", [], False
        lo, hi = (0.0, 6.0) if names == ["Relu6"] else (float(v) for v in node.attr["w2p_clamp"]["list"]["f"])
        if lo == 0.0 and hi == math.inf:
            return "relu", [], False
        if math.isfinite(lo) and math.isfinite(hi):
            return "hardtanh", [lo, hi], False
    return "none", [], True


def pool(node: Node, kind: str):
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


def matmul(node: Node, fused: bool):
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
