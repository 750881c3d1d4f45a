"""dlib's serialisation of its ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``), read in
pure Python + numpy: the layer list, every weight and the input layer's mean colour (no torch here; the torch
network built from it: :mod:`w2p_eval.judges.dlib_torch`).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2p_eval.errors import InputError

CONV_MODE, FC_MODE = 0, 1
FC_NO_BIAS = 1


class DlibFormatError(Exception):
    """The bytes are not the network the reader expects (the callers turn it into one InputError line)."""


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
            raise DlibFormatError(f"file ends at byte {len(self.data)} while reading {what} (truncated)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str, max_bytes: int = 8) -> int:
        """A signed integer: control byte (size in the low nibble, 0x80 = negative) + little-endian bytes."""
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if size == 0 or size > max_bytes or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1} ({what})")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def uint(self, what: str, max_bytes: int = 8) -> int:
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x8F
        if size == 0 or size > max_bytes:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1} ({what})")
        return int.from_bytes(self._take(size, what), "little")

    def float(self, what: str) -> float:
        """float_details: int64 mantissa, int16 exponent; value = mantissa * 2**exponent."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"expected a binary float at byte {self.pos} ({what}), found the old ASCII format")
        mantissa = self.int(what)
        exponent = self.int(what, max_bytes=2)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def string(self, what: str, max_len: int = 256) -> str:
        n = self.uint(what)
        if n > max_len:
            raise DlibFormatError(f"expected a short name at byte {self.pos} ({what}), found a length of {n}")
        raw = self._take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise DlibFormatError(f"expected a layer name at byte {self.pos - n} ({what}), found binary data") from None

    def bool(self, what: str) -> bool:
        ch = self._take(1, what)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"expected a bool ('0' or '1') at byte {self.pos - 1} ({what}), found 0x{ch[0]:02x}")
        return ch == b"1"

    def tensor(self, what: str) -> np.ndarray:
        """resizable_tensor: version 2, num_samples, k, nr, nc (long long), then float32 little-endian data."""
        if self.int(what) != 2:
            raise DlibFormatError(f"expected a tensor (version 2) before byte {self.pos} ({what})")
        shape = tuple(self.int(what) for _ in range(4))
        if min(shape) < 0:
            raise DlibFormatError(f"negative tensor size {shape} before byte {self.pos} ({what})")
        n = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * n, f"{what} ({n} floats)")
        return np.frombuffer(raw, "<f4").reshape(shape)

    def alias(self, what: str) -> tuple[int, ...]:
        """alias_tensor: version 1 + 4 sizes (a view into a layer's params)."""
        if self.int(what) != 1:
            raise DlibFormatError(f"expected an alias_tensor (version 1) before byte {self.pos} ({what})")
        return tuple(self.int(what) for _ in range(4))

    def peek_input_name(self) -> bool:
        """Whether a string naming an input layer ("input_...") starts here (without moving)."""
        save = self.pos
        try:
            n = self.uint("peek")
            return 6 <= n <= 64 and self.data[self.pos:self.pos + 6] == b"input_"
        except DlibFormatError:
            return False
        finally:
            self.pos = save


def _view(params: np.ndarray, offset: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    flat = params.reshape(-1)
    n = int(np.prod(shape))
    if offset + n > flat.size:
        raise DlibFormatError(f"{what}: needs {offset + n} parameters, the layer stores {flat.size}")
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
        raise DlibFormatError(f"{name} at byte {start}: filter shape {fshape} does not match "
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
        raise DlibFormatError(f"{name} at byte {start}: unknown mode {mode}")
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
        raise DlibFormatError(f"{name} at byte {start}: weights {weights.shape} for "
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
        raise DlibFormatError(f"layer {name} at byte {start}: a training-mode batch-norm layer; this reader expects the "
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
    raise DlibFormatError(f"unsupported layer {name!r} at byte {start}")


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
    """Parse a serialised ``loss_metric`` network (raises DlibFormatError)."""
    cur = _Cursor(data)
    if cur.int("loss layer version") != 1:
        raise DlibFormatError("expected add_loss_layer version 1 at byte 0")
    loss = cur.string("loss name")
    loss_fields = {}
    if loss == "loss_metric_2":
        loss_fields = {"margin": cur.float("margin"), "distance_threshold": cur.float("dist_thresh")}
    elif loss != "loss_metric_":
        raise DlibFormatError(f"expected a loss_metric network, found loss {loss!r}")
    # add_layer / tag / skip wrappers, outermost first: each writes its version, then its subnetwork,
    # then (add_layer only) its fields - so the versions come first, down to the input layer.
    wrappers: list[int] = []
    while True:
        version = cur.int("layer version")
        if cur.peek_input_name():
            input_version = version
            break
        if version not in (1, 2):
            raise DlibFormatError(f"unexpected layer version {version} before byte {cur.pos}")
        wrappers.append(version)  # 2 = add_layer with fields; 1 = tag or skip (no fields)
        if len(wrappers) > 100_000:
            raise DlibFormatError("no input layer found")
    if input_version not in (2, 3):
        raise DlibFormatError(f"unexpected input add_layer version {input_version}")
    input_layer = cur.string("input layer name")
    if input_layer not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"expected an RGB image input layer, found {input_layer!r}")
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
        raise DlibFormatError(f"{len(data) - cur.pos} unexpected bytes after the network (from byte {cur.pos})")
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
    except DlibFormatError as exc:
        raise InputError(f"expected dlib's face descriptor network (dlib_face_recognition_resnet_model_v1.dat "
                         f"format), got an unreadable file {path} ({len(data)} bytes): {exc}") from None
