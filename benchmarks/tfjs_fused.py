"""The fused TensorFlow.js graph (load-time folding, ``w2p_eval.judges.tfjs_fuse``) vs the graph as written, and
FaceRes / MobileFaceNet vs ``dlib_resnet``, in faces/s measured in one run, interleaved.

    python benchmarks/tfjs_fused.py [--n-faces 60] [--rounds 5] [--threads 2] [--device cpu] [--no-unfused]

The faces: the distinct real faces of the WAV2PIX release in ../shared/data (``tests.tfjs_helpers``: 30 per
identity, at the generator's 64 px), as the identity judges see generated faces. Timed, once per round, in turn
(so a load change on a shared machine hits every path alike): each judge's descriptor alone (FaceRes fused and
unfused on the same preprocessed 224 px input, MobileFaceNet fused and unfused at 112 px, dlib_resnet's torch
network on its aligned 150 px chips), and each judge's whole trunk (resize or alignment + descriptor, what
``identity`` pays per face). Batches of 32. OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, as the
CLI sets it) unless the environment says otherwise.

Two phases in the one process (issue 28 round 4): first with glibc's default allocator settings (every block
over 32 MiB mapped on allocation and unmapped on free, as before round 4), then after
``w2p_eval.utils.keep_freed_memory`` (what loading a graph now does). In each phase every fused graph path runs
twice, interleaved: with its filters packed for oneDNN once per input shape (``tfjs_conv.PackedFilters``, the
reader's path now) and reordered on every call (the path before round 4, which the reader still takes where
torch has no reorder op). Reported per phase: the median over rounds of faces/s, the ratios, the page faults per
face, the largest difference between fused and unfused outputs, and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP: what the CLI sets (utils)
os.environ["W2P_KEEP_FREED_MEMORY"] = "0"  # phase 1 runs with glibc's defaults; phase 2 sets them below

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/ as a package, like benchmarks/faceres_device.py

from tests.tfjs_helpers import release_face_ids, release_faces  # noqa: E402
from w2p_eval import utils  # noqa: E402
from w2p_eval.judges import load_identity_backbone, tfjs_conv  # noqa: E402
from w2p_eval.judges.faceres import DESCRIPTOR, INPUT_SIZE, preprocess  # noqa: E402
from w2p_eval.judges.identity import resize_batch  # noqa: E402
from w2p_eval.judges.mobilefacenet import EMBEDDING, INPUT_SIZE as MFN_SIZE  # noqa: E402
from w2p_eval.judges.mobilefacenet import preprocess as mfn_preprocess  # noqa: E402
from w2p_eval.judges.tfjs import load_graph_model, model_path  # noqa: E402

SHARED = Path(os.environ.get("W2P_SHARED_DATA", REPO.parent / "shared" / "data"))
BATCH = 32
REORDER = tfjs_conv._REORDER  # None makes every graph reorder its filters per call (the pre-round-4 path)


def batched(fn, x) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([fn(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def timed(paths: dict, rounds: int, n: int) -> tuple[dict, dict]:
    """faces/s (median over interleaved rounds) and page faults per face of every path (fn, packed)."""
    for fn, packed in paths.values():  # warm-up (and the packing itself) untimed
        tfjs_conv._REORDER = REORDER if packed else None
        fn()
    times: dict[str, list[float]] = {k: [] for k in paths}
    faults = dict.fromkeys(paths, 0)
    for _ in range(rounds):
        for k, (fn, packed) in paths.items():
            tfjs_conv._REORDER = REORDER if packed else None
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
            faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    tfjs_conv._REORDER = REORDER
    return ({k: n / statistics.median(v) for k, v in times.items()},
            {k: v / (rounds * n) for k, v in faults.items()})


def timed_paths(faces: np.ndarray, dev: str, no_unfused: bool) -> dict:
    """What is timed: name -> (callable, packed?): dlib_resnet's descriptor and trunk, FaceRes and MobileFaceNet
    fused (packed or reordered per call) and unfused on their preprocessed inputs, and their whole trunks."""
    graphs = {f"{name} {'fused' if fuse else 'unfused'}": load_graph_model(model_path(name), outs, dev, fuse=fuse)
              for name, outs in (("faceres", [DESCRIPTOR]), ("mobilefacenet", [EMBEDDING]))
              for fuse in ((True,) if no_unfused else (True, False))}
    x_fr = preprocess(torch.from_numpy(resize_batch(faces, INPUT_SIZE))).to(dev)
    x_mf = mfn_preprocess(torch.from_numpy(resize_batch(faces, MFN_SIZE))).to(dev)
    dlib = load_identity_backbone("dlib_resnet", device=dev)
    chips = dlib.chips(faces)
    trunks = {name: load_identity_backbone(name, device=dev) for name in ("faceres", "mobilefacenet")}
    paths = {"descriptor dlib_resnet": (lambda: dlib.describe_chips(chips), True),
             "trunk dlib_resnet": (lambda: dlib.trunk(faces), True)}
    for k, g in graphs.items():
        fn = (lambda g=g, x=(x_fr if k.startswith("faceres") else x_mf), o=g.outputs[0]: batched(lambda b: g(b)[o], x))
        for packed in ((True, False) if k.endswith(" fused") else (False,)):
            paths[f"descriptor {k}{' packed' if packed else ''}"] = (fn, packed)
    for k, bb in trunks.items():
        for packed in (True, False):
            paths[f"trunk {k}{' packed' if packed else ''}"] = (lambda bb=bb: bb.trunk(faces), packed)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-faces", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-unfused", action="store_true", help="skip the graphs as written (the slowest paths)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    release = SHARED / "wav2pix_release"
    if not release.is_dir():
        sys.exit(f"benchmark needs {release}")
    ids = release_face_ids(release)
    ids = [ids[k] for k in np.linspace(0, len(ids) - 1, min(args.n_faces, len(ids))).round().astype(int)]
    faces = release_faces(release, ids, 64)
    dev = args.device

    paths = timed_paths(faces, dev, args.no_unfused)
    outs = {k: fn() for k, (fn, _) in paths.items() if k.startswith("descriptor")}  # compared below
    print(f"device {dev}, {args.threads} threads (OMP_WAIT_POLICY {os.environ['OMP_WAIT_POLICY']}), "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{len(faces)} real faces, batches of {BATCH}, median of {args.rounds} interleaved rounds per phase")
    phases = {}
    for phase in ("glibc default allocator", "keep_freed_memory"):
        if phase == "keep_freed_memory":
            del os.environ["W2P_KEEP_FREED_MEMORY"]
            print(f"keep_freed_memory() in force: {utils.keep_freed_memory()}")
        load = os.getloadavg()[0]
        rate, faults = phases[phase] = timed(paths, args.rounds, len(faces))
        print(f"phase: {phase}; load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
        for k in paths:
            print(f"  {k:40s} {rate[k]:8.1f} faces/s  {faults[k]:8.0f} page faults/face")
        for name in ("faceres", "mobilefacenet"):
            for what in ("descriptor", "trunk"):
                key = f"{what} {name}" if what == "trunk" else f"{what} {name} fused"
                new, old, dl = rate[f"{key} packed"], rate[key], rate[f"{what} dlib_resnet"]
                print(f"  {what} {name} / dlib_resnet: {new / dl:.2f}x packed, {old / dl:.2f}x reordered per call "
                      f"(packed / reordered {new / old:.2f}x)")
    (new, _), (old, _) = phases["keep_freed_memory"], phases["glibc default allocator"]
    for key in ("descriptor faceres fused", "trunk faceres", "descriptor mobilefacenet fused", "trunk mobilefacenet"):
        print(f"  {key}: round 4 (packed, memory kept) / before (reordered, glibc default) "
              f"{new[key + ' packed'] / old[key]:.2f}x (across phases)")
    for name in ("faceres", "mobilefacenet"):
        a = outs[f"descriptor {name} fused packed"]
        for other in [f"descriptor {name} fused"] + ([f"descriptor {name} unfused"] if not args.no_unfused else []):
            b = outs[other]
            cos = torch.nn.functional.cosine_similarity(a, b).min().item()
            print(f"  {name} packed vs {other.split(' ', 2)[2]}: max |difference| {(a - b).abs().max().item():.2e} "
                  f"(scale {b.abs().max().item():.2f}), worst cosine {cos:.8f}")


if __name__ == "__main__":
    main()
