"""Seconds per checkpoint of `w2p-eval evaluate` (identity + landmarks) and generator passes per checkpoint,
for this tree and, optionally, an older tree of w2p-eval (the code before the evaluation core), in one run.

    python benchmarks/evaluate.py --data scratch/release [--old-tree /path/to/older/checkout] [--repeat 2]

A fresh (untrained, seeded) WAV2PIX 64 px checkpoint is written for the dataset; judges and real-face
landmarks are warmed into a cache first (each tree its own cache, so judge training is not timed); then each
tree evaluates the checkpoint into a fresh store, and builds the report from it (whose sample grid used to
need a generator pass of its own). Generator passes are counted by wrapping
``w2p_eval.models.registry.load_generator`` inside each tree's process. Prints one row per tree and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs inside the tree under test: count generator loads, run the CLI, print one JSON line.
RUNNER = r"""
import json, sys, time
from w2p_eval.models import registry
calls = {"n": 0}
real = registry.load_generator
def counting(*a, **k):
    calls["n"] += 1
    return real(*a, **k)
registry.load_generator = counting
from w2p_eval.cli import main
t0 = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"seconds": time.perf_counter() - t0, "generator_passes": calls["n"], "exit": code}),
      file=sys.stderr)
"""


def make_checkpoint(data: Path, out: Path, seed: int = 0) -> Path:
    """An untrained WAV2PIX 64 px checkpoint (same cost to run as a trained one)."""
    import torch

    from w2p_eval.data.manifest import identities, manifest_hash
    from w2p_eval.models.checkpoint import save_checkpoint
    from w2p_eval.models.wav2pix import Wav2Pix

    torch.manual_seed(seed)
    model = Wav2Pix(identities(data), 64, 1.0)
    return save_checkpoint(out, model="wav2pix", epoch=0, config={"model": "wav2pix", "image_size": 64,
                                                                  "audio_seconds": 1.0, "seed": seed},
                           identities=identities(data), image_size=64, audio_seconds=1.0,
                           state={"generator": model.state_dict()}, data_hash=manifest_hash(data))


def run_tree(tree: Path, args: list[str], threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, cwd=tree)
    last = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("{")]
    if not last:
        raise SystemExit(f"benchmark run failed in {tree}:\n{proc.stderr[-2000:]}")
    res = json.loads(last[-1])
    if res["exit"] not in (0, None):
        raise SystemExit(f"w2p-eval exited {res['exit']} in {tree}:\n{proc.stderr[-2000:]}")
    return res


def measure(tree: Path, ckpt: Path, data: Path, work: Path, repeat: int, threads: int, backbone: str) -> dict:
    tag = f"{tree.name}-{backbone}"
    cache = work / f"cache-{tag}"
    common = ["--data", str(data), "--metrics", "identity,landmarks", "--cache-dir", str(cache), "--seed", "0",
              "--backbone", backbone]
    run_tree(tree, ["evaluate", str(ckpt), *common, "--store", str(work / f"warm-{tag}.sqlite")], threads)
    evals, reports = [], []
    for i in range(repeat):
        store = work / f"{tag}-{i}.sqlite"
        evals.append(run_tree(tree, ["evaluate", str(ckpt), *common, "--store", str(store)], threads))
        reports.append(run_tree(tree, ["report", "--store", str(store), "--data", str(data),
                                       "--out", str(work / f"report-{tag}-{i}")], threads))
    best = min(evals, key=lambda r: r["seconds"])
    return {"tree": f"{tree} ({backbone})", "evaluate_s_per_ckpt": best["seconds"],
            "evaluate_generator_passes": best["generator_passes"],
            "report_generator_passes": reports[0]["generator_passes"],
            "report_s": min(r["seconds"] for r in reports)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset (e.g. the release subset)")
    ap.add_argument("--old-tree", type=Path, default=None, help="an older w2p-eval checkout to compare with")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbones", nargs="+", default=["dlib_resnet_native", "dlib_resnet"],
                    help="identity backbones this tree is measured with (the old tree always uses dlib_resnet, "
                         "which was dlib-bin's descriptor there: compare it with dlib_resnet_native here)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="w2p-bench-eval-") as tmp:
        work = Path(tmp)
        ckpt = make_checkpoint(args.data, work / "fresh" / "checkpoints" / "epoch_0000.pt")
        plan = ([(args.old_tree.resolve(), "dlib_resnet")] if args.old_tree else []) + [(REPO, b) for b in args.backbones]
        rows = [measure(t, ckpt, args.data.resolve(), work, args.repeat, args.threads, b) for t, b in plan]
    print(f"{'tree (backbone)':<52} {'evaluate s/ckpt':>16} {'gen passes (eval)':>18} {'gen passes (report)':>20} "
          f"{'report s':>9}")
    for r in rows:
        print(f"{r['tree'][-52:]:<52} {r['evaluate_s_per_ckpt']:>16.1f} {r['evaluate_generator_passes']:>18d} "
              f"{r['report_generator_passes']:>20d} {r['report_s']:>9.1f}")
    for r in rows[1:]:
        print(f"vs the first row: evaluate {rows[0]['evaluate_s_per_ckpt'] / r['evaluate_s_per_ckpt']:.2f}x faster "
              f"({r['tree'][-40:]}); generator passes per checkpoint (evaluate + report): "
              f"{rows[0]['evaluate_generator_passes'] + rows[0]['report_generator_passes']} -> "
              f"{r['evaluate_generator_passes'] + r['report_generator_passes']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
