"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) as a batched torch network.

The file is read by :func:`w2p_eval.judges.dlib_format.read_dlib_net` (dlib's own serialisation, byte by
byte); the network here is built from that layer list.

The torch module reproduces dlib's forward pass, including its two quirks:

- ``input_rgb_image``: ``(pixel - mean_colour) / 256`` per channel (not 255);
- ``add_prev`` of tensors of different sizes: the sum has the larger size of each dimension and
  each operand counts as zero outside its extent (dlib's ``tt::add``); in the down-sampling units the
  stride-2 convolution has no padding and can come out one pixel smaller than the 2x2 average pool of
  the skip path, and the skip path has fewer channels.

Input: uint8 RGB face chips [N, 150, 150, 3] (as ``dlib.get_face_chip`` makes them); output: float32
[N, 128] descriptors, equal to dlib-bin's up to float rounding.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError
from w2p_eval.judges.dlib_format import CONV_MODE, DlibNetFile, Layer, DlibFormatError, read_dlib_net

log = logging.getLogger(__name__)


class Affine(torch.nn.Module):
    """dlib affine_ in CONV_MODE: x * gamma[c] + beta[c] (a folded batch norm)."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(gamma.reshape(-1).copy()))
        self.bias = torch.nn.Parameter(torch.from_numpy(beta.reshape(-1).copy()))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _conv(layer: Layer) -> torch.nn.Conv2d:
    f = layer.fields
    conv = torch.nn.Conv2d(f["in_channels"], f["num_filters"], (f["nr"], f["nc"]), (f["stride_y"], f["stride_x"]),
                           (f["padding_y"], f["padding_x"]), bias=f["biases"] is not None)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(f["filters"]))
        if f["biases"] is not None:
            conv.bias.copy_(torch.from_numpy(f["biases"]))
    return conv


def _pool(layer: Layer, kind: str) -> torch.nn.Module:
    f = layer.fields
    if f["nr"] == 0 and f["nc"] == 0:
        return GlobalAvgPool() if kind == "avg_pool" else None
    if kind == "max_pool":  # dlib pads max pooling with -inf, like torch
        return torch.nn.MaxPool2d((f["nr"], f["nc"]), (f["stride_y"], f["stride_x"]), (f["padding_y"], f["padding_x"]))
    if f["padding_y"] or f["padding_x"]:
        raise DlibFormatError(f"avg_pool with padding at byte {layer.offset} is not supported")
    return torch.nn.AvgPool2d((f["nr"], f["nc"]), (f["stride_y"], f["stride_x"]))


class GlobalAvgPool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's tt::add(dest, a, b) for tensors of different sizes: each counts as 0 outside its extent."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class ResUnit(torch.nn.Module):
    """dlib's ``relu<residual<block,...>>`` (identity shortcut) or ``relu<residual_down<...>>``
    (2x2 average pool shortcut): relu(add_prev(affine(con(relu(affine(con(x))))), shortcut))."""

    def __init__(self, con1, aff1, con2, aff2, pool=None, relu=True):
        super().__init__()
        self.con1, self.aff1, self.con2, self.aff2 = con1, aff1, con2, aff2
        self.pool = pool
        self.relu = relu

    def forward(self, x):
        y = self.aff2(self.con2(torch.relu(self.aff1(self.con1(x)))))
        y = add_zero_padded(y, self.pool(x) if self.pool is not None else x)
        return torch.relu(y) if self.relu else y


class DlibFaceNet(torch.nn.Module):
    """The descriptor network: uint8 RGB chips [N, H, W, 3] -> float32 [N, 128]."""

    def __init__(self, spec: DlibNetFile):
        super().__init__()
        self.spec_summary = {"loss": spec.loss, "input": spec.input_layer, "input_size": spec.input_size,
                             "n_layers": len(spec.layers)}
        self.register_buffer("mean_rgb", torch.tensor(spec.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_size = spec.input_size
        self.stem, self.units, self.pool, self.fc = _build(spec.layers)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips``: uint8 (or float 0..255) [N, H, W, 3] RGB -> [N, D]."""
        x = self.activations(chips, len(self.units))
        with exact_cudnn(x.is_cuda):
            return self.fc(self.pool(x))

    def activations(self, chips: torch.Tensor, upto: int) -> torch.Tensor:
        """``chips`` (as :meth:`forward`) -> the activations entering residual unit ``upto`` [N, C, H, W]
        (``upto`` = len(units): the last unit's output, before the global pool)."""
        x = chips.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
        x = (x - self.mean_rgb) / 256.0  # dlib's input_rgb_image divides by 256
        with exact_cudnn(x.is_cuda):
            x = self.stem(x)
            for unit in self.units[:upto]:
                x = unit(x)
        return x

    def stages(self) -> list[list[int]]:
        """The residual units grouped into stages, bottom-up: a stage starts at the first unit and at each
        down-sampling unit (dlib's level4 ... level0: units [0-2], [3-6], [7-9], [10-12], [13])."""
        out: list[list[int]] = []
        for i, unit in enumerate(self.units):
            if not out or unit.pool is not None:
                out.append([])
            out[-1].append(i)
        return out


def exact_cudnn(on_cuda: bool):
    """On CUDA, convolutions in full float32 (no TF32), so descriptors match dlib's; a no-op on CPU."""
    if not on_cuda:
        return contextlib.nullcontext()
    c = torch.backends.cudnn
    return c.flags(enabled=c.enabled, benchmark=c.benchmark, deterministic=c.deterministic, allow_tf32=False)


class _Relu(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)


class _Grammar:
    """A cursor over the bottom-up layer list that matches dlib's ResNet grammar piece by piece."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers
        self.kinds = [layer.kind for layer in layers]
        self.i = 0

    def next_is(self, kind: str) -> bool:
        return self.i < len(self.kinds) and self.kinds[self.i] == kind

    def expect(self, kind: str) -> Layer:
        i, layers = self.i, self.layers
        if i >= len(layers) or self.kinds[i] != kind:
            got = layers[i].describe() if i < len(layers) else "the end of the network"
            at = f" (byte {layers[i].offset})" if i < len(layers) else ""
            raise DlibFormatError(f"layer {i}: expected {kind} of dlib's ResNet descriptor, found {got}{at}")
        self.i += 1
        return layers[i]

    def affine(self, conv: torch.nn.Conv2d) -> torch.nn.Module:
        layer = self.expect("affine")
        f = layer.fields
        if f["disabled"]:
            return torch.nn.Identity()
        if f["mode"] != CONV_MODE or f["gamma"].size != conv.out_channels:
            raise DlibFormatError(f"layer {self.i - 1}: expected a per-channel affine of {conv.out_channels} channels, "
                               f"found {layer.describe()} (mode {f['mode']})")
        return Affine(f["gamma"], f["beta"])

    def stem(self) -> list[torch.nn.Module]:
        """(con affine relu)+ [max_pool]"""
        mods: list[torch.nn.Module] = []
        while self.next_is("con"):
            conv = _conv(self.expect("con"))
            mods += [conv, self.affine(conv)]
            mods.append(torch.nn.Identity() if self.expect("relu").fields["disabled"] else _Relu())
        if not mods:
            self.expect("con")
        if self.next_is("max_pool"):
            mods.append(_pool(self.expect("max_pool"), "max_pool"))
        return mods

    def unit(self) -> ResUnit:
        """marker con affine relu con affine [marker marker avg_pool] add_prev relu"""
        self.expect("marker")
        con1 = _conv(self.expect("con"))
        aff1 = self.affine(con1)
        if self.expect("relu").fields["disabled"]:
            raise DlibFormatError(f"layer {self.i - 1}: a disabled relu inside a residual block is not supported")
        con2 = _conv(self.expect("con"))
        aff2 = self.affine(con2)
        pool = None
        if self.next_is("marker"):  # residual_down: tag2, skip1 (back to the unit's input), avg_pool
            self.expect("marker")
            self.expect("marker")
            pool = _pool(self.expect("avg_pool"), "avg_pool")
        self.expect("add_prev")
        relu = not self.expect("relu").fields["disabled"]
        return ResUnit(con1, aff1, con2, aff2, pool, relu)

    def head(self) -> tuple[torch.nn.Module, torch.nn.Linear]:
        """avg_pool(everything) fc, and nothing after it"""
        head_pool = _pool(self.expect("avg_pool"), "avg_pool")
        if not isinstance(head_pool, GlobalAvgPool):
            raise DlibFormatError(f"layer {self.i - 1}: expected avg_pool_everything before the fc layer")
        f = self.expect("fc").fields
        if self.i != len(self.layers):
            raise DlibFormatError(f"layer {self.i}: unexpected {self.layers[self.i].describe()} after the fc layer")
        fc = torch.nn.Linear(f["num_inputs"], f["num_outputs"], bias=f["biases"] is not None)
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(f["weights"].T)))
            if f["biases"] is not None:
                fc.bias.copy_(torch.from_numpy(f["biases"]))
        return head_pool, fc


def _build(layers: list[Layer]):
    """Match the bottom-up layer list against dlib's ResNet grammar and make the torch modules.

    stem   := (con affine relu)+ [max_pool]
    unit   := marker con affine relu con affine add_prev relu                        (residual)
            | marker con affine relu con affine marker marker avg_pool add_prev relu (residual_down)
    head   := avg_pool(everything) fc
    """
    g = _Grammar(layers)
    stem = g.stem()
    units: list[torch.nn.Module] = []
    while g.next_is("marker"):
        units.append(g.unit())
    head_pool, fc = g.head()
    return torch.nn.Sequential(*stem), torch.nn.ModuleList(units), head_pool, fc


def load_dlib_face_net(path, device: str = "cpu") -> DlibFaceNet:
    """The descriptor network read from ``path`` (InputError for a wrong/truncated file), in eval mode."""
    spec = read_dlib_net(path)
    try:
        net = DlibFaceNet(spec)
    except DlibFormatError as exc:
        raise InputError(f"expected dlib's ResNet face descriptor network, got a different network in {path}: "
                         f"{exc}") from None
    log.info("dlib face descriptor read from %s: %d layers, %d residual units, %d parameters", path,
             len(spec.layers), len(net.units), sum(p.numel() for p in net.parameters()))
    # channels-last (NHWC) is what oneDNN's fast convolutions want: ~3x faster on CPU than NCHW here
    return net.to(device).to(memory_format=torch.channels_last).eval().requires_grad_(False)
