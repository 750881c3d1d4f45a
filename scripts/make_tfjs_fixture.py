"""Make the committed TensorFlow.js reference fixtures ``tests/fixtures/tfjs_<model>.npz``.

How they were made (run from the repository root; node 20, ``@tensorflow/tfjs@4`` reachable through NODE_PATH,
the pinned models installed by ``scripts/setup.sh``, the real data in ../shared/data):

    NODE_PATH=/path/to/node_modules PYTHONPATH=. .venv/bin/python scripts/make_tfjs_fixture.py

For each model (faceres, gear, age, gender, mobilefacenet, facemesh): the 60 distinct faces of
``tests.tfjs_helpers.release_face_ids`` (30 per identity of the WAV2PIX release's test split) are loaded
(``release_faces``: BGR fixed, PIL bilinear resize to the model's input size), turned into the graph's float32
input by ``MODEL_INPUTS[model]`` (numpy, written apart from the torch code under test), and run by
``scripts/tfjs_reference.js`` (@tensorflow/tfjs, CPU backend). The .npz keeps the face ids, the input rule, the
sha256 of the float32 input, the tfjs version and every output node's values - not the faces (the test rebuilds
the input from ../shared and checks its sha256 first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.tfjs_helpers import MODEL_INPUTS, release_face_ids, release_faces  # noqa: E402
from w2p_eval.judges.tfjs import load_graph_model, model_path  # noqa: E402


def reference(model_json: Path, x: np.ndarray, outputs: list[str]) -> dict:
    """Outputs of @tensorflow/tfjs (node, CPU backend) for float32 NHWC ``x``."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.f32", Path(tmp) / "out.json"
        np.ascontiguousarray(x, dtype="<f4").tofile(inp)
        subprocess.run(["node", str(REPO / "scripts" / "tfjs_reference.js"), str(model_json), str(inp),
                        ",".join(map(str, x.shape)), str(out), ",".join(outputs)],
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def make(name: str, release: Path, out_dir: Path) -> Path:
    size, rule, fn = MODEL_INPUTS[name]
    ids = release_face_ids(release)
    x = np.ascontiguousarray(fn(release_faces(release, ids, size)), dtype=np.float32)
    path = model_path(name)
    outputs = load_graph_model(path).outputs
    ref = reference(path, x, outputs)
    arrays = {f"out:{k}": np.asarray(v["data"], np.float32).reshape(v["shape"]) for k, v in ref["outputs"].items()}
    dest = out_dir / f"tfjs_{name}.npz"
    np.savez_compressed(dest, ids=np.array(ids), input_rule=np.array(rule), input_size=np.array(size),
                        input_sha256=np.array(hashlib.sha256(x.tobytes()).hexdigest()),
                        tfjs=np.array(f"@tensorflow/tfjs {ref['tfjs']} ({ref['backend']} backend)"),
                        made_by=np.array("scripts/make_tfjs_fixture.py"), **arrays)
    print(f"{dest}: {len(ids)} faces, outputs {', '.join(f'{k} {v.shape}' for k, v in arrays.items())}")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=REPO.parent / "shared" / "data" / "wav2pix_release")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    parser.add_argument("--models", default=",".join(MODEL_INPUTS))
    args = parser.parse_args()
    if not os.environ.get("NODE_PATH"):
        print("note: NODE_PATH is not set; node must find @tensorflow/tfjs on its own", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        make(name, args.release, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
