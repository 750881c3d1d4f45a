"""Does fine-tuning the judge change identity accuracy? ``dlib_resnet`` (linear head on frozen descriptors)
vs ``dlib_resnet_ft`` (last residual stage(s) fine-tuned with the head), on the same faces in one run.

    python benchmarks/identity_finetune.py --data DATA [--runs RUN_DIR ...] [--stages 1 2] [--seeds 0 1 2]

For each judge and seed: the judge is trained on DATA's real training faces into a fresh cache (timed),
then scores the real test faces (the ceiling), three degraded copies of them (Gaussian blur sigma 1.5 and
3 px, a 16 px round trip: real identities, generated-like loss of detail) and the last checkpoint of each
``--runs`` folder (baselines, WAV2PIX). Prints top-1 (real ceiling and each source) per judge, the judges'
training summary (best epoch of the fine-tune, 0 = the linear probe; validation accuracy) and the seconds.
Rows are the identity suite's own (``Evaluation.score_all``), so they equal what ``w2p-eval evaluate`` stores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def degraded(real: np.ndarray) -> dict[str, np.ndarray]:
    from PIL import Image, ImageFilter

    def each(fn):
        return np.stack([np.asarray(fn(Image.fromarray(x))) for x in real])

    s = real.shape[1]
    return {"real, blur 1.5": each(lambda im: im.filter(ImageFilter.GaussianBlur(1.5))),
            "real, blur 3": each(lambda im: im.filter(ImageFilter.GaussianBlur(3.0))),
            "real, 16 px round trip": each(lambda im: im.resize((16, 16), Image.BILINEAR).resize((s, s),
                                                                                              Image.BILINEAR))}


def print_table(table: dict) -> None:
    """The Markdown table: one row per face source, one column per (judge, seed); top-1 (and top-5) in %."""
    cols = list(table)
    print("\n| faces (top-1, top-5) | " + " | ".join(f"{t} seed {s}" for t, s in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name in table[cols[0]]:
        cells = []
        for c in cols:
            v = table[c][name]
            cells.append(f"{100 * v[0]:.1f}" if isinstance(v, tuple) else f"{100 * v[0]:.1f}, {100 * v[1]:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--runs", nargs="*", default=[], type=Path)
    ap.add_argument("--stages", nargs="*", type=int, default=[1])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from w2p_eval.data.manifest import load_manifest
    from w2p_eval.judges.identity import identity_classifier, judge_training_rows, real_faces_uint8
    from w2p_eval.evaluation import Evaluation
    from w2p_eval.models.checkpoint import list_checkpoints
    from w2p_eval.models.sources import checkpoint_items
    from w2p_eval.models.sources_python import ArrayItem

    _, scored = judge_training_rows(load_manifest(args.data), "test", "seen")
    real = real_faces_uint8(args.data, scored, args.image_size)
    pids = list(scored["pair_id"])
    items = [ArrayItem(array=a, pair_ids=pids, run=name) for name, a in degraded(real).items()]
    for run in args.runs:
        items += checkpoint_items(list_checkpoints(run)[-1])
    judges = [("dlib_resnet", None)] + [("dlib_resnet_ft", {"stages": s}) for s in args.stages]
    print(f"data {args.data}: {len(pids)} test pairs; load average {os.getloadavg()[0]:.1f}; "
          f"{torch.get_num_threads()} threads")
    table: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for seed in args.seeds:
            for backbone, opts in judges:
                tag = backbone + (f" (stages {opts['stages']})" if opts else "")
                t0 = time.perf_counter()
                judge = identity_classifier(args.data, backbone, args.image_size, seed, cache_dir=cache,
                                            backbone_options=opts)
                t_train = time.perf_counter() - t0
                t0 = time.perf_counter()
                ev = Evaluation.build(args.data, suites=("identity",), seed=seed, cache_dir=cache, backbone=backbone,
                                      judge_options={backbone: opts}, sources=items)
                rows = [s.row for s in ev.score_all()]
                t_score = time.perf_counter() - t0
                info = judge.info
                fit = (f"best epoch {info['best_epoch']} of {info['epochs_run']}" if "probe" in info
                       else f"head epoch {info['best_epoch']}")
                print(f"seed {seed} {tag}: judge trained in {t_train:.0f} s ({fit}, val acc {info['val_acc']:.3f}); "
                      f"{len(items)} sources scored in {t_score:.0f} s; load average {os.getloadavg()[0]:.1f}",
                      flush=True)
                out = table.setdefault((tag, seed), {})
                for r in rows:
                    if r["metric"] == "identity_top1_real":
                        out["real test faces (ceiling)"] = (r["value"], r["n"])
                    if r["metric"] in ("identity_top1_fake", "identity_top5_fake"):
                        out.setdefault(r["run"], [None, None])[r["metric"] == "identity_top5_fake"] = r["value"]
    print_table(table)


if __name__ == "__main__":
    main()
