"""FaceRes (TF.js graph read into torch) on one device: equality with TensorFlow.js and descriptor throughput.

Needs only the pinned human-models files (``$W2P_EVAL_MODELS``) and the 60 real release faces the equality
fixture was made from, saved as uint8 by ``--save-faces OUT.npz`` on a machine that has ../shared (so a GPU
machine without the data can run it with ``--faces OUT.npz``).

    python benchmarks/faceres_device.py --save-faces scratch/faceres_faces.npz          # where ../shared is
    python benchmarks/faceres_device.py --faces scratch/faceres_faces.npz --device cuda  # prints one report

Prints: worst descriptor cosine / gender / age-bin error vs the committed tfjs fixture, then faces/s of the
descriptor (uint8 faces in, preprocessing included) at several batch sizes, measured in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from w2p_eval.judges.faceres import AGE, DESCRIPTOR, GENDER, FaceResNet  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "tfjs_faceres.npz"


def save_faces(out: Path) -> None:
    from tests.helpers import shared_path
    from tests.tfjs_helpers import MODEL_INPUTS, release_faces

    fx = np.load(FIXTURE)
    faces = release_faces(shared_path("wav2pix_release"), [str(i) for i in fx["ids"]], MODEL_INPUTS["faceres"][0])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, faces=faces)
    print(f"saved {len(faces)} faces {faces.shape} to {out}")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-faces", type=Path)
    ap.add_argument("--faces", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--seconds", type=float, default=3.0, help="time each batch size for about this long")
    args = ap.parse_args()
    if args.save_faces:
        return save_faces(args.save_faces)
    faces = np.load(args.faces)["faces"]
    fx = np.load(FIXTURE)
    net = FaceResNet(args.device)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {args.device}: {name}; torch {torch.__version__}")
    with torch.inference_mode():
        out = net(faces)
    emb = out["embedding"].float().cpu().numpy()
    ref = fx[f"out:{DESCRIPTOR}"]
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    g = np.abs(out["gender"].float().cpu().numpy() - fx[f"out:{GENDER}"][:, 0]).max()
    a = np.abs(out["age_probs"].float().cpu().numpy() - fx[f"out:{AGE}"]).max()
    print(f"vs tfjs (CPU backend) on {len(faces)} real faces: worst cosine {cos.min():.7f}, max |gender| {g:.2e}, "
          f"max |age bin| {a:.2e}")
    for b in [int(x) for x in args.batches.split(",")]:
        batch = np.concatenate([faces] * (b // len(faces) + 1))[:b]
        with torch.inference_mode():
            net(batch)  # warm-up (kernels, allocator)
            _sync(args.device)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                net(batch)
                n += b
            _sync(args.device)
            dt = time.perf_counter() - t0
        print(f"batch {b:4d}: {n / dt:9.1f} faces/s (descriptor + gender + age heads, uint8 in)")


if __name__ == "__main__":
    main()
