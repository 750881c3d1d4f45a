"""SF2F's evaluation protocol by name (``--protocol-preset sf2f``): ``utils/s2f_evaluator.py`` and ``test.py`` of
BAI-Yeqi/SF2F_PyTorch, reimplemented from their behaviour on plain arrays, and the ``sf2f`` suite that scores it.

What SF2F computes (one row of each per face-generation mode; ``test.py`` runs the modes it is given):

- **queries**: one per test identity. ``average_facenet_embedding`` (metric prefix ``sf2f_avg``): the mean of the
  face embeddings of the identity's faces generated from all its speech segments (here: all its test pairs);
  ``naive`` (``sf2f_naive``): the embedding of one generated face (its loader draws one sample per identity; here
  one pair per identity, drawn with the evaluation seed);
- **real side**: the mean of the embeddings of all the identity's real faces (``hq_emb_dict``; here its distinct
  face ids), not the paired face;
- **recall@1/2/5/10/20/50** by cosine (``cos_query``): the first 300 test identities in meta order cut into 3
  galleries of 100 (``extraction_size=[100, 200, 300]``); query i of a gallery is a hit at K when real mean i is
  among its K most similar; per-gallery recall = mean over its identities; reported = mean over the galleries.
  With fewer identities: as many whole galleries of 100 as fit (at most 3), or one gallery of all (< 100), and
  only K <= gallery size;
- **L1, L2, cosine** between each identity's real mean and its own query (torch ``PairwiseDistance(p, eps=1e-6)``
  of (real, query): the norm of real - query + 1e-6; ``CosineSimilarity``), averaged over all test identities;
- **inter-human similarity** (``cal_ih_sim``): the mean cosine of each query with every OTHER identity's real
  mean (a generator that draws one face for everyone scores as high as its own-identity cosine).

Embeddings are L2-normalised per face first (SF2F's FaceNet outputs are unit-norm; our judges' are brought to
the same scale), means are not re-normalised (as in SF2F). Ties in recall count by expectation (as
:mod:`w2p_eval.metrics.protocols`; SF2F's ``torch.topk`` breaks them arbitrarily; real embeddings have none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from w2p_eval.data.folder import open_dataset
from w2p_eval.errors import InputError
from w2p_eval.metrics.base import ItemValues, MetricSpec, ReportSection, SuiteResult, ci_dict
from w2p_eval.metrics.embedding import l2_normalize
from w2p_eval.metrics.plan import Context
from w2p_eval.metrics.protocols import expected_hit
from w2p_eval.metrics.protocols_suite import _FaceSpaceSuite, split_identity_counts
from w2p_eval.metrics.testlist import testlist_id
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

PRESET = "sf2f"
SF2F_KS = (1, 2, 5, 10, 20, 50)
GALLERY_SIZE, N_GALLERIES = 100, 3
MODES = {"avg": "average_facenet_embedding", "naive": "naive"}
PAIRWISE_EPS = 1e-6  # torch.nn.PairwiseDistance's default, added to the difference
COSINE_EPS = 1e-8


def sf2f_galleries(n: int, size: int = GALLERY_SIZE, n_galleries: int = N_GALLERIES) -> list[np.ndarray]:
    """Index arrays of the galleries over ``n`` identities in meta order: consecutive blocks of ``size`` (at most
    ``n_galleries``), or one gallery of all ``n`` when fewer than ``size`` (at least 2)."""
    if n < 2:
        raise InputError(f"expected at least 2 test identities for SF2F's galleries, got {n}")
    if n < size:
        return [np.arange(n)]
    return [np.arange(i * size, (i + 1) * size) for i in range(min(n_galleries, n // size))]


def _cosine_table(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """torch CosineSimilarity(dim=-1, eps=1e-8) of every row of x [A, D] with every row of y [B, D] -> [A, B]."""
    nx = np.linalg.norm(x, axis=1)[:, None]
    ny = np.linalg.norm(y, axis=1)[None, :]
    return (x @ y.T) / np.sqrt(np.maximum(nx ** 2 * ny ** 2, COSINE_EPS ** 2))


@dataclass
class Sf2fScores:
    """SF2F's numbers on I identities. ``recall`` {K: mean over galleries}; ``per_gallery`` {K: [n_galleries]};
    ``hits`` {K: float64 [I]} (NaN outside every gallery); ``l1``/``l2``/``cosine``/``ih`` float64 [I] per
    identity (their means are SF2F's figures); ``galleries``: index arrays into the identity order."""

    recall: dict[int, float]
    per_gallery: dict[int, list[float]]
    hits: dict[int, np.ndarray]
    l1: np.ndarray
    l2: np.ndarray
    cosine: np.ndarray
    ih: np.ndarray
    galleries: list[np.ndarray] = field(repr=False)

    @property
    def means(self) -> dict[str, float]:
        return {"l1": float(self.l1.mean()), "l2": float(self.l2.mean()), "cosine": float(self.cosine.mean()),
                "ih_cosine": float(self.ih.mean())}


def sf2f_scores(query: np.ndarray, real_mean: np.ndarray, ks=SF2F_KS, galleries: list[np.ndarray] | None = None
                ) -> Sf2fScores:
    """SF2F's recall, distances and inter-human similarity. ``query`` / ``real_mean`` float [I, D], row i = the
    i-th identity in meta order; ``galleries`` index arrays (default :func:`sf2f_galleries`)."""
    q, r = np.asarray(query, np.float64), np.asarray(real_mean, np.float64)
    if q.ndim != 2 or q.shape != r.shape or not np.isfinite(q).all() or not np.isfinite(r).all():
        raise InputError(f"expected finite query and real-mean embeddings of one shape [I, D], got {q.shape} and "
                         f"{r.shape}")
    n = len(q)
    gals = sf2f_galleries(n) if galleries is None else [np.asarray(g, np.int64) for g in galleries]
    g_size = min(len(g) for g in gals)
    ks = [int(k) for k in ks if int(k) <= g_size]
    hits = {k: np.full(n, np.nan) for k in ks}
    per_gallery = {k: [] for k in ks}
    for g in gals:
        table = _cosine_table(q[g], r[g])
        own = np.diag(table).copy()
        others = np.where(np.eye(len(g), dtype=bool), -np.inf, table)
        for k in ks:
            h = expected_hit(others, own, k)
            hits[k][g] = h
            per_gallery[k].append(float(h.mean()))
    full = _cosine_table(q, r)
    ih = (full.sum(axis=1) - np.diag(full)) / max(n - 1, 1)
    return Sf2fScores(
        recall={k: float(np.mean(v)) for k, v in per_gallery.items()}, per_gallery=per_gallery, hits=hits,
        l1=np.abs(r - q + PAIRWISE_EPS).sum(axis=1), l2=np.sqrt(((r - q + PAIRWISE_EPS) ** 2).sum(axis=1)),
        cosine=np.diag(_cosine_table(q, r)).copy(), ih=ih, galleries=gals)


def identity_means(emb: np.ndarray, keys, order: list) -> np.ndarray:
    """Mean of the L2-normalised rows of ``emb`` [N, D] per key (rows sharing a key averaged), in ``order`` ->
    float64 [len(order), D]."""
    e = l2_normalize(np.asarray(emb, np.float64))
    keys = np.asarray(keys)
    return np.stack([e[keys == k].mean(axis=0) for k in order])


def queries_and_reals(fake_emb, real_emb, names, face_ids, order: list[str], seed: int
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({mode: queries [I, D]}, real means [I, D]) for the identities ``order`` from row-aligned embeddings:
    ``avg`` = mean of each identity's generated rows, ``naive`` = one seeded row; real = mean over distinct faces."""
    names, face_ids = np.asarray(names), np.asarray(face_ids)
    first = {}
    for i, f in enumerate(face_ids):
        first.setdefault(f, i)
    rows = np.array(sorted(first.values()))
    real = identity_means(np.asarray(real_emb)[rows], names[rows], order)
    fake = l2_normalize(np.asarray(fake_emb, np.float64))
    rng = np.random.default_rng([int(seed), 27])
    pick = [int(rng.choice(np.flatnonzero(names == n))) for n in order]
    return {"avg": identity_means(fake, names, order), "naive": fake[pick]}, real


def identity_order(opts: Context, present: set[str]) -> tuple[list[str], str]:
    """The scored identities in meta order (dataset.json ``meta_order`` of `prepare voxceleb`), else sorted."""
    meta = opts.data_dir.info.get("meta_order")
    if isinstance(meta, list):
        order = [n for n in meta if n in present]
        if len(order) == len(present):
            return order, "meta"
    return sorted(present), "sorted (the dataset records no meta order)"


def _metric(mode: str, what: str) -> str:
    return f"sf2f_{mode}_{what}"


def _specs():
    for mode, long in MODES.items():
        for k in SF2F_KS:
            yield MetricSpec(_metric(mode, f"r{k}"), f"SF2F recall@{k} ({long})", True, "rate",
                             f"SF2F's test.py: each test identity's {long} query ranked by cosine against the mean "
                             f"real embeddings of 100 identities (first 300 in meta order, 3 galleries); chance {k}/100.")
        yield MetricSpec(_metric(mode, "l1"), f"SF2F L1 ({long})", False, "distance",
                         "SF2F's L1: |identity's mean real embedding - query + 1e-6|_1, mean over test identities.")
        yield MetricSpec(_metric(mode, "l2"), f"SF2F L2 ({long})", False, "distance",
                         "SF2F's L2: |identity's mean real embedding - query + 1e-6|_2, mean over test identities.")
        yield MetricSpec(_metric(mode, "cosine"), f"SF2F cosine ({long})", True, "cosine",
                         "SF2F's cosine between each identity's query and its mean real embedding.")
        yield MetricSpec(_metric(mode, "ih_cosine"), f"SF2F inter-human cosine ({long})", False, "cosine",
                         "SF2F's inter-human similarity: mean cosine of each query with the OTHER identities' mean "
                         "real embeddings (high = the faces do not tell people apart).")


class Sf2fSuite(_FaceSpaceSuite):
    """SF2F's protocol (:mod:`w2p_eval.metrics.sf2f_preset`) on the identity judge's embeddings, both modes."""

    name = "sf2f"
    metrics = tuple(_specs())
    done_when = (_metric("avg", "r1"),)

    def report_section(self) -> ReportSection:
        return ReportSection("sf2f_preset", "SF2F's protocol (--protocol-preset sf2f)",
                             "SF2F's s2f_evaluator: one query per test identity (avg = the mean embedding of its "
                             "generated faces, naive = one seeded face) against the mean embedding of its real faces; "
                             "recall@K in 3 galleries of 100 identities in meta order, L1 / L2 / cosine to the own "
                             "mean, inter-human cosine to the others'.", tuple(m.name for m in self.metrics))

    def check(self, opts: Context) -> None:
        super().check(opts)
        n_ids, _ = split_identity_counts(opts)
        if n_ids < 2:
            raise InputError(f"expected at least 2 identities in the {opts.split} split ({opts.protocol} protocol) "
                             f"for SF2F's galleries, got {n_ids}")

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        names = np.array([gs.identity_names[int(i)] for i in e.labels])
        order, how = identity_order(opts, set(names.tolist()))
        galleries = None
        if opts.testlist is not None and getattr(opts.testlist, "content", {}).get("preset") == PRESET:
            index = {n: i for i, n in enumerate(order)}
            galleries = [np.array([index[n] for n in g if n in index]) for g in opts.testlist.galleries]
        queries, real = queries_and_reals(e.fake_emb, e.real_emb, names, e.face_ids, order, opts.seed)
        values, items = {}, {}
        for mode, q in queries.items():
            s = sf2f_scores(q, real, galleries=galleries)
            common = {"preset": PRESET, "mode": MODES[mode], "identity_order": how, "n_identities": len(order),
                      "gallery_size": int(min(len(g) for g in s.galleries)), "n_galleries": len(s.galleries)}
            for k, v in s.recall.items():
                w = np.isfinite(s.hits[k]).astype(float)
                values[_metric(mode, f"r{k}")] = (v, int(w.sum()), {
                    **common, "k": k, "chance": k / common["gallery_size"], "per_gallery": s.per_gallery[k],
                    "ci": ci_dict(np.nan_to_num(s.hits[k]), order, weights=w, seed=opts.seed,
                                  n_resamples=opts.n_resamples)})
                items[_metric(mode, f"r{k}")] = ItemValues(list(order), np.nan_to_num(s.hits[k]), list(order), w)
            for what, arr in (("l1", s.l1), ("l2", s.l2), ("cosine", s.cosine), ("ih_cosine", s.ih)):
                values[_metric(mode, what)] = (float(arr.mean()), len(order), {
                    **common, "ci": ci_dict(arr, order, seed=opts.seed, n_resamples=opts.n_resamples, rate=False)})
                items[_metric(mode, what)] = ItemValues(list(order), arr, list(order))
        log.info("sf2f preset %s: R@1 %.3f (avg), %.3f (naive) on %d identities", gs.run,
                 values[_metric("avg", "r1")][0], values[_metric("naive", "r1")][0], len(order))
        return self._result(e, gs, opts, {"preset": PRESET, "identity_order": how}, values, items)


def preset_testlist(content: dict, data_dir) -> dict:
    """A test list (``metrics.testlist.build_testlist``'s content) frozen with ``--protocol-preset sf2f``: its
    ``retrieval`` block holds SF2F's galleries (the split's identities in meta order, blocks of 100) and K, and
    ``preset`` says so; the id is recomputed. The sf2f suite ranks on these galleries when the list is given."""
    ds = open_dataset(data_dir)
    present = set(ds.split(content["split"], content["protocol"], check_files=False)["identity"])
    meta = ds.info.get("meta_order")
    order = [n for n in meta if n in present] if isinstance(meta, list) else []
    if len(order) != len(present):
        order = sorted(present)
    gals = sf2f_galleries(len(order))
    g = min(len(x) for x in gals)
    out = {**content, "preset": PRESET, "retrieval": {
        "gallery_size": g, "n_galleries": len(gals), "ks": [k for k in SF2F_KS if k <= g],
        "galleries": [[order[i] for i in x] for x in gals]}}
    out["id"] = testlist_id(out)
    return out


SUITE = Sf2fSuite()
REGISTER_SUITES = (Entry("sf2f", "SUITE", "SF2F's evaluator (--protocol-preset sf2f)", order=140),)
