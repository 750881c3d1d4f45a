"""Load-time fusion of TensorFlow.js graphs (w2p_eval.judges.tfjs_fuse) on hand-made graphs: every rule gives the
outputs of the unfused graph (within 1e-5) and folds what it says; what must not fold (a conv read twice, a kept
output, a non-per-channel constant, a clamp that would change the values) stays as written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.tfjs_helpers import node, write_model
from tests.unit.test_tfjs_reader import conv_node
from w2p_eval.judges.tfjs import load_graph_model, read_model_json, read_weights
from w2p_eval.judges.tfjs_graph import TfjsGraph

RNG = np.random.default_rng(1)
X = RNG.standard_normal((2, 10, 10, 3)).astype(np.float32) * 3
W = RNG.standard_normal((3, 3, 3, 4)).astype(np.float32)
DW = RNG.standard_normal((3, 3, 3, 2)).astype(np.float32)
K4, B4 = RNG.standard_normal(4).astype(np.float32) + 1, RNG.standard_normal(4).astype(np.float32)
K6 = RNG.standard_normal(6).astype(np.float32)
SIX, ZERO = np.float32(6.0), np.float32(0.0)
C4 = (RNG.random(4) * 0.4).astype(np.float32)

BN_RELU6 = [conv_node("c", "Conv2D", ["x", "w"], padding="SAME"), node("m", "Mul", ["c", "k"]),
            node("a", "Add", ["m", "b"]), node("r", "Relu", ["a"]), node("lo", "Minimum", ["r", "six"]),
            node("y", "Maximum", ["lo", "zero"])]
WRITTEN_PRELU = [conv_node("c", "_FusedConv2D", ["x", "w", "b"], padding="SAME", fused=["BiasAdd"]),
                 node("r", "Relu", ["c"]), node("ab", "Abs", ["c"]), node("s", "Sub", ["c", "ab"]),
                 node("m", "Mul", ["s", "k"]), node("y", "Add", ["r", "m"])]
CASES = {  # name -> (nodes, consts, expected folds, nodes computed after fusion)
    "conv, batch-norm Mul/Add, Relu, Minimum/Maximum": (
        BN_RELU6, {"w": W, "k": K4, "b": B4, "six": SIX, "zero": ZERO},
        {"batch-norm scale": 1, "batch-norm shift": 1, "activation": 1, "Minimum/Maximum -> clamp": 2}, 1),
    "depthwise with bias, [1,1,1,C] Mul, Sub": (
        [conv_node("c", "FusedDepthwiseConv2dNative", ["x", "w", "bias"], padding="SAME", fused=["BiasAdd"]),
         node("m", "Mul", ["k", "c"]), node("y", "Sub", ["m", "b"])],
        {"w": DW, "bias": K6, "k": K6.reshape(1, 1, 1, 6) + 2, "b": K6 * 3},
        {"batch-norm scale": 1, "batch-norm shift": 1}, 1),
    "scalar Mul, stride 2 (asymmetric SAME padding)": (
        [conv_node("c", "Conv2D", ["x", "w"], stride=2, padding="SAME"), node("y", "Mul", ["c", "k"])],
        {"w": W, "k": np.float32(0.5)}, {"batch-norm scale": 1}, 1),
    "depthwise stride 2 (asymmetric SAME padding), Relu6": (
        [conv_node("c", "DepthwiseConv2dNative", ["x", "w"], stride=2, padding="SAME"), node("a", "Add", ["c", "b"]),
         node("y", "Relu6", ["a"])],
        {"w": DW, "b": K6}, {"batch-norm shift": 1, "activation": 1}, 1),
    "written-out PReLU": (WRITTEN_PRELU, {"w": W, "b": B4, "k": C4}, {"written-out PReLU": 1}, 1),
    "written-out PReLU on x itself": (
        [conv_node("c", "Conv2D", ["x", "w"], padding="VALID"), node("ab", "Abs", ["c"]),
         node("s", "Sub", ["c", "ab"]), node("m", "Mul", ["s", "k"]), node("y", "AddV2", ["c", "m"])],
        {"w": W, "k": C4 - 0.3}, {"written-out PReLU": 1}, 1),
    "written-out PReLU after a fused Relu (a no-op)": (
        [conv_node("c", "_FusedConv2D", ["x", "w", "b"], padding="SAME", fused=["BiasAdd", "Relu"]),
         node("ab", "Abs", ["c"]), node("s", "Sub", ["c", "ab"]), node("m", "Mul", ["s", "k"]),
         node("y", "Add", ["c", "m"])],
        {"w": W, "b": B4, "k": C4}, {"written-out PReLU (no-op after ReLU)": 1}, 1),
    "conv read twice: nothing folds": (
        [conv_node("c", "Conv2D", ["x", "w"]), node("m", "Mul", ["c", "k"]), node("y", "Add", ["m", "c"])],
        {"w": W, "k": K4}, {}, 3),
    "a constant that is not per channel: nothing folds": (
        [conv_node("c", "Conv2D", ["x", "w"]), node("y", "Add", ["c", "k"])],
        {"w": W, "k": RNG.standard_normal((8, 8, 4)).astype(np.float32)}, {}, 2),
    "Maximum above the Minimum's bound: only the Minimum folds": (
        [conv_node("c", "Conv2D", ["x", "w"]), node("lo", "Minimum", ["c", "zero"]),
         node("y", "Maximum", ["lo", "six"])],
        {"w": W, "zero": ZERO, "six": SIX}, {"Minimum/Maximum -> clamp": 1}, 2),
    "Add after a nonlinearity: stays": (
        [conv_node("c", "Conv2D", ["x", "w"]), node("r", "Relu", ["c"]), node("y", "Add", ["r", "k"])],
        {"w": W, "k": K4}, {"activation": 1}, 2),
}


def _run(path, fuse: bool):
    graph = load_graph_model(path, fuse=fuse)
    with torch.inference_mode():
        return graph, graph(torch.from_numpy(X))["y"].numpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_graph_equals_the_graph_as_written(case, tmp_path):
    nodes, consts, folds, computed = CASES[case]
    path = write_model(tmp_path, nodes, consts, input_shape=(-1, 10, 10, 3), outputs=["y"])
    plain, ref = _run(path, False)
    fused, got = _run(path, True)
    assert plain.fused == {}
    assert fused.fused == folds
    assert sum(n for op, n in fused.op_counts.items() if op not in ("Const", "Placeholder")) == computed
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_a_kept_output_inside_a_chain_is_not_folded_away(tmp_path):
    nodes, consts, _, _ = CASES["conv, batch-norm Mul/Add, Relu, Minimum/Maximum"]
    path = write_model(tmp_path, nodes, consts, input_shape=(-1, 10, 10, 3), outputs=["y", "a"])
    graph = load_graph_model(path)
    plain = load_graph_model(path, fuse=False)
    with torch.inference_mode():
        got, ref = graph(torch.from_numpy(X)), plain(torch.from_numpy(X))
    assert graph.fused == {"batch-norm scale": 1, "batch-norm shift": 1}
    for key in ("y", "a"):
        np.testing.assert_allclose(got[key].numpy(), ref[key].numpy(), rtol=1e-5, atol=1e-5)


def test_fusion_leaves_the_model_dict_alone(tmp_path):
    nodes, consts, _, _ = CASES["written-out PReLU"]
    path = write_model(tmp_path, nodes, consts, input_shape=(-1, 10, 10, 3), outputs=["y"])
    model = read_model_json(path)
    before = json.dumps(model, sort_keys=True)
    weights = read_weights(model, tmp_path)
    TfjsGraph(model, weights, source="t")
    assert json.dumps(model, sort_keys=True) == before
    assert sorted(weights) == sorted(consts)


def test_unfused_on_request_and_said_in_the_versions(tmp_path, monkeypatch):
    """$W2P_TFJS_FUSE=0 loads every graph as written (for checking numbers against the graph as written), and the
    judges' version strings say so, so cached descriptors of the two never mix; unset: fused, version unchanged."""
    from w2p_eval.judges import tfjs

    nodes, consts, _, _ = CASES["conv, batch-norm Mul/Add, Relu, Minimum/Maximum"]
    path = write_model(tmp_path, nodes, consts, input_shape=(-1, 10, 10, 3), outputs=["y"])
    monkeypatch.delenv(tfjs.FUSE_ENV, raising=False)
    assert load_graph_model(path).fused and tfjs.graph_tag() == ""
    monkeypatch.setenv(tfjs.FUSE_ENV, "0")
    assert load_graph_model(path).fused == {} and tfjs.graph_tag() == ", unfused"
    assert load_graph_model(path, fuse=True).fused  # an explicit choice wins
