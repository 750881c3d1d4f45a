"""The fused TensorFlow.js graph (load-time folding, ``w2p_eval.judges.tfjs_fuse``) vs the graph as written, and
FaceRes / MobileFaceNet vs ``dlib_resnet``, in faces/s measured in one run, interleaved.

    python benchmarks/tfjs_fused.py [--n-faces 60] [--rounds 5] [--threads 2] [--device cpu]

The faces: the distinct real faces of the WAV2PIX release in ../shared/data (``tests.tfjs_helpers``: 30 per
identity, at the generator's 64 px), as the identity judges see generated faces. Timed, once per round, in turn
(so a load change on a shared machine hits every path alike): each judge's descriptor alone (FaceRes fused and
unfused on the same preprocessed 224 px input, MobileFaceNet fused and unfused at 112 px, dlib_resnet's torch
network on its aligned 150 px chips), and each judge's whole trunk (resize or alignment + descriptor, what
``identity`` pays per face). Batches of 32. Reported: the median over rounds of faces/s, the ratios, the largest
difference between fused and unfused outputs, and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/ as a package, like benchmarks/faceres_device.py

from tests.tfjs_helpers import release_face_ids, release_faces  # noqa: E402
from w2p_eval.judges import load_identity_backbone  # noqa: E402
from w2p_eval.judges.faceres import DESCRIPTOR, INPUT_SIZE, preprocess  # noqa: E402
from w2p_eval.judges.identity import resize_batch  # noqa: E402
from w2p_eval.judges.mobilefacenet import EMBEDDING, INPUT_SIZE as MFN_SIZE  # noqa: E402
from w2p_eval.judges.mobilefacenet import preprocess as mfn_preprocess  # noqa: E402
from w2p_eval.judges.tfjs import load_graph_model, model_path  # noqa: E402

SHARED = Path(os.environ.get("W2P_SHARED_DATA", REPO.parent / "shared" / "data"))
BATCH = 32


def batched(fn, x) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([fn(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-faces", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    release = SHARED / "wav2pix_release"
    if not release.is_dir():
        sys.exit(f"benchmark needs {release}")
    ids = release_face_ids(release)
    ids = [ids[k] for k in np.linspace(0, len(ids) - 1, min(args.n_faces, len(ids))).round().astype(int)]
    faces = release_faces(release, ids, 64)
    dev = args.device
    load = os.getloadavg()[0]

    graphs = {f"{name} {'fused' if fuse else 'unfused'}": load_graph_model(model_path(name), outs, dev, fuse=fuse)
              for name, outs in (("faceres", [DESCRIPTOR]), ("mobilefacenet", [EMBEDDING])) for fuse in (True, False)}
    x_fr = preprocess(torch.from_numpy(resize_batch(faces, INPUT_SIZE))).to(dev)
    x_mf = mfn_preprocess(torch.from_numpy(resize_batch(faces, MFN_SIZE))).to(dev)
    dlib = load_identity_backbone("dlib_resnet", device=dev)
    chips = dlib.chips(faces)
    trunks = {name: load_identity_backbone(name, device=dev) for name in ("faceres", "mobilefacenet")}
    trunks["dlib_resnet"] = dlib
    paths = {
        **{f"descriptor {k}": (lambda g=g, x=(x_fr if k.startswith("faceres") else x_mf), o=g.outputs[0]:
                               batched(lambda b: g(b)[o], x)) for k, g in graphs.items()},
        "descriptor dlib_resnet": lambda: dlib.describe_chips(chips),
        **{f"trunk {k}": (lambda bb=bb: bb.trunk(faces)) for k, bb in trunks.items()},
    }
    outs = {k: fn() for k, fn in paths.items()}  # warm-up, and the outputs compared below
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(args.rounds):
        for k, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    rate = {k: len(faces) / statistics.median(v) for k, v in times.items()}
    print(f"device {dev}, {args.threads} threads, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{len(faces)} real faces, median of {args.rounds} interleaved rounds; load average "
          f"{load:.2f} -> {os.getloadavg()[0]:.2f}")
    for k in paths:
        print(f"  {k:32s} {rate[k]:8.1f} faces/s")
    for name in ("faceres", "mobilefacenet"):
        a, b = outs[f"descriptor {name} fused"], outs[f"descriptor {name} unfused"]
        cos = torch.nn.functional.cosine_similarity(a, b).min().item()
        speedup = rate[f"descriptor {name} fused"] / rate[f"descriptor {name} unfused"]
        print(f"  {name}: fused / unfused {speedup:.2f}x; "
              f"max |fused - unfused| {(a - b).abs().max().item():.2e} (scale {b.abs().max().item():.2f}), "
              f"worst cosine {cos:.8f}; ops {sum(graphs[f'{name} unfused'].op_counts.values())} -> "
              f"{sum(graphs[f'{name} fused'].op_counts.values())}")
        for what, key in (("descriptor", f"descriptor {name} fused"), ("trunk", f"trunk {name}")):
            print(f"  {what} {name} / dlib_resnet: {rate[key] / rate[f'{what} dlib_resnet']:.2f}x")


if __name__ == "__main__":
    main()
