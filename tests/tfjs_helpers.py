"""Hand-made TensorFlow.js graph models for the reader's tests: write model.json + a .bin shard into a folder.

:func:`write_model` takes GraphDef-style nodes (:func:`node`, attribute helpers :func:`ints`, :func:`s`, :func:`b`,
:func:`f`) and the constants' values, and writes them exactly as the TensorFlow.js converter lays them out
(``modelTopology.node``, one ``weightsManifest`` group, weights concatenated in manifest order), optionally
quantised (float16, or uint8 with ``scale``/``min``). Also the real faces and model inputs of the TensorFlow.js
equality fixtures (:func:`release_face_ids`, :func:`release_faces`, :data:`MODEL_INPUTS`), shared with
``scripts/make_tfjs_fixture.py``. Not collected by pytest.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image


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


# ----------------------------------------------------------------------------- real faces for the equality tests

def release_face_ids(release: Path, per_identity: int = 30) -> list[str]:
    """``per_identity`` distinct faces of each identity of the WAV2PIX release (train and test splits), evenly spread
    over its frames, as paths relative to ``release`` (the release stores each face 5 times under consecutive
    frame numbers; every 5th frame is a distinct face)."""
    ids = []
    for person in sorted(p.name for p in (release / "test").iterdir() if p.is_dir()):
        frames = [(split, int(m.group(1))) for split in ("train", "test")
                  for p in (release / split / person).glob("cropped_face_frame_*.png")
                  if (m := re.search(r"_(\d+)\.png$", p.name))]
        distinct = sorted(frames, key=lambda sf: sf[1])[::5]
        pick = np.unique(np.linspace(0, len(distinct) - 1, per_identity).round().astype(int))
        ids += [f"{distinct[k][0]}/{person}/cropped_face_frame_{distinct[k][1]}.png" for k in pick]
    return ids


def release_faces(release: Path, ids: list[str], size: int) -> np.ndarray:
    """uint8 RGB [N, size, size, 3]: the release crops (JPEG data stored BGR) colour-fixed, resized (PIL bilinear)."""
    out = []
    for rel in ids:
        with Image.open(release / rel) as im:
            rgb = np.asarray(im.convert("RGB"))[..., ::-1]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


# model -> (input size, rule, fn(uint8 RGB faces) -> float32 NHWC input of the graph). faceres: the HSE authors'
# preprocessing; gear: 0-1 RGB (vladmandic/human gear.ts); age: 0-255 RGB (human ssrnet-age.ts); gender: grey
# (BT.601) scaled to -1..1 (oarriaga face_classification); mobilefacenet: MobileFaceNet_TF's (x - 127.5) / 128;
# facemesh: 0-1 RGB (human facemesh.ts). faceres's, mobilefacenet's and facemesh's rules are part of a judge; the
# others only feed the graphs realistic values.
MODEL_INPUTS = {
    "faceres": (224, "RGB->BGR minus caffe means (103.939, 116.779, 123.68), 0-255",
                lambda u8: u8[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)),
    "gear": (198, "RGB / 255", lambda u8: u8.astype(np.float32) / 255),
    "age": (64, "RGB 0-255", lambda u8: u8.astype(np.float32)),
    "mobilefacenet": (112, "RGB (x - 127.5) / 128", lambda u8: (u8.astype(np.float32) - 127.5) / 128),
    "facemesh": (192, "RGB / 255", lambda u8: u8.astype(np.float32) / 255),
    "gender": (64, "grey (0.299 R + 0.587 G + 0.114 B) / 127.5 - 1", lambda u8: grey_fma(u8)[..., None] / 127.5 - 1),
}


def grey_fma(u8: np.ndarray) -> np.ndarray:
    """float32 BT.601 grey of uint8 RGB [..., 3], summed R, G, B as fused multiply-adds (each rounded once to float32).

    The fixture's inputs were made with a BLAS whose kernel fuses the multiply-adds; a plain ``u8 @ w`` rounds
    differently on other CPUs / OpenBLAS kernels (one ulp moves the input's sha256). Emulated in float64, where the
    product of two float32 values is exact, so every machine builds the same bytes.
    """
    w = np.array([0.299, 0.587, 0.114], np.float32).astype(np.float64)
    rgb = u8.astype(np.float64)
    acc = np.zeros(u8.shape[:-1], np.float32)
    for c in range(3):
        acc = (rgb[..., c] * w[c] + acc.astype(np.float64)).astype(np.float32)
    return acc
