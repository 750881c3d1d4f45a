"""Load-time fusion of a TensorFlow.js GraphDef: element-wise nodes folded into the convolution before them.

The converter leaves much of a network as separate element-wise nodes: a batch norm as ``Mul`` + ``Add`` by
per-channel constants, ReLU6 as ``Relu`` -> ``Minimum(6)`` -> ``Maximum(0)``, PReLU written out as
``Relu(x) + c * (x - |x|)``. Each is one more pass over the activation in torch. :func:`fuse_graph` rewrites the
nodes (a plain dict, before any op is built) so that a convolution absorbs, while its output has no other reader:

- ``Mul`` / ``Add`` / ``AddV2`` / ``BiasAdd`` / ``Sub`` by a constant that is one value or one value per output
  channel, while the convolution is still linear (fused ops none or ``BiasAdd``): the filter is scaled per output
  channel, the bias shifted (a zero bias is made when there was none);
- activations ``Relu``, ``Relu6``, ``Elu``, ``Sigmoid``, ``Tanh``, ``LeakyRelu``: appended to its fused ops;
- ``Minimum`` / ``Maximum`` by a scalar constant: one ``Clamp`` fused op (bounds in the node's ``w2p_clamp``
  attribute; a ``Relu`` just before a clamp whose lower bound is >= 0 is dropped: clamp(relu(x)) = clamp(x));
- a written-out PReLU ``Add(Relu(x) | x, Mul(Sub(x, Abs(x)), c))`` (x read by those nodes only): a ``Prelu``
  fused op with alpha ``2c`` (``1 + 2c`` when the first term is x itself), or nothing when the convolution's
  output is already >= 0 (it then ends with Relu / Relu6 / a clamp at >= 0, and the term is exactly 0).

The merged node keeps the name of the last node it absorbed (so every reader of the chain still finds it), new
constants are added under ``<node>/w2p_*`` names; constants are never changed in place. Nodes in ``keep`` (the
graph's outputs) are never absorbed. The arithmetic differs from the unfused graph only by float32 rounding
((x * w) * s vs x * (w * s)); ``tests/unit/test_tfjs_fuse.py`` checks each rule against the unfused graph and
``tests/integration/test_tfjs_equality_real.py`` every human-models graph.
"""

from __future__ import annotations

import base64
import math
from collections import Counter, defaultdict

import numpy as np

CONVS = {"Conv2D": "_FusedConv2D", "_FusedConv2D": "_FusedConv2D",
         "DepthwiseConv2dNative": "FusedDepthwiseConv2dNative", "DepthwiseConv2d": "FusedDepthwiseConv2dNative",
         "FusedDepthwiseConv2dNative": "FusedDepthwiseConv2dNative"}
ACTIVATIONS = {"Relu", "Relu6", "Elu", "Sigmoid", "Tanh", "LeakyRelu"}
AFFINE = {"Mul", "Add", "AddV2", "BiasAdd", "Sub"}
NONNEGATIVE_END = {"Relu", "Relu6"}


def _src(name: str) -> str:
    return name.lstrip("^").partition(":")[0]


def _fused_ops(raw: dict) -> list[str]:
    return [base64.b64decode(v).decode() for v in raw.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])]


def _set_fused_ops(raw: dict, names: list[str]) -> None:
    raw["attr"]["fused_ops"] = {"list": {"s": [base64.b64encode(n.encode()).decode() for n in names]}}
    raw["attr"]["num_args"] = {"i": str(len(raw["input"]) - 2)}


class _Fuser:
    """The rewrite of one graph: ``nodes`` (name -> raw node, rewritten in place), ``weights`` (new constants
    added), ``keep`` (names never absorbed). ``done`` counts the folds by kind."""

    def __init__(self, nodes: dict[str, dict], weights: dict[str, np.ndarray], keep: set[str]):
        for name, raw in list(nodes.items()):  # copies: the model's own dicts are never changed
            nodes[name] = {**raw, "input": list(raw.get("input", [])), "attr": dict(raw.get("attr", {}))}
        self.nodes, self.weights, self.keep = nodes, weights, keep
        self.done: Counter = Counter()
        self.readers: dict[str, list[str]] = defaultdict(list)
        for name, raw in nodes.items():
            for inp in raw.get("input", []):
                self.readers[_src(inp)].append(name)

    # ------------------------------------------------------------------ helpers
    def const(self, name: str) -> np.ndarray | None:
        raw = self.nodes.get(name)
        if raw is None or raw["op"] != "Const" or name not in self.weights:
            return None
        value = self.weights[name]
        return value if value.dtype.kind == "f" else None

    def add_const(self, name: str, value: np.ndarray) -> str:
        self.nodes[name] = {"name": name, "op": "Const", "input": [], "attr": {}}
        self.weights[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    def other(self, raw: dict, x: str) -> str | None:
        """The input of a binary node that is not ``x`` (None unless it has exactly two, one of them ``x``)."""
        ins = [_src(i) for i in raw.get("input", []) if not i.startswith("^")]
        if len(ins) != 2 or x not in ins or ins[0] == ins[1]:
            return None
        return ins[1] if ins[0] == x else ins[0]

    def only_reader(self, name: str) -> str | None:
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.keep else None

    def merge(self, conv: str, into: str, extra_inputs: list[str], ops: list[str], kind: str) -> str:
        """The conv node takes the place (and name) of ``into``; the nodes between are removed by the caller."""
        raw = self.nodes.pop(conv)
        raw = {**raw, "name": into, "op": CONVS[raw["op"]], "input": list(raw["input"]) + extra_inputs,
               "attr": dict(raw.get("attr", {}))}
        _set_fused_ops(raw, ops)
        self.nodes[into] = raw
        for inp in raw["input"]:
            src = _src(inp)
            self.readers[src] = [into if r == conv else r for r in self.readers[src]]
            if src in extra_inputs:
                self.readers[src].append(into)
        self.done[kind] += 1
        return into

    def drop(self, *names: str) -> None:
        for name in names:
            raw = self.nodes.pop(name)
            for inp in raw.get("input", []):
                src = _src(inp)
                if name in self.readers.get(src, []):
                    self.readers[src].remove(name)

    # ------------------------------------------------------------------ rules
    def absorb(self, conv: str) -> str | None:
        """Fold the next node into ``conv``; the merged node's name, or None when nothing folds."""
        if conv in self.keep:
            return None
        prelu = self.written_prelu(conv)
        if prelu is not None:
            return prelu
        user = self.only_reader(conv)
        if user is None:
            return None
        raw, conv_raw = self.nodes[user], self.nodes[conv]
        ops = _fused_ops(conv_raw) if conv_raw["op"].startswith(("_Fused", "Fused")) else []
        if raw["op"] in AFFINE:
            return self.affine(conv, user, ops)
        if raw["op"] in ACTIVATIONS:
            if raw["op"] == "LeakyRelu":
                if "LeakyRelu" in ops:
                    return None
                conv_raw["attr"]["leakyrelu_alpha"] = {"f": float(raw.get("attr", {}).get("alpha", {}).get("f", 0.2))}
            self.drop(user)
            return self.merge(conv, user, [], ops + [raw["op"]], "activation")
        if raw["op"] in ("Minimum", "Maximum"):
            return self.clamp(conv, user, ops)
        return None

    def affine(self, conv: str, user: str, ops: list[str]) -> str | None:
        raw, conv_raw = self.nodes[user], self.nodes[conv]
        other = self.other(raw, conv)
        value = self.const(other) if other else None
        if value is None or ops not in ([], ["BiasAdd"]):
            return None
        if raw["op"] == "Sub" and _src(raw["input"][0]) != conv:
            return None
        w = self.weights.get(_src(conv_raw["input"][1]))
        if w is None or w.ndim != 4:
            return None
        depthwise = CONVS[conv_raw["op"]] == "FusedDepthwiseConv2dNative"
        cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
        if not (value.size == 1 or (value.ndim <= 4 and value.shape[-1] == cout and value.size == cout)):
            return None
        per_channel = np.broadcast_to(value.reshape(-1).astype(np.float32), (cout,))
        bias_name = _src(conv_raw["input"][2]) if ops == ["BiasAdd"] else None
        bias = self.weights[bias_name].astype(np.float32) if bias_name else np.zeros(cout, np.float32)
        if bias.shape != (cout,):
            return None
        if raw["op"] == "Mul":
            scale = per_channel.reshape(w.shape[2], w.shape[3]) if depthwise else per_channel
            w = w.astype(np.float32) * scale.reshape((1, 1) + scale.shape if depthwise else (1, 1, 1, cout))
            bias = bias * per_channel
            filt = self.add_const(f"{user}/w2p_filter", w)
        else:
            filt = _src(conv_raw["input"][1])
            bias = bias - per_channel if raw["op"] == "Sub" else bias + per_channel
        new_bias = self.add_const(f"{user}/w2p_bias", bias)
        conv_raw["input"] = [conv_raw["input"][0], filt, new_bias]
        self.readers[filt].append(conv)
        self.readers[new_bias].append(conv)
        self.drop(user)
        return self.merge(conv, user, [], ["BiasAdd"], "batch-norm " + ("scale" if raw["op"] == "Mul" else "shift"))

    def clamp(self, conv: str, user: str, ops: list[str]) -> str | None:
        raw, conv_raw = self.nodes[user], self.nodes[conv]
        other = self.other(raw, conv)
        value = self.const(other) if other else None
        if value is None or value.size != 1:
            return None
        bound = float(value.reshape(-1)[0])
        lo, hi = -math.inf, math.inf
        if ops and ops[-1] == "Clamp":
            lo, hi = conv_raw["attr"]["w2p_clamp"]["list"]["f"]
            ops = ops[:-1]
        elif "Clamp" in ops:
            return None
        if raw["op"] == "Minimum":
            if bound < lo:
                return None
            hi = min(hi, bound)
        else:
            if bound > hi:
                return None
            lo = max(lo, bound)
        if ops and ops[-1] == "Relu" and lo >= 0:
            ops = ops[:-1]
        conv_raw["attr"]["w2p_clamp"] = {"list": {"f": [lo, hi]}}
        self.drop(user)
        return self.merge(conv, user, [], ops + ["Clamp"], "Minimum/Maximum -> clamp")

    def written_prelu(self, x: str) -> str | None:
        """``Add(Relu(x) | x, Mul(Sub(x, Abs(x)), c))`` after conv ``x`` -> its Prelu fused op (or nothing)."""
        readers = self.readers.get(x, [])
        by_op = {self.nodes[r]["op"]: r for r in readers}
        a, s = by_op.get("Abs"), by_op.get("Sub")
        if a is None or s is None or len(readers) != 3:
            return None
        if [_src(i) for i in self.nodes[s]["input"]] != [x, a] or self.only_reader(a) != s:
            return None
        m = self.only_reader(s)
        if m is None or self.nodes[m]["op"] != "Mul" or self.other(self.nodes[m], s) is None:
            return None
        c = self.const(self.other(self.nodes[m], s))
        d = self.only_reader(m)
        if c is None or d is None or self.nodes[d]["op"] not in ("Add", "AddV2"):
            return None
        p = self.other(self.nodes[d], m)
        relu = p if p is not None and p != x and self.nodes[p]["op"] == "Relu" else None
        if p is None or (p != x and (relu is None or self.only_reader(relu) != d
                                     or [_src(i) for i in self.nodes[relu]["input"]] != [x])):
            return None
        if set(readers) != {a, s, relu or d} or len({a, s, m, d} | ({relu} if relu else set())) != (5 if relu else 4):
            return None
        conv_raw = self.nodes[x]
        ops = _fused_ops(conv_raw) if conv_raw["op"].startswith(("_Fused", "Fused")) else []
        if "Prelu" in ops:
            return None
        self.drop(*[n for n in (relu, a, s, m) if n], d)
        nonneg = bool(ops) and (ops[-1] in NONNEGATIVE_END or (
            ops[-1] == "Clamp" and conv_raw["attr"]["w2p_clamp"]["list"]["f"][0] >= 0))
        if nonneg:  # x >= 0 already: x - |x| = 0 and Relu(x) = x, the whole term is x
            return self.merge(x, d, [], ops, "written-out PReLU (no-op after ReLU)")
        alpha = 2.0 * c.astype(np.float32) + (0.0 if relu else 1.0)
        name = self.add_const(f"{d}/w2p_alpha", alpha.reshape(-1) if alpha.size > 1 else alpha.reshape(()))
        return self.merge(x, d, [name], ops + ["Prelu"], "written-out PReLU")


def fuse_graph(nodes: dict[str, dict], weights: dict[str, np.ndarray], keep: set[str]) -> Counter:
    """Rewrite ``nodes`` (name -> GraphDef node as in model.json) in place, adding new constants to ``weights``
    (existing arrays are never modified). ``keep``: node names whose values must stay computed (outputs).
    Returns the folds made, by kind (e.g. ``{"batch-norm shift": 27, "activation": 27, ...}``)."""
    fuser = _Fuser(nodes, weights, keep)
    for name in [n for n, raw in nodes.items() if raw["op"] in CONVS]:
        while name is not None and name in nodes:
            name = fuser.absorb(name)
    return fuser.done
