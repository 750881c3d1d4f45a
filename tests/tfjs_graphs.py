"""Hand-made TensorFlow.js graph models for the reader's tests: write model.json + a .bin shard into a folder.

:func:`write_model` takes GraphDef-style nodes (:func:`node`, attribute helpers :func:`ints`, :func:`s`, :func:`b`,
:func:`f`) and the constants' values, and writes them exactly as the TensorFlow.js converter lays them out
(``modelTopology.node``, one ``weightsManifest`` group, weights concatenated in manifest order), optionally
quantised (float16, or uint8 with ``scale``/``min``). Not collected by pytest.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np


def ints(values) -> dict:
    return {"list": {"i": [str(int(v)) for v in values]}}


def s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def strs(texts) -> dict:
    return {"list": {"s": [base64.b64encode(t.encode()).decode() for t in texts]}}


def b(flag: bool) -> dict:
    return {"b": bool(flag)}


def f(value: float) -> dict:
    return {"f": float(value)}


def i(value: int) -> dict:
    return {"i": str(int(value))}


def node(name: str, op: str, inputs=(), **attr) -> dict:
    return {"name": name, "op": op, "input": list(inputs), "attr": attr}


def write_model(folder: Path, nodes: list[dict], consts: dict[str, np.ndarray], input_shape=(-1, 8, 8, 3),
                outputs: list[str] | None = None, quantize: dict[str, str] | None = None,
                name: str = "model") -> Path:
    """``folder/<name>.json`` + ``folder/<name>.bin``: a Placeholder ``x`` of ``input_shape``, a Const per entry
    of ``consts`` and ``nodes``; ``quantize`` maps a constant to "float16" or "uint8". Returns the json path."""
    folder.mkdir(parents=True, exist_ok=True)
    quantize = quantize or {}
    all_nodes = [node("x", "Placeholder", shape={"shape": {"dim": [{"size": str(d)} for d in input_shape]}},
                      dtype={"type": "DT_FLOAT"})]
    manifest, chunks = [], []
    for cname, value in consts.items():
        value = np.asarray(value)
        dtype = "int32" if value.dtype.kind in "iu" else "float32"
        all_nodes.append(node(cname, "Const", dtype={"type": "DT_INT32" if dtype == "int32" else "DT_FLOAT"}))
        entry = {"name": cname, "shape": list(value.shape), "dtype": dtype}
        q = quantize.get(cname)
        if q == "float16":
            raw = value.astype(np.float16).tobytes()
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif q == "uint8":
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / 255 or 1.0
            raw = np.round((value - lo) / scale).astype(np.uint8).tobytes()
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo, "original_dtype": "float32"}
        else:
            raw = value.astype(np.int32 if dtype == "int32" else np.float32).tobytes()
        manifest.append(entry)
        chunks.append(raw)
    all_nodes += nodes
    model = {"format": "graph-model", "generatedBy": "tests", "convertedBy": "tests",
             "modelTopology": {"node": all_nodes, "library": {}, "versions": {}},
             "weightsManifest": [{"paths": [f"{name}.bin"], "weights": manifest}]}
    if outputs:
        model["signature"] = {"outputs": {o: {"name": f"{o}:0"} for o in outputs}}
    (folder / f"{name}.bin").write_bytes(b"".join(chunks))
    path = folder / f"{name}.json"
    path.write_text(json.dumps(model))
    return path
