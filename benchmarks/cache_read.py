"""What the cache's integrity check costs on a read: ``Cache.load`` (read, hash, parse, shape/dtype/NaN check)
against a bare ``np.load`` of the same npz, for entries the size of the speaker cache of a dataset with N clips
(float32 [N, 256] embeddings + ids + stamps), measured in one run.

    python benchmarks/cache_read.py [--clips 1000 10000 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from identity_judge import best_of  # benchmarks/ is on the path when this script runs

from w2p_eval.cache import Cache
from w2p_eval.judges.voice import cache_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| clips | entry size | bare np.load | Cache.load (hash + checks) | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clips:
            emb = rng.normal(size=(n, 256)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            value = {"pair_ids": np.array([f"id{i:06d}" for i in range(n)]), "emb": emb,
                     "stamps": np.array([f"{i}:{i * 7}:0.000000" for i in range(n)])}
            cache = Cache(tmp, "speaker", 1)
            key = {"n": n}
            cache.save(key, value)
            path = cache.path(key)

            def bare():
                with np.load(path, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}

            bare_s = best_of(bare, args.repeats)
            cached_s = best_of(lambda: cache.load(key, cache_problem), args.repeats)
            size = Path(path).stat().st_size / 1e6
            print(f"| {n} | {size:.1f} MB | {bare_s * 1e3:.1f} ms | {cached_s * 1e3:.1f} ms "
                  f"| {cached_s / bare_s:.2f}x |")


if __name__ == "__main__":
    main()
