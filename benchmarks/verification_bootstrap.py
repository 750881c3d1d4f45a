"""Seconds of the verification suite's identity-cluster bootstrap (EER and ROC-AUC, 2000 resamples): one re-sort
per resample (items gathered by index, EER and AUC each re-computed) against this tree's weighted curves (the
scores sorted once, every resample a row of draw counts), on the same draws, in one run. Prints both and the ratio.

    python benchmarks/verification_bootstrap.py [--probes 1000] [--identities 100] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import rankdata

from w2p_eval.metrics import recent as R
from w2p_eval.metrics.stats import cluster_bootstrap_stat


def per_resample(scores: np.ndarray, genuine: np.ndarray, groups: np.ndarray, n_resamples: int, seed: int):
    """The straightforward bootstrap: gather each resample's trials and sort them again (EER and AUC)."""
    codes = np.unique(groups, return_inverse=True)[1]
    members = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        s, g = scores[idx], genuine[idx]
        ranks = rankdata(s)
        n_pos, n_neg = g.sum(), (~g).sum()
        auc = (ranks[g].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        out.append((R.verification_eer(s, g), auc))
    return np.quantile(np.array(out), [0.025, 0.975], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.identities, args.probes)
    trials = R.draw_verification_trials(labels, np.arange(args.probes), seed=0)
    emb = rng.normal(size=(args.probes, 128)) + 0.3 * rng.normal(size=(args.identities, 128))[labels]
    scores = R.trial_scores(emb, emb, trials)
    groups = labels[trials.probe]
    t0 = time.perf_counter()
    old = per_resample(scores, trials.genuine, groups, args.resamples, seed=0)
    t1 = time.perf_counter()
    new = cluster_bootstrap_stat(lambda w: np.stack(R.verification_curves(scores, trials.genuine, w), axis=1),
                                 groups, seed=0, n_resamples=args.resamples)
    t2 = time.perf_counter()
    print(f"{len(scores)} trials, {args.identities} identities, {args.resamples} resamples")
    print(f"per-resample sort: {t1 - t0:.2f} s  EER [{old[0, 0]:.4f}, {old[1, 0]:.4f}]  "
          f"AUC [{old[0, 1]:.4f}, {old[1, 1]:.4f}]")
    print(f"weighted curves:   {t2 - t1:.2f} s  EER [{new[0].low:.4f}, {new[0].high:.4f}]  "
          f"AUC [{new[1].low:.4f}, {new[1].high:.4f}]")
    print(f"ratio: {(t1 - t0) / (t2 - t1):.1f}x")


if __name__ == "__main__":
    main()
