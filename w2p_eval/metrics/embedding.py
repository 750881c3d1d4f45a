"""Embedding metrics in a face-recognition space (as SF2F reports them), numpy/scipy only.

All functions take float arrays of embeddings ``[N, D]`` (any float dtype; computed in float64)
and integer identity labels ``[N]``:

- :func:`identity_centroids`: per-identity mean of L2-normalised embeddings, re-normalised.
- :func:`centroid_cosines`: cosine of each (generated) embedding to its own identity's centroid and,
  averaged, to the other identities' centroids.
- :func:`retrieval_recall`: rank all identity centroids by cosine; recall@k of the own identity.
- :func:`frechet_distance`: Fréchet distance between Gaussians fitted to two embedding sets
  (FID formula; exact, computed without a matrix square root of a non-symmetric matrix).
- :func:`kernel_distance`: KID (unbiased MMD² with the cubic polynomial kernel), mean and std over
  random subsets drawn with a local seeded generator.
"""

from __future__ import annotations

import numpy as np

from w2p_eval.errors import InputError


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"expected {name} as a non-empty [N, D] array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"expected finite {name}, got NaN/inf values")
    return x


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm: float64 [N, D]."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def identity_centroids(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids [K] int64 sorted, centroids [K, D] float64 unit-norm) of the identities present in ``labels``."""
    emb = l2_normalize(_as_2d(emb, "embeddings"))
    labels = np.asarray(labels, dtype=np.int64)
    ids = np.unique(labels)
    cents = np.stack([emb[labels == i].mean(axis=0) for i in ids])
    return ids, l2_normalize(cents)


def centroid_cosines(fake: np.ndarray, labels: np.ndarray, ids: np.ndarray, centroids: np.ndarray) -> dict:
    """Cosines of each fake embedding to the identity centroids.

    Returns ``own`` float64 [N] (cosine to its identity's centroid; NaN when the identity has no
    centroid), ``other`` float64 [N] (mean cosine to every other centroid; NaN with one identity)
    and ``sims`` [N, K] (all cosines, columns in ``ids`` order).
    """
    fake = l2_normalize(_as_2d(fake, "generated embeddings"))
    labels = np.asarray(labels, dtype=np.int64)
    sims = fake @ np.asarray(centroids, dtype=np.float64).T
    col = {int(c): j for j, c in enumerate(ids)}
    own = np.array([sims[i, col[l]] if l in col else np.nan for i, l in enumerate(labels.tolist())])
    k = len(ids)
    other = np.full(len(fake), np.nan)
    if k > 1:
        has = np.array([l in col for l in labels.tolist()])
        total = sims.sum(axis=1)
        other[has] = (total[has] - own[has]) / (k - 1)
        other[~has] = total[~has] / k
    return {"own": own, "other": other, "sims": sims}


def retrieval_recall(sims: np.ndarray, labels: np.ndarray, ids: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    """Recall@k: the share of rows whose own identity is among the k centroids of highest cosine.

    ``sims`` [N, K] from :func:`centroid_cosines`; ties are broken against the own identity
    (a row is a hit only if fewer than k other centroids score at least as high).
    """
    sims = np.asarray(sims, dtype=np.float64)
    col = {int(c): j for j, c in enumerate(ids)}
    labels = np.asarray(labels, dtype=np.int64)
    ranks = np.full(len(labels), np.inf)
    for i, l in enumerate(labels.tolist()):
        if l in col:
            own = sims[i, col[l]]
            ranks[i] = int((np.delete(sims[i], col[l]) >= own).sum())  # 0 = best
    return {k: float((ranks < k).mean()) for k in ks}


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) with the unbiased (N-1) normalisation."""
    x = _as_2d(x, "embeddings")
    if len(x) < 2:
        raise InputError(f"expected at least 2 embeddings for a covariance, got {len(x)}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2 = tr sqrt(S1^½ S2 S1^½) (a symmetric PSD matrix)."""
    w, v = np.linalg.eigh(s1)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = half @ s2 @ half
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1-mu2||² + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2) (Dowson & Landau; the FID formula)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise InputError(f"expected matching Gaussian statistics, got means {mu1.shape}/{mu2.shape}, "
                         f"covariances {s1.shape}/{s2.shape}")
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2))
    return max(d, 0.0)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to embedding sets ``x`` [N1, D] and ``y`` [N2, D].

    Exact and stable for any N and D: with centred data A (N1 x D), B (N2 x D),
    tr sqrt(Sx Sy) = nuclear norm of A Bᵀ / sqrt((N1-1)(N2-1)) (the non-zero eigenvalues of Sx Sy
    are the squared singular values of that matrix). When both N exceed D the D x D form is used.
    """
    x, y = _as_2d(x, "embeddings x"), _as_2d(y, "embeddings y")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"expected embeddings of the same size, got {x.shape[1]} and {y.shape[1]}")
    if len(x) < 2 or len(y) < 2:
        raise InputError(f"expected at least 2 embeddings per set, got {len(x)} and {len(y)}")
    d = x.shape[1]
    if min(len(x), len(y)) > d:
        return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))
    mx, my = x.mean(axis=0), y.mean(axis=0)
    a, b = x - mx, y - my
    n1, n2 = len(x) - 1, len(y) - 1
    tr1, tr2 = float((a**2).sum()) / n1, float((b**2).sum()) / n2
    nuc = float(np.linalg.svd(a @ b.T, compute_uv=False).sum()) / np.sqrt(n1 * n2)
    return max(float(((mx - my) ** 2).sum()) + tr1 + tr2 - 2 * nuc, 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef: float = 1.0) -> np.ndarray:
    """k(x, y) = (gamma <x, y> + coef) ** degree, gamma = 1/D by default (the KID kernel)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel) -> float:
    """Unbiased MMD² estimate (diagonals of k(x, x) and k(y, y) excluded), as KID uses."""
    m, n = len(x), len(y)
    kxx, kyy = polynomial_kernel(x, x, **kernel), polynomial_kernel(y, y, **kernel)
    kxy = polynomial_kernel(x, y, **kernel)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kernel_distance(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0, degree: int = 3, gamma: float | None = None, coef: float = 1.0
                    ) -> tuple[float, float]:
    """KID between ``x`` [N1, D] and ``y`` [N2, D]: (mean, std) of the unbiased MMD² over ``subsets``
    random subsets of size min(subset_size, N1, N2), drawn without replacement by
    ``np.random.default_rng(seed)``. With all points in every subset one exact estimate is returned (std 0).
    """
    x, y = _as_2d(x, "embeddings x"), _as_2d(y, "embeddings y")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"expected embeddings of the same size, got {x.shape[1]} and {y.shape[1]}")
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise InputError(f"expected at least 2 embeddings per set for KID, got {len(x)} and {len(y)}")
    kw = dict(degree=degree, gamma=gamma, coef=coef)
    if size == len(x) == len(y):
        return mmd2_unbiased(x, y, **kw), 0.0
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)],
                          **kw) for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))
