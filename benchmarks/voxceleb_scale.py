"""`prepare voxceleb` + `evaluate` at VoxCeleb scale, on synthetic trees in the exact layouts.

    python benchmarks/voxceleb_scale.py --identities 100 300 1251 [--work scratch/voxceleb] [--interval-groups 12000]

For each N: a synthetic tree (:func:`w2p_eval.data.voxceleb_synth.make_voxceleb_tree`) for the first N rows of
the real ``vox1_meta.csv`` (../shared/data/voxceleb_meta; synthetic names when absent): 2 videos x 2 utterances of
2.2 s per identity (wav), 3 VGGFace1-layout JPEG faces; ``prepare voxceleb --split sf2f`` (timed: utterances/s);
a mean_face checkpoint on the unseen protocol; a **cold** ``evaluate`` with every suite (the defaults, attributes
and the sf2f preset) and two identity judges (``dlib_resnet,faceres``; fresh cache and store) and a **warm** one
(a new source name, caches present): seconds, peak RSS (VmHWM of the command's process, via benchmarks/scale.py's
runner) and seconds per test pair.

``--interval-groups G``: one BCa interval over G clusters, scipy's own O(G^2) jackknife (the old path) against the
O(G) one now in :mod:`w2p_eval.metrics.stats` on the same values and draws; both bounds printed, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import REPO, run  # noqa: E402  (the per-command runner: own process, VmHWM, cProfile parts)

SHARED_META = REPO.parent / "shared" / "data" / "voxceleb_meta" / "vox1_meta.csv"
SUITES = "identity,landmarks,speaker,retrieval,distances,matching,attributes,sf2f"


def one_size(n: int, work: Path, env: dict, evaluate: bool = True) -> dict:
    from w2p_eval.data.voxceleb_synth import make_voxceleb_tree

    root = work / f"n{n}"
    tree, data, cache, store = root / "tree", root / "data", root / "cache", root / "r.sqlite"
    meta = SHARED_META if SHARED_META.is_file() else None
    row: dict = {"identities": n}
    if not (tree / "audio").is_dir():
        t0 = time.perf_counter()
        made = make_voxceleb_tree(tree, n, meta=meta, videos=2, utterances=2, faces=3, seconds=2.2)
        row["tree_seconds"] = round(time.perf_counter() - t0, 1)
    meta_path = meta or tree / "meta" / "vox1_meta.csv"
    if not (data / "dataset.json").is_file():
        extra = [] if meta else ["--allow-other-meta"]
        row["prepare"] = run(["prepare", "voxceleb", "--audio", tree / "audio", "--faces", tree / "faces", "--meta",
                              meta_path, "--split", "sf2f", "--out", data, *extra], env, root / "prepare.prof")
        info = json.loads((data / "dataset.json").read_text())
        row["prepare"]["utterances"] = info["n_utterances"]
        row["prepare"]["utterances_per_s"] = round(info["n_utterances"] / row["prepare"]["seconds"], 1)
    import pandas as pd

    df = pd.read_csv(data / "manifest.csv")
    row["n_pairs"], row["n_test_pairs"] = len(df), int((df["split_unseen"] == "test").sum())
    row["n_test_identities"] = int(df.loc[df["split_unseen"] == "test", "identity"].nunique())
    if not evaluate:
        return row
    ckpt = root / "mean_face"
    if not ckpt.exists():
        run(["train", REPO / "baselines" / "mean_face.yaml", "--data", data, "--out", ckpt, "--set", "protocol=unseen"],
            env)
    common = ["--data", data, "--store", store, "--cache-dir", cache, "--metrics", SUITES, "--protocol", "unseen",
              "--backbone", "dlib_resnet,faceres"]
    shutil.rmtree(cache, ignore_errors=True)
    store.unlink(missing_ok=True)
    row["evaluate_cold"] = run(["evaluate", ckpt, *common], env, root / "cold.prof")
    warm = root / "mean_face_warm"
    if not warm.exists():
        shutil.copytree(ckpt, warm)
    row["evaluate_warm"] = run(["evaluate", warm, *common, "--force"], env, root / "warm.prof")
    row["warm_s_per_test_pair"] = round(row["evaluate_warm"]["seconds"] / max(row["n_test_pairs"], 1), 4)
    return row


def interval_timing(n_groups: int, seed: int = 0) -> dict:
    """One BCa interval over ``n_groups`` clusters (3 items each): scipy's O(G^2) jackknife vs the O(G) one."""
    from scipy import stats as st

    from w2p_eval.metrics.stats import bootstrap_ci, ratio_statistic

    rng = np.random.default_rng(seed)
    values = (rng.random(3 * n_groups) < 0.3).astype(float)
    groups = np.repeat(np.arange(n_groups), 3)
    t0 = time.perf_counter()
    new = bootstrap_ci(values, groups, seed=seed, n_resamples=2000)
    t_new = time.perf_counter() - t0
    sums = np.bincount(groups, weights=values)[:, None]
    wsum = np.bincount(groups).astype(float)
    t0 = time.perf_counter()
    old = st.bootstrap((np.arange(n_groups),), ratio_statistic(sums, wsum), n_resamples=2000, method="BCa",
                       vectorized=True, rng=np.random.default_rng(seed), batch=max(1, 2_000_000 // n_groups))
    t_old = time.perf_counter() - t0
    lo, hi = (float(x) for x in old.confidence_interval)
    return {"groups": n_groups, "new_s": round(t_new, 3), "old_s": round(t_old, 2),
            "ratio": round(t_old / t_new, 1), "new": [new.low, new.high], "old": [lo, hi],
            "max_abs_diff": max(abs(new.low - lo), abs(new.high - hi))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, nargs="*", default=[100, 300, 1251])
    ap.add_argument("--work", type=Path, default=REPO / "scratch" / "voxceleb")
    ap.add_argument("--interval-groups", type=int, default=0, help="also time one BCa interval over G clusters")
    ap.add_argument("--prepare-only", action="store_true", help="only the tree and prepare (no evaluate)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "W2P_CACHE": str(args.work / "cache")}
    out = args.work / "voxceleb_scale.json"
    rows = json.loads(out.read_text()) if out.is_file() else []
    if args.interval_groups:
        t = interval_timing(args.interval_groups)
        print(f"BCa interval at G = {t['groups']}: O(G) {t['new_s']} s, scipy O(G^2) {t['old_s']} s "
              f"({t['ratio']}x); bounds {t['new']} vs {t['old']} (max diff {t['max_abs_diff']:.2e})", flush=True)
    for n in args.identities:
        r = one_size(n, args.work, env, evaluate=not args.prepare_only)
        if args.prepare_only:
            print(f"N={n}: prepare {r['prepare']['seconds']} s = {r['prepare']['utterances_per_s']} utterances/s, "
                  f"{r['prepare']['peak_rss_mb']} MB", flush=True)
            continue
        old = {x["identities"]: x for x in rows}.get(n, {})
        r = {**old, **r}
        rows = [x for x in rows if x["identities"] != n] + [r]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(sorted(rows, key=lambda x: x["identities"]), indent=1))
        p = r.get("prepare", {})
        print(f"N={n}: {r['n_pairs']} pairs, {r['n_test_identities']} test identities ({r['n_test_pairs']} pairs); "
              f"prepare {p.get('seconds')} s = {p.get('utterances_per_s')} utterances/s, {p.get('peak_rss_mb')} MB; "
              f"evaluate cold {r['evaluate_cold']['seconds']} s / {r['evaluate_cold']['peak_rss_mb']} MB; warm "
              f"{r['evaluate_warm']['seconds']} s / {r['evaluate_warm']['peak_rss_mb']} MB "
              f"({r['warm_s_per_test_pair']} s per test pair)", flush=True)


if __name__ == "__main__":
    main()
