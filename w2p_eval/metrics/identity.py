"""Identity accuracy of generated faces (the WAV2PIX headline metric) and face-embedding metrics.

For each checkpoint: ``generate_split`` gives generated and real faces of one split at the
generator's size S (real faces go through the same resolution pipeline: down to S, then to the
backbone's input). An identity judge (:func:`identity_classifier`), trained once on real training
faces and cached, scores both. Rows (results-store format) per checkpoint:

- identity_top1_real / identity_top5_real: accuracy on real faces (the ceiling);
- identity_top1_fake / identity_top5_fake: accuracy on generated faces;
  per-identity accuracy with its 95 % interval (``per_identity_ci``), confusion matrix and labels are in
  ``extra`` of the top-1 rows;
- cosine_own_centroid / cosine_other_centroids: mean cosine of each generated face's embedding to
  its identity's real-face centroid / to the other identities' centroids (centroids of the split);
- retrieval_r1 / retrieval_r5: recall@K ranking ALL test identities' centroids of the split by cosine (names
  kept for store compatibility; the SF2F gallery protocol is the ``retrieval`` suite's ``gallery_r*``);
- frechet_face / kid_face: Fréchet distance and KID between generated and real embeddings.

Every row but Fréchet/KID has ``extra["ci"]`` (:func:`w2p_eval.metrics.base.ci_dict`: a seeded 95 % cluster
bootstrap over face ids) and per-item values in ``SuiteResult.items`` for ``w2p-eval compare``.
:func:`embeddings` gives the judge's embeddings of a GeneratedSet once per evaluation (the ``retrieval``,
``distances`` and ``matching`` suites work in the same face space).
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np

from w2p_eval.judges import parse_backbones
from w2p_eval.judges.identity import IdentityJudge, identity_classifier  # noqa: F401  (re-exported)
from w2p_eval.metrics import embedding as E
from w2p_eval.metrics.base import Context, ItemValues, MetricSpec, MetricSuite, SuiteResult, ci_dict
from w2p_eval.metrics.stats import bootstrap_ci_many
from w2p_eval.metrics.features import JudgedFaces
from w2p_eval.registry import Entry
from w2p_eval.utils import topk_accuracy

log = logging.getLogger(__name__)

IDENTITY_TOP1_REAL = "identity_top1_real"
IDENTITY_TOP5_REAL = "identity_top5_real"
IDENTITY_TOP1_FAKE = "identity_top1_fake"
IDENTITY_TOP5_FAKE = "identity_top5_fake"
COSINE_OWN_CENTROID = "cosine_own_centroid"
COSINE_OTHER_CENTROIDS = "cosine_other_centroids"
RETRIEVAL_R1 = "retrieval_r1"
RETRIEVAL_R5 = "retrieval_r5"
FRECHET_FACE = "frechet_face"
KID_FACE = "kid_face"
PIPELINE_NOTE = ("real test faces go through the same resolution pipeline as generated ones "
                 "(down to the generator's output size, then to the backbone's input size)")


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 [n_classes, n_classes]: row = true identity, column = predicted."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(pred, np.int64)), 1)
    return cm


def per_identity_accuracy(pred: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, float]:
    """Top-1 accuracy per identity present in ``labels`` -> {name: accuracy}."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    return {names[i]: float((pred[labels == i] == i).mean()) for i in np.unique(labels)}


def accuracy_extra(logits: np.ndarray, labels: np.ndarray, names: list[str], n_choices: int) -> dict:
    """``extra`` of a top-1 row: per-identity accuracy, confusion matrix over the identities that occur
    (as truth or prediction), and chance = 1 / ``n_choices`` (the identities the judge was trained on)."""
    pred = np.asarray(logits).argmax(axis=1)
    present = sorted(set(np.unique(labels).tolist()) | set(np.unique(pred).tolist()))
    cm = confusion_matrix(pred, labels, len(names))[np.ix_(present, present)]
    return {"per_identity": per_identity_accuracy(pred, labels, names), "confusion": cm.tolist(),
            "confusion_labels": [names[i] for i in present], "chance": 1.0 / max(n_choices, 1)}


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """float64 [N]: 1 where the true label is among the ``k`` largest logits (logits [N, C], labels [N])."""
    logits = np.asarray(logits)
    k = min(int(k), logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return (top == np.asarray(labels, np.int64)[:, None]).any(axis=1).astype(np.float64)


def per_identity_ci(hits: np.ndarray, labels: np.ndarray, names: list[str], groups: list[str], *, seed: int = 0,
                    n_resamples: int = 2000) -> dict[str, list[float]]:
    """{identity: [low, high]}: the seeded 95 % cluster-bootstrap interval (:func:`ci_dict`, face ids resampled
    together) of each test identity's accuracy, from per-item hits [N] and labels [N]."""
    labels, hits = np.asarray(labels, np.int64), np.asarray(hits, np.float64)
    ids = np.unique(labels).tolist()
    subsets = [np.flatnonzero(labels == i) for i in ids]
    if not np.isfinite(hits).all():  # ci_dict leaves NaN items out, one identity at a time
        out = {}
        for i, idx in zip(ids, subsets):
            ci = ci_dict(hits[idx], [groups[j] for j in idx], seed=seed, n_resamples=n_resamples, rate=True)
            if ci is not None:
                out[names[i]] = [float(ci["low"]), float(ci["high"])]
        return out
    g = None if groups is None or len(groups) == 0 else np.asarray(groups).astype(str)
    # one vectorised bootstrap per distinct group count, not one per identity (same intervals)
    cis = bootstrap_ci_many([(hits[idx], None if g is None else g[idx]) for idx in subsets], seed=int(seed),
                            n_resamples=int(n_resamples))
    return {names[i]: [float(ci.low), float(ci.high)] for i, ci in zip(ids, cis)}


def score_sets(judge: IdentityJudge, fake: np.ndarray, real: np.ndarray, labels: np.ndarray, seed: int = 0,
               groups: list[str] | None = None, keys: list[str] | None = None,
               items: dict[str, ItemValues] | None = None, n_resamples: int = 2000) -> dict:
    """All metric values for row-aligned generated and real faces (uint8 [N, S, S, 3]).

    Returns {metric: (value, n, extra)}; every value but Fréchet/KID has ``extra["ci"]`` (a seeded cluster
    bootstrap over ``groups`` [N], the face ids; None = every face its own group). With ``items`` (a dict),
    the per-item values behind each row are put there as :class:`ItemValues` keyed by ``keys`` [N] (pair ids).
    """
    real_emb, real_logits = judge.real_scores(real)
    fake_emb, fake_logits = judge.score(fake)
    n_unique = len({hashlib.sha1(im.tobytes()).digest() for im in np.ascontiguousarray(real)})
    return score_embeddings(judge, fake_emb, fake_logits, real_emb, real_logits, labels, n_distinct_faces=n_unique,
                            seed=seed, groups=groups, keys=keys, items=items, n_resamples=n_resamples)


def score_embeddings(judge: IdentityJudge, fake_emb: np.ndarray, fake_logits: np.ndarray, real_emb: np.ndarray,
                     real_logits: np.ndarray, labels: np.ndarray, *, n_distinct_faces: int, seed: int = 0,
                     groups: list[str] | None = None, keys: list[str] | None = None,
                     items: dict[str, ItemValues] | None = None, n_resamples: int = 2000) -> dict:
    """:func:`score_sets` from the judge's outputs: embeddings float [N, D] and logits float [N, C] of the
    generated and real faces, labels int [N]."""
    names = judge.identities
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    keys = [str(i) for i in range(n)] if keys is None else [str(k) for k in keys]
    groups = list(keys) if not groups else [str(g) for g in groups]
    n_unique = int(n_distinct_faces)
    n_choices = int(judge.info.get("n_identities_trained") or len(names))
    top5 = {"k": min(5, n_choices), "chance": min(5, n_choices) / n_choices}
    per_item: dict[str, tuple[np.ndarray, bool]] = {
        IDENTITY_TOP1_REAL: (topk_hits(real_logits, labels, 1), True),
        IDENTITY_TOP5_REAL: (topk_hits(real_logits, labels, 5), True),
        IDENTITY_TOP1_FAKE: (topk_hits(fake_logits, labels, 1), True),
        IDENTITY_TOP5_FAKE: (topk_hits(fake_logits, labels, 5), True),
    }
    out = {
        IDENTITY_TOP1_REAL: (topk_accuracy(real_logits, labels, 1), n,
                             {**accuracy_extra(real_logits, labels, names, n_choices), "n_distinct_faces": n_unique}),
        IDENTITY_TOP5_REAL: (topk_accuracy(real_logits, labels, 5), n, top5),
        IDENTITY_TOP1_FAKE: (topk_accuracy(fake_logits, labels, 1), n,
                             accuracy_extra(fake_logits, labels, names, n_choices)),
        IDENTITY_TOP5_FAKE: (topk_accuracy(fake_logits, labels, 5), n, top5),
    }
    ids, cents = E.identity_centroids(real_emb, labels)
    cos = E.centroid_cosines(fake_emb, labels, ids, cents)
    per_id = {names[i]: float(np.nanmean(cos["own"][labels == i])) for i in ids}
    out[COSINE_OWN_CENTROID] = (float(np.nanmean(cos["own"])), n, {"std": float(np.nanstd(cos["own"])),
                                                                    "per_identity": per_id})
    per_item[COSINE_OWN_CENTROID] = (cos["own"], False)
    other_ok = bool(np.isfinite(cos["other"]).any())
    out[COSINE_OTHER_CENTROIDS] = (float(np.nanmean(cos["other"])) if other_ok else float("nan"), n if other_ok else 0,
                                   {"n_identities": int(len(ids))})
    if other_ok:
        per_item[COSINE_OTHER_CENTROIDS] = (cos["other"], False)
    ranks = _centroid_ranks(cos["sims"], labels, ids)
    what = "recall@K over all test identities' centroids"
    for metric, k in ((RETRIEVAL_R1, 1), (RETRIEVAL_R5, 5)):
        hits = (ranks < k).astype(np.float64)
        out[metric] = (float(hits.mean()), n, {"n_identities": int(len(ids)), "chance": min(k, len(ids)) / len(ids),
                                               "k": k, "protocol": what})
        per_item[metric] = (hits, True)
    for metric, (vals, binary) in per_item.items():
        v, m, extra = out[metric]
        out[metric] = (v, m, {**extra, "ci": ci_dict(vals, groups, seed=seed, n_resamples=n_resamples, rate=binary)})
        if items is not None:
            items[metric] = ItemValues(keys=keys, values=np.asarray(vals, np.float64), groups=groups, binary=binary)
    for metric in (IDENTITY_TOP1_REAL, IDENTITY_TOP1_FAKE):
        out[metric][2]["per_identity_ci"] = per_identity_ci(per_item[metric][0], labels, names, groups, seed=seed,
                                                            n_resamples=n_resamples)
    if n >= 2:
        out[FRECHET_FACE] = (E.frechet_distance(fake_emb, real_emb), n, {"dim": int(fake_emb.shape[1])})
        kid, kid_std = E.kernel_distance(fake_emb, real_emb, subsets=100, subset_size=1000, seed=seed)
        out[KID_FACE] = (kid, n, {"std": kid_std, "subset_size": min(1000, n), "dim": int(fake_emb.shape[1])})
    return out


def _centroid_ranks(sims: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each row's own centroid among all centroids, ties counted against it (as
    :func:`w2p_eval.metrics.embedding.retrieval_recall`); inf when its identity has no centroid."""
    col = {int(c): j for j, c in enumerate(ids)}
    ranks = np.full(len(labels), np.inf)
    for i, lab in enumerate(np.asarray(labels, np.int64).tolist()):
        if lab in col:
            own = sims[i, col[lab]]
            ranks[i] = int((np.delete(sims[i], col[lab]) >= own).sum())
    return ranks


def embeddings(gs, opts: Context) -> JudgedFaces:
    """The identity judge's view of a GeneratedSet (:class:`~w2p_eval.metrics.features.JudgedFaces`: embeddings,
    logits, labels, pair and face ids of the rows the judge never trained on), computed once per (judge, faces)
    within an evaluation through ``opts.features``. The ``retrieval``, ``distances`` and ``matching`` suites
    all use it."""
    return opts.features.get(SUITE.judge(opts, gs.image_size), gs)


class IdentitySuite(MetricSuite):
    """Identity accuracy of generated vs real faces and embedding metrics, judged by an identity classifier
    trained once per (dataset, backbone, face size, seed) on the real training faces and cached."""

    name = "identity"
    metrics = (
        MetricSpec(IDENTITY_TOP1_FAKE, "identity top-1 (generated)", True, "rate",
                   "Share of generated faces that the identity classifier (trained on real training faces) assigns "
                   "to the speaker whose speech produced them; chance is 1 / number of identities."),
        MetricSpec(IDENTITY_TOP5_FAKE, "identity top-5 (generated)", True, "rate",
                   "Share of generated faces whose speaker is among the classifier's five most likely identities."),
        MetricSpec(IDENTITY_TOP1_REAL, "identity top-1 (real)", True, "rate",
                   "The same classifier's accuracy on the paired real test faces, at the generator's resolution: "
                   "the ceiling for generated faces."),
        MetricSpec(IDENTITY_TOP5_REAL, "identity top-5 (real)", True, "rate",
                   "Top-5 accuracy of the classifier on the real test faces."),
        MetricSpec(COSINE_OWN_CENTROID, "cosine to own centroid", True, "cosine",
                   "Mean cosine similarity, in the judge's face-embedding space, between each generated face and "
                   "the centroid of its speaker's real test faces."),
        MetricSpec(COSINE_OTHER_CENTROIDS, "cosine to other centroids", False, "cosine",
                   "Mean cosine similarity between each generated face and the centroids of the other speakers' "
                   "real faces; a good generator keeps it below the own-centroid value."),
        MetricSpec(RETRIEVAL_R1, "recall@1 over all test identities' centroids", True, "rate",
                   "Share of generated faces whose nearest real identity centroid among ALL test identities "
                   "(by cosine) is their own speaker's (not SF2F's gallery protocol: see gallery recall@K)."),
        MetricSpec(RETRIEVAL_R5, "recall@5 over all test identities' centroids", True, "rate",
                   "Share of generated faces whose speaker's centroid is among the five nearest of ALL test "
                   "identities' centroids (chance min(5, identities) / identities)."),
        MetricSpec(FRECHET_FACE, "Fréchet face distance", False, "distance",
                   "Fréchet distance between Gaussians fitted to generated and real test-face embeddings (FID "
                   "computed in face-recognition space); 0 for identical distributions."),
        MetricSpec(KID_FACE, "KID (face space)", False, "distance",
                   "Kernel inception distance (unbiased polynomial-kernel MMD) between generated and real face "
                   "embeddings; about 0 for identical distributions."),
    )
    done_when = (IDENTITY_TOP1_FAKE, IDENTITY_TOP1_REAL)
    judged = True

    def evaluator(self, opts: Context) -> str:
        return f"identity/{opts.backbone}"

    def check(self, opts: Context) -> None:
        parse_backbones(opts.judges)  # unknown or repeated names raise with a hint

    def judge(self, opts: Context, image_size: int) -> IdentityJudge:
        """The judge ``opts.backbone`` for faces of ``image_size`` px, trained (or read from the cache) once per
        evaluation and kept in ``opts.features``."""
        return opts.features.judge(opts.backbone, image_size, lambda: identity_classifier(
            opts.data_dir, opts.backbone, int(image_size), opts.seed, opts.protocol, opts.cache_dir, split=opts.split,
            device=opts.device, backbone_options=opts.backbone_options))

    def score(self, gs, opts: Context) -> SuiteResult:
        t0 = time.perf_counter()
        e = embeddings(gs, opts)
        judge, keep = e.judge, e.keep
        items: dict[str, ItemValues] = {}
        values = score_embeddings(judge, e.fake_emb, e.fake_logits, e.real_emb, e.real_logits, e.labels,
                                  n_distinct_faces=e.n_distinct_faces, seed=opts.seed, groups=e.face_ids,
                                  keys=e.pair_ids, items=items, n_resamples=opts.n_resamples)
        config = {"backbone": opts.backbone, "judge_key": judge.key, "split": opts.split, "protocol": opts.protocol,
                  "seed": opts.seed, "image_size": gs.image_size, "input_size": judge.backbone.input_size}
        judge_info = {k: judge.info.get(k) for k in ("val_acc", "train_acc", "n_train", "n_val", "best_epoch")}
        common = {"pipeline": f"{gs.image_size}px -> {judge.backbone.input_size}px", "judge": judge_info,
                  "n_left_out": int((~keep).sum())}
        log.info("identity %s: top1 fake %.3f real %.3f (%d faces, %.1f s)", gs.ckpt_path,
                 values[IDENTITY_TOP1_FAKE][0], values[IDENTITY_TOP1_REAL][0], int(keep.sum()),
                 time.perf_counter() - t0)
        return SuiteResult(judge.evaluator, judge.info.get("version"), config,
                           {m: (v, n, {**extra, **common}) for m, (v, n, extra) in values.items()}, items)


SUITE = IdentitySuite()
REGISTER_SUITES = (Entry("identity", "SUITE", "identity accuracy by a trained judge, embedding metrics", order=10),)
METRICS = tuple(m.name for m in SUITE.metrics)


def describe_rows(rows: list[dict]) -> tuple[str, str]:
    """(header, note) printed around the identity rows' table: the judge, split, seed and face count, and the
    resolution-pipeline and interval notes."""
    if not rows:
        return "no checkpoints evaluated", ""
    first = rows[0]
    head = (f"identity evaluation: {first['evaluator']} ({first['evaluator_version']}), split {first['split']}, "
            f"protocol {first['protocol']}, seed {first['seed']}, pipeline {first['extra'].get('pipeline')}")
    return head, (f"note: {PIPELINE_NOTE}; brackets: 95 % intervals (seeded cluster bootstrap over test faces); "
                  f"n: faces scored.")
