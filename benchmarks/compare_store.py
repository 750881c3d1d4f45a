"""Seconds of `w2p-eval compare A B` before the evaluation core (every face generated and judged again) and now on
sources `evaluate` already scored (read from the store: no checkpoint opened, no judge run), in one run.

    python benchmarks/compare_store.py --data scratch/release --old-tree /path/to/older/checkout

Two untrained, seeded WAV2PIX 64 px checkpoints stand for the release example's WAV2PIX and l1_regression (the
same generator, the same cost to run). This tree evaluates both into a fresh store (identity, retrieval,
distances, matching: compare's suites; not timed); then the old tree's `compare` and this tree's
`compare --store` run as separate processes (each a CLI start-up included) with the same judge cache (warmed
by the evaluation, so judge training is not timed), interleaved ``--rounds`` times. Prints both median wall
times, the ratio and whether the two comparisons are equal metric by metric.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import make_checkpoint  # noqa: E402  (the benchmarks' shared checkpoint maker)


def w2p(tree: Path, args: list, cache: Path) -> tuple[float, str]:
    """One CLI command in ``tree`` -> (wall seconds, stdout)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "W2P_CACHE": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=tree)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"w2p-eval {' '.join(map(str, args[:2]))} failed in {tree}:\n{proc.stderr[-2000:]}")
    return dt, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared dataset (e.g. the release example's)")
    ap.add_argument("--old-tree", type=Path, required=True, help="a checkout from before the evaluation core")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timings of each side (median reported)")
    ap.add_argument("--work", type=Path, default=None, help="keep checkpoints, store and cache here (reused)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="w2p-compare-") as tmp:
        tmp = args.work or Path(tmp)
        a = tmp / "wav2pix_64" / "checkpoints" / "epoch_0000.pt"
        b = tmp / "l1_regression" / "checkpoints" / "epoch_0000.pt"
        a.exists() or make_checkpoint(args.data, a, seed=0)
        b.exists() or make_checkpoint(args.data, b, seed=1)
        runs, store, cache = [a.parent.parent, b.parent.parent], tmp / "r.sqlite", tmp / "cache"
        common = ["--data", args.data, "--seed", args.seed, "--cache-dir", cache]
        t_eval, _ = w2p(REPO, ["evaluate", *runs, *common, "--store", store,  # a no-op when the store has them
                               "--metrics", "identity,retrieval,distances,matching"], cache)
        t_olds, t_news = [], []
        for _ in range(args.rounds):  # interleaved, so a load change on a shared machine hits both alike
            t, out_old = w2p(args.old_tree, ["compare", *runs, *common, "--json"], cache)
            t_olds.append(t)
            t, out_new = w2p(REPO, ["compare", *runs, *common, "--json", "--store", store], cache)
            t_news.append(t)
        t_old, t_new = statistics.median(t_olds), statistics.median(t_news)
        old, new = json.loads(out_old), json.loads(out_new)
        same = old["metrics"] == new["metrics"] and old["n_pairs"] == new["n_pairs"]
        worst = max((_gap(eo, en) for eo, en in zip(old["metrics"], new["metrics"])), default=0.0)
    print(f"data {args.data}: {new['n_pairs']} test pairs, {len(new['metrics'])} metrics compared")
    print(f"evaluate both (this tree, not timed against; a no-op when --work has them): {t_eval:.1f} s")
    print(f"compare, old tree (scores both again):        {t_old:.1f} s (median of {', '.join(f'{t:.1f}' for t in t_olds)})")
    print(f"compare --store, this tree (reads the store): {t_new:.1f} s (median of {', '.join(f'{t:.1f}' for t in t_news)})")
    print(f"ratio old / new: {t_old / t_new:.1f}x; comparisons identical: {same}"
          + ("" if same else f" (largest difference of any number: {worst:.2g})"))


def _gap(a, b) -> float:
    """The largest absolute difference between the numbers of two JSON values of the same shape (inf when the
    shapes or the non-numbers differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max((_gap(a.get(k), b.get(k)) for k in set(a) | set(b)), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return max((_gap(x, y) for x, y in zip(a, b)), default=0.0) if len(a) == len(b) else float("inf")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b))
    return 0.0 if a == b else float("inf")


if __name__ == "__main__":
    main()
