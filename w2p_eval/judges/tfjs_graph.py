""":class:`TfjsGraph`: a TensorFlow GraphDef (as in a TensorFlow.js model.json) run as a torch ``nn.Module``.

Built once from the nodes and decoded weights (see :func:`w2p_eval.judges.tfjs.load_graph_model`): the nodes
needed for the requested outputs are put in dependency order, every op is built by :data:`tfjs_ops.OPS` from
its node (attributes read, constant filters transposed to torch's layout), and every constant is a buffer of
the module, so ``.to(device)`` moves the whole graph. With ``fuse=True`` (the default) the nodes are first
rewritten by :func:`w2p_eval.judges.tfjs_fuse.fuse_graph` (batch-norm multiply/add, bias adds, activations and
Minimum/Maximum clamps folded into the convolution before them). On the CPU each convolution keeps its filter
packed for oneDNN (:class:`w2p_eval.judges.tfjs_conv.PackedFilters`), and loading a graph lets the process reuse
freed activation memory (:func:`w2p_eval.utils.keep_freed_memory`): together 1.4-1.9x FaceRes's faces/s of
the fused graph alone on the shared 2-core VM (BENCHMARKS.md, issue 28 round 4).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch

from w2p_eval.errors import InputError
from w2p_eval.judges.dlib_torch import exact_cudnn
from w2p_eval.judges.tfjs_fuse import fuse_graph
from w2p_eval.judges.tfjs_ops import MIN_INPUTS, OPS
from w2p_eval.judges.tfjs_value import Node, Val
from w2p_eval.utils import keep_freed_memory


def _source(name: str) -> tuple[str, int]:
    """'node:1' -> ('node', 1); 'node' -> ('node', 0)."""
    node, _, index = name.partition(":")
    return node, int(index) if index.isdigit() else 0


def signature_outputs(model: dict) -> list[str]:
    """Output node names the model's signature lists (model.json ``signature`` or ``userDefinedMetadata``)."""
    sig = model.get("signature") or (model.get("userDefinedMetadata") or {}).get("signature") or {}
    return [_source(o.get("name", key))[0] for key, o in (sig.get("outputs") or {}).items()]


class TfjsGraph(torch.nn.Module):
    """The graph of one TensorFlow.js model.

    ``forward(x)``: ``x`` float32 ``[N, H, W, C]`` (TF's NHWC) for a one-input graph, or a dict input name ->
    tensor; returns a dict output node name -> tensor in TF's layout (rank-4 outputs NHWC). Attributes:
    ``inputs`` (placeholder names), ``input_shapes`` (their declared shapes, -1 = any), ``outputs``,
    ``op_counts`` (op -> number of nodes computed), ``fused`` (the folds made at load, by kind; empty with
    ``fuse=False``, which runs the nodes exactly as written). On CUDA, convolutions run in full float32 (TF32 off).
    """

    def __init__(self, model: dict, weights: dict[str, np.ndarray], outputs: list[str] | None = None,
                 source: str = "model", fuse: bool = True):
        super().__init__()
        nodes = {}
        for raw in model["modelTopology"]["node"]:
            if not isinstance(raw, dict) or "name" not in raw or "op" not in raw:
                raise InputError(f"expected GraphDef nodes with a name and an op in {source}, got {str(raw)[:80]}")
            nodes[raw["name"]] = raw
        self.source = source
        self.outputs = [_source(o)[0] for o in (outputs or signature_outputs(model) or _sinks(nodes))]
        self.fused: dict[str, int] = {}
        if fuse:
            weights = dict(weights)
            self._order(nodes)  # a broken graph is refused as written, before any rewrite
            self.fused = dict(fuse_graph(nodes, weights, set(self.outputs)))
        order = self._order(nodes)
        self.inputs = [n for n in order if nodes[n]["op"] == "Placeholder"]
        self.input_shapes = {n: [int(d.get("size", -1)) for d in nodes[n].get("attr", {}).get("shape", {})
                                 .get("shape", {}).get("dim", [])] for n in self.inputs}
        self._consts: dict[str, str] = {}
        values: dict[str, np.ndarray] = {}
        for name in order:
            if nodes[name]["op"] == "Const":
                if name not in weights:
                    raise InputError(f"expected the value of Const node '{name}' in the weights of {source}, "
                                     f"got none (the model.json and its weightsManifest disagree)")
                values[name] = weights[name]
                self._consts[name] = self._buffer(f"c{len(self._consts)}", values[name])
        self._steps = []
        for i, name in enumerate(order):
            raw = nodes[name]
            if raw["op"] in ("Const", "Placeholder"):
                continue
            if raw["op"] not in OPS:
                raise InputError(f"unsupported op {raw['op']} (node '{name}') in {source}: the TensorFlow.js "
                                 f"reader knows {', '.join(sorted(OPS))}")
            ins = [_source(s)[0] for s in raw.get("input", []) if not s.startswith("^")]
            need = MIN_INPUTS.get(raw["op"], 1)
            if len(ins) < need:
                raise InputError(f"expected at least {need} inputs of {raw['op']} node '{name}' in {source}, "
                                 f"got {len(ins)}")
            node = Node(name, raw["op"], ins, raw.get("attr", {}), [values.get(s) for s in ins],
                        param=lambda key, arr, i=i: self._getter(self._buffer(f"p{i}_{key}", arr)))
            self._steps.append((name, ins, OPS[raw["op"]](node)))
        self.op_counts = dict(Counter(nodes[n]["op"] for n in order))
        self._last_use = {}
        for k, (_, ins, _) in enumerate(self._steps):
            for s in ins:
                self._last_use[s] = k
        keep_freed_memory()  # activations of 100 MB each, every call: reused instead of page-faulted in again

    def _buffer(self, key: str, arr: np.ndarray) -> str:
        key = re.sub(r"\W", "_", key)
        tensor = torch.from_numpy(np.ascontiguousarray(arr))
        if tensor.dtype == torch.float64:
            tensor = tensor.float()
        self.register_buffer(key, tensor, persistent=False)
        return key

    def _getter(self, key: str):
        return lambda: getattr(self, key)

    def _order(self, nodes: dict) -> list[str]:
        """Names of the nodes the outputs depend on, each after its inputs (iterative depth-first)."""
        order, state = [], {}
        for out in self.outputs:
            if out not in nodes:
                raise InputError(f"expected output node '{out}' in {self.source}, got no such node")
            stack = [(out, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    state[name] = 2
                    order.append(name)
                    continue
                if state.get(name) == 2:
                    continue
                if state.get(name) == 1:
                    raise InputError(f"expected an acyclic graph in {self.source}, got a cycle through '{name}'")
                state[name] = 1
                stack.append((name, True))
                for inp in nodes[name].get("input", []):
                    src, index = _source(inp.lstrip("^"))
                    if src not in nodes:
                        raise InputError(f"expected node '{src}' (input of '{name}') in {self.source}, "
                                         f"got no such node: the model.json is truncated or edited")
                    if index > 0:
                        raise InputError(f"unsupported input '{inp}' of node '{name}' in {self.source}: "
                                         f"only first outputs of nodes are read")
                    if state.get(src) != 2:
                        stack.append((src, False))
        return order

    def forward(self, x) -> dict[str, torch.Tensor]:
        feeds = x if isinstance(x, dict) else {self.inputs[0]: x} if len(self.inputs) == 1 else None
        if feeds is None or set(feeds) != set(self.inputs):
            raise InputError(f"expected inputs {self.inputs} for {self.source}, "
                             f"got {sorted(feeds) if isinstance(feeds, dict) else 'one tensor'}")
        env: dict[str, Val] = {k: Val(v) for k, v in feeds.items()}
        env.update({k: Val(getattr(self, b)) for k, b in self._consts.items()})
        keep = set(self.outputs)
        with exact_cudnn(any(v.t.is_cuda for v in env.values())):  # float32 convolutions on CUDA (no TF32)
            for k, (name, ins, fn) in enumerate(self._steps):
                env[name] = fn([env[s] for s in ins])
                for s in ins:
                    if self._last_use.get(s) == k and s not in keep:
                        env.pop(s, None)
        return {name: env[name].nhwc() for name in self.outputs}


def _sinks(nodes: dict) -> list[str]:
    used = {_source(s.lstrip("^"))[0] for raw in nodes.values() for s in raw.get("input", [])}
    return [n for n, raw in nodes.items() if n not in used and raw["op"] not in ("Const", "Placeholder")]
