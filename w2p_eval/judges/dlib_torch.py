"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) as a batched torch network.

:func:`read_dlib_net` reads dlib's own serialisation of the trained ``anet_type`` (see dlib's
``examples/dnn_face_recognition_ex.cpp``) byte by byte, following ``dlib/serialize.h`` (variable-length
integers, mantissa/exponent floats, length-prefixed strings, ``'0'``/``'1'`` bools),
``dlib/cuda/tensor.h`` (tensors: 4 sizes + raw little-endian float32), ``dlib/dnn/core.h`` (how
``add_loss_layer``, ``add_layer``, ``add_tag_layer`` and ``add_skip_layer`` nest) and ``dlib/dnn/layers.h``
/ ``input.h`` (each layer's fields). Everything the file holds comes from the file: the order of the
layers, every convolution's filter count, kernel, stride and padding, the folded batch-norm ("affine")
scales and shifts, the pooling windows, the final fully connected matrix and the input layer's mean
colour. What the file does not hold is which tag an ``add_prev``/``skip`` refers to - in dlib that is a
template argument of the compiled network type - so the tag/skip markers are matched against the two
residual units of that type (``residual`` and ``residual_down``); a file whose layer sequence is not
made of those units is rejected with one line.

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
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError

log = logging.getLogger(__name__)

CONV_MODE, FC_MODE = 0, 1
FC_NO_BIAS = 1


class _FormatError(Exception):
    pass


@dataclass
class Layer:
    """One computational layer as stored in the file (``kind``: con, affine, relu, max_pool, avg_pool,
    add_prev, fc) or a tag/skip marker (``kind`` "marker": wrapper version 1, no fields)."""

    kind: str
    version: str = ""
    fields: dict = field(default_factory=dict)
    offset: int = 0  # byte offset of the layer's fields in the file

    def describe(self) -> str:
        f = self.fields
        if self.kind == "con":
            return (f"con {f['num_filters']}x{f['in_channels']}x{f['nr']}x{f['nc']} stride {f['stride_y']} "
                    f"pad {f['padding_y']}")
        if self.kind in ("max_pool", "avg_pool"):
            return f"{self.kind} {f['nr']}x{f['nc']} stride {f['stride_y']} pad {f['padding_y']}"
        if self.kind == "fc":
            return f"fc {f['num_inputs']}->{f['num_outputs']}"
        if self.kind == "affine":
            return f"affine {f['gamma'].size}"
        return self.kind


@dataclass
class DlibNetFile:
    """What :func:`read_dlib_net` found: the loss, the input layer and the layers bottom-up."""

    loss: str
    loss_fields: dict
    input_layer: str
    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int] | None
    layers: list[Layer]
    n_bytes: int


class _Cursor:
    """Reads dlib's serialisation primitives from a bytes object (``dlib/serialize.h``)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise _FormatError(f"file ends at byte {len(self.data)} while reading {what} (truncated)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str, max_bytes: int = 8) -> int:
        """A signed integer: control byte (size in the low nibble, 0x80 = negative) + little-endian bytes."""
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if size == 0 or size > max_bytes or ctrl & 0x70:
            raise _FormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1} ({what})")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def uint(self, what: str, max_bytes: int = 8) -> int:
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x8F
        if size == 0 or size > max_bytes:
            raise _FormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1} ({what})")
        return int.from_bytes(self._take(size, what), "little")

    def float(self, what: str) -> float:
        """float_details: int64 mantissa, int16 exponent; value = mantissa * 2**exponent."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise _FormatError(f"expected a binary float at byte {self.pos} ({what}), found the old ASCII format")
        mantissa = self.int(what)
        exponent = self.int(what, max_bytes=2)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def string(self, what: str, max_len: int = 256) -> str:
        n = self.uint(what)
        if n > max_len:
            raise _FormatError(f"expected a short name at byte {self.pos} ({what}), found a length of {n}")
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise _FormatError(f"expected a layer name at byte {self.pos - n} ({what}), found binary data") from None

    def bool(self, what: str) -> bool:
        ch = self._take(1, what)
        if ch not in (b"0", b"1"):
            raise _FormatError(f"expected a bool ('0' or '1') at byte {self.pos - 1} ({what}), found 0x{ch[0]:02x}")
        return ch == b"1"

    def tensor(self, what: str) -> np.ndarray:
        """resizable_tensor: version 2, num_samples, k, nr, nc (long long), then float32 little-endian data."""
        if self.int(what) != 2:
            raise _FormatError(f"expected a tensor (version 2) before byte {self.pos} ({what})")
        shape = tuple(self.int(what) for _ in range(4))
        if min(shape) < 0:
            raise _FormatError(f"negative tensor size {shape} before byte {self.pos} ({what})")
        n = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * n, f"{what} ({n} floats)")
        return np.frombuffer(raw, "<f4").reshape(shape)

    def alias(self, what: str) -> tuple[int, ...]:
        """alias_tensor: version 1 + 4 sizes (a view into a layer's params)."""
        if self.int(what) != 1:
            raise _FormatError(f"expected an alias_tensor (version 1) before byte {self.pos} ({what})")
        return tuple(self.int(what) for _ in range(4))

    def peek_input_name(self) -> bool:
        """Whether a string naming an input layer ("input_...") starts here (without moving)."""
        save = self.pos
        try:
            n = self.uint("peek")
            return 6 <= n <= 64 and self.data[self.pos:self.pos + 6] == b"input_"
        except _FormatError:
            return False
        finally:
            self.pos = save


def _view(params: np.ndarray, offset: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    flat = params.reshape(-1)
    n = int(np.prod(shape))
    if offset + n > flat.size:
        raise _FormatError(f"{what}: needs {offset + n} parameters, the layer stores {flat.size}")
    return flat[offset:offset + n].reshape(shape).copy()


_MULTIPLIERS = ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                "bias_weight_decay_multiplier")


def _read_con(cur: _Cursor, name: str, start: int) -> Layer:
    params = cur.tensor(f"{name} params")
    f = {"num_filters": cur.int("num_filters"), "nr": cur.int("nr"), "nc": cur.int("nc"),
         "stride_y": cur.int("stride_y"), "stride_x": cur.int("stride_x"),
         "padding_y": cur.int("padding_y"), "padding_x": cur.int("padding_x")}
    fshape, _ = cur.alias("filters"), cur.alias("biases")
    for what in _MULTIPLIERS:
        cur.float(what)
    use_bias = cur.bool("use_bias") if name in ("con_5", "con_6") else True
    use_relu = cur.bool("use_relu") if name == "con_6" else False
    if fshape[0] != f["num_filters"] or fshape[2:] != (f["nr"], f["nc"]):
        raise _FormatError(f"{name} at byte {start}: filter shape {fshape} does not match "
                           f"{f['num_filters']} filters of {f['nr']}x{f['nc']}")
    filters = _view(params, 0, fshape, name)
    biases = _view(params, filters.size, (f["num_filters"],), name) if use_bias else None
    f.update(in_channels=fshape[1], filters=filters, biases=biases, use_relu=use_relu)
    return Layer("con", name, f, start)


def _read_affine(cur: _Cursor, name: str, start: int) -> Layer:
    params = cur.tensor("affine params")
    gshape, bshape = cur.alias("gamma"), cur.alias("beta")
    mode = cur.int("mode")
    disabled = cur.bool("disabled") if name == "affine_2" else False
    gamma = _view(params, 0, gshape, name)
    beta = _view(params, gamma.size, bshape, name)
    if mode not in (CONV_MODE, FC_MODE):
        raise _FormatError(f"{name} at byte {start}: unknown mode {mode}")
    return Layer("affine", name, {"gamma": gamma, "beta": beta, "mode": mode, "disabled": disabled}, start)


def _read_fc(cur: _Cursor, name: str, start: int) -> Layer:
    f = {"num_outputs": cur.uint("num_outputs"), "num_inputs": cur.uint("num_inputs")}
    params = cur.tensor("fc params")
    wshape, _ = cur.alias("weights"), cur.alias("biases")
    bmode = cur.int("bias_mode")
    for what in _MULTIPLIERS:
        cur.float(what)
    use_bias = cur.bool("use_bias") if name == "fc_3" else True
    has_bias = bmode != FC_NO_BIAS and use_bias
    weights = _view(params, 0, wshape, name).reshape(wshape[0], wshape[1])
    if weights.shape != (f["num_inputs"], f["num_outputs"]):
        raise _FormatError(f"{name} at byte {start}: weights {weights.shape} for "
                           f"{f['num_inputs']} inputs and {f['num_outputs']} outputs")
    f.update(weights=weights, biases=_view(params, weights.size, (f["num_outputs"],), name) if has_bias else None)
    return Layer("fc", name, f, start)


def _read_details(cur: _Cursor) -> Layer:
    """One layer's fields (dlib/dnn/layers.h deserialize functions)."""
    start = cur.pos
    name = cur.string("layer name")
    if name in ("con_4", "con_5", "con_6"):
        return _read_con(cur, name, start)
    if name in ("affine_", "affine_2"):
        return _read_affine(cur, name, start)
    if name in ("fc_2", "fc_3"):
        return _read_fc(cur, name, start)
    if name in ("bn_con2", "bn_fc2"):
        raise _FormatError(f"layer {name} at byte {start}: a training-mode batch-norm layer; this reader expects the "
                           f"inference network, whose batch norms are stored as affine_ layers")
    if name in ("relu_", "relu_2"):
        disabled = cur.bool("disabled") if name == "relu_2" else False
        return Layer("relu", name, {"disabled": disabled}, start)
    if name in ("max_pool_2", "avg_pool_2"):
        f = {"nr": cur.int("nr"), "nc": cur.int("nc"), "stride_y": cur.int("stride_y"),
             "stride_x": cur.int("stride_x"), "padding_y": cur.int("padding_y"), "padding_x": cur.int("padding_x")}
        return Layer(name[:-2], name, f, start)
    if name == "add_prev_":
        return Layer("add_prev", name, {}, start)
    raise _FormatError(f"unsupported layer {name!r} at byte {start}")


def _read_layer_state(cur: _Cursor, input_version: int | None = None) -> None:
    """The training state add_layer stores after a layer's fields (read and dropped)."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        cur.bool(what)
    cur.tensor("x_grad")
    cur.tensor("cached_output")
    if input_version is None:
        cur.tensor("params_grad")
    else:
        cur.tensor("grad_final")
        if input_version >= 3:
            cur.uint("sample_expansion_factor")


def parse_dlib_net(data: bytes) -> DlibNetFile:
    """Parse a serialised ``loss_metric`` network (raises _FormatError)."""
    cur = _Cursor(data)
    if cur.int("loss layer version") != 1:
        raise _FormatError("expected add_loss_layer version 1 at byte 0")
    loss = cur.string("loss name")
    loss_fields = {}
    if loss == "loss_metric_2":
        loss_fields = {"margin": cur.float("margin"), "distance_threshold": cur.float("dist_thresh")}
    elif loss != "loss_metric_":
        raise _FormatError(f"expected a loss_metric network, found loss {loss!r}")
    # add_layer / tag / skip wrappers, outermost first: each writes its version, then its subnetwork,
    # then (add_layer only) its fields - so the versions come first, down to the input layer.
    wrappers: list[int] = []
    while True:
        version = cur.int("layer version")
        if cur.peek_input_name():
            input_version = version
            break
        if version not in (1, 2):
            raise _FormatError(f"unexpected layer version {version} before byte {cur.pos}")
        wrappers.append(version)  # 2 = add_layer with fields; 1 = tag or skip (no fields)
        if len(wrappers) > 100_000:
            raise _FormatError("no input layer found")
    if input_version not in (2, 3):
        raise _FormatError(f"unexpected input add_layer version {input_version}")
    input_layer = cur.string("input layer name")
    if input_layer not in ("input_rgb_image", "input_rgb_image_sized"):
        raise _FormatError(f"expected an RGB image input layer, found {input_layer!r}")
    mean = (cur.float("avg_red"), cur.float("avg_green"), cur.float("avg_blue"))
    size = (cur.uint("nr"), cur.uint("nc")) if input_layer == "input_rgb_image_sized" else None
    layers = [_read_details(cur)]
    _read_layer_state(cur, input_version)
    for version in reversed(wrappers):
        if version == 1:
            layers.append(Layer("marker", offset=cur.pos))
        else:
            layers.append(_read_details(cur))
            _read_layer_state(cur)
    if cur.pos != len(data):
        raise _FormatError(f"{len(data) - cur.pos} unexpected bytes after the network (from byte {cur.pos})")
    return DlibNetFile(loss, loss_fields, input_layer, mean, size, layers, len(data))


def read_dlib_net(path) -> DlibNetFile:
    """Read a serialised dlib metric-learning network; a wrong or truncated file -> InputError (one line)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"expected a readable dlib network file, got {path} ({exc.strerror or exc})") from None
    try:
        return parse_dlib_net(data)
    except _FormatError as exc:
        raise InputError(f"expected dlib's face descriptor network (dlib_face_recognition_resnet_model_v1.dat "
                         f"format), got an unreadable file {path} ({len(data)} bytes): {exc}") from None


# ---------------------------------------------------------------------------------------------- torch modules
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
        raise _FormatError(f"avg_pool with padding at byte {layer.offset} is not supported")
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
            raise _FormatError(f"layer {i}: expected {kind} of dlib's ResNet descriptor, found {got}{at}")
        self.i += 1
        return layers[i]

    def affine(self, conv: torch.nn.Conv2d) -> torch.nn.Module:
        layer = self.expect("affine")
        f = layer.fields
        if f["disabled"]:
            return torch.nn.Identity()
        if f["mode"] != CONV_MODE or f["gamma"].size != conv.out_channels:
            raise _FormatError(f"layer {self.i - 1}: expected a per-channel affine of {conv.out_channels} channels, "
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
            raise _FormatError(f"layer {self.i - 1}: a disabled relu inside a residual block is not supported")
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
            raise _FormatError(f"layer {self.i - 1}: expected avg_pool_everything before the fc layer")
        f = self.expect("fc").fields
        if self.i != len(self.layers):
            raise _FormatError(f"layer {self.i}: unexpected {self.layers[self.i].describe()} after the fc layer")
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
    except _FormatError as exc:
        raise InputError(f"expected dlib's ResNet face descriptor network, got a different network in {path}: "
                         f"{exc}") from None
    log.info("dlib face descriptor read from %s: %d layers, %d residual units, %d parameters", path,
             len(spec.layers), len(net.units), sum(p.numel() for p in net.parameters()))
    # channels-last (NHWC) is what oneDNN's fast convolutions want: ~3x faster on CPU than NCHW here
    return net.to(device).to(memory_format=torch.channels_last).eval().requires_grad_(False)
