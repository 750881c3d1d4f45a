"""The field's protocols as metric suites, in the identity judge's face space: ``retrieval`` (SF2F gallery
recall@K), ``distances`` (paired cosine / L1 / L2 to the own real face) and ``matching`` (1:N voice-face
matching with the real-vs-real ceiling).

All three score the embeddings that :func:`w2p_eval.metrics.identity.embeddings` gives (the identity suite's
judge, trained once per evaluation and memoised, so scoring the same faces again is free). The array-level
protocols are in :mod:`w2p_eval.metrics.protocols`; this module turns them into rows:

- every row has ``extra["ci"]`` (:func:`w2p_eval.metrics.base.ci_dict`: seeded 95 % BCa cluster bootstrap,
  groups = face ids; for matching, the probe's face id), ``extra["chance"]`` where a chance level exists;
- ``SuiteResult.items`` holds the per-item values for ``w2p-eval compare`` (pair ids as keys; for matching,
  the probe's pair id, one tuple per probe);
- with a frozen test list (``Context.testlist``) the galleries, K, tuples and N come from it; without,
  they are drawn with the evaluation seed exactly as ``w2p-eval testlist --seed`` would draw them.

Impossible settings: a gallery size G or a 1:N asked for explicitly that the split's identities do not allow
is bad input (InputError naming what is possible), refused by :meth:`check` before any face is generated;
the defaults (G = min(100, identities); N in 2, 5, 10) are shrunk or skipped instead, and a skipped default
is stored as a row without a value (``n`` 0) whose ``extra["skipped"]`` says why.
"""

from __future__ import annotations

import logging

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.judges.attributes import identity_genders
from w2p_eval.metrics import identity
from w2p_eval.metrics.base import Context, ItemValues, MetricSpec, MetricSuite, SuiteResult, ci_dict
from w2p_eval.metrics.features import JudgedFaces
from w2p_eval.metrics.matching import check_n_way, draw_matching_tuples, matching_accuracy, same_gender_problem
from w2p_eval.metrics.protocols import DEFAULT_KS, draw_galleries, gallery_recall, paired_distances
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

GALLERY_KS = DEFAULT_KS  # (1, 2, 5, 10)
DEFAULT_MATCHING = (2, 5, 10)
PAIRED_COSINE, PAIRED_L1, PAIRED_L2 = "paired_cosine", "paired_l1", "paired_l2"


def gallery_metric(k: int) -> str:
    return f"gallery_r{int(k)}"


def matching_metric(n_way: int, ceiling: bool = False, same_gender: bool = False) -> str:
    return f"matching_1to{int(n_way)}" + ("_same_gender" if same_gender else "") + ("_ceiling" if ceiling else "")


def split_identity_counts(opts: Context) -> tuple[int, int]:
    """(test identities, identities with >= 2 distinct faces) of the evaluated split, from the manifest."""
    df = opts.data_dir.split(opts.split, opts.protocol)
    if df.empty:
        raise InputError(f"expected pairs in split {opts.split!r} ({opts.protocol} protocol) of {opts.data_dir}, "
                         f"found none")
    faces = df.groupby("identity")["face_id"].nunique()
    return int(len(faces)), int((faces >= 2).sum())


def _skipped(reason: str, extra: dict | None = None) -> tuple[float, int, dict]:
    return float("nan"), 0, {**(extra or {}), "skipped": reason}


class _FaceSpaceSuite(MetricSuite):
    """A suite scored on the identity judge's embeddings (evaluator ``identity/<backbone>``), once per judge."""

    judged = True

    def evaluator(self, opts: Context) -> str:
        return f"identity/{opts.backbone}"

    def check(self, opts: Context) -> None:
        identity.SUITE.check(opts)

    def _embeddings(self, gs, opts: Context) -> JudgedFaces:
        return identity.embeddings(gs, opts)

    def _result(self, e: JudgedFaces, gs, opts: Context, config: dict, values: dict, items: dict) -> SuiteResult:
        judge = e.judge
        config = {"backbone": opts.backbone, "judge_key": judge.key, "split": opts.split, "protocol": opts.protocol,
                  "seed": opts.seed, "image_size": gs.image_size, "testlist": opts.testlist_id, **config}
        common = {"pipeline": f"{gs.image_size}px -> {judge.backbone.input_size}px",
                  "n_left_out": int((~e.keep).sum())}
        return SuiteResult(judge.evaluator, judge.info.get("version"), config,
                           {m: (v, n, {**extra, **common}) for m, (v, n, extra) in values.items()}, items)


class RetrievalSuite(_FaceSpaceSuite):
    """SF2F's retrieval: recall@K of the true identity when each generated face is ranked by cosine against
    galleries of G per-identity mean real embeddings, averaged over seeded galleries."""

    name = "retrieval"
    metrics = tuple(
        MetricSpec(gallery_metric(k), f"gallery recall@{k} (SF2F)", True, "rate",
                   f"SF2F's retrieval protocol: share of generated faces whose speaker is among the {k} nearest of G "
                   f"identities' mean real-face embeddings (G = min(100, test identities) unless set), identities "
                   f"weighted equally, averaged over seeded galleries; chance {k}/G (in the row).")
        for k in GALLERY_KS)
    done_when = (gallery_metric(1),)

    def check(self, opts: Context) -> None:
        super().check(opts)
        if opts.testlist is not None or opts.gallery_size is None:
            return
        n_ids, _ = split_identity_counts(opts)
        draw_galleries(np.arange(n_ids), opts.gallery_size, opts.n_galleries, opts.seed)  # raises what is possible

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        labels = e.labels
        n_ids = len(np.unique(labels))
        tl = opts.testlist
        config = {"gallery_size": opts.gallery_size, "n_galleries": opts.n_galleries}
        if tl is None and opts.gallery_size is None and n_ids < 2:
            reason = f"gallery retrieval needs at least 2 test identities, got {n_ids}"
            log.warning("%s: %s", gs.run, reason)
            return self._result(e, gs, opts, config, {gallery_metric(1): _skipped(reason)}, {})
        if tl is not None:
            galleries, ks = tl.gallery_labels(gs.identity_names), tl.ks
            res = gallery_recall(e.fake_emb, e.real_emb, labels, ks=ks, galleries=galleries)
        else:
            res = gallery_recall(e.fake_emb, e.real_emb, labels, gallery_size=opts.gallery_size,
                                 ks=GALLERY_KS, n_galleries=opts.n_galleries, seed=opts.seed)
        values, items = {}, {}
        n_used = int((res.weights > 0).sum())
        for k in res.ks:
            metric = gallery_metric(k)
            extra = {"chance": res.chance[k], "k": k, "gallery_size": res.gallery_size,
                     "n_galleries": len(res.galleries), "per_gallery": res.per_gallery[k].tolist(),
                     "n_tied_queries": res.n_tied_queries, "n_identities": n_ids,
                     "ci": ci_dict(res.hits[k], e.face_ids, weights=res.weights, seed=opts.seed,
                                   n_resamples=opts.n_resamples)}
            values[metric] = (res.recall[k], n_used, extra)
            items[metric] = ItemValues(keys=e.pair_ids, values=res.hits[k], groups=e.face_ids,
                                       weights=res.weights)
        config["galleries"] = [g.tolist() for g in res.galleries]
        log.info("retrieval %s: R@1 %.3f (G = %d, %d galleries)", gs.ckpt_path, res.recall[min(res.ks)],
                 res.gallery_size, len(res.galleries))
        return self._result(e, gs, opts, config, values, items)


class DistancesSuite(_FaceSpaceSuite):
    """SF2F's paired distances: cosine, L1 and L2 between each generated face's embedding and its own paired
    real face's (L2-normalised embeddings), mean over pairs."""

    name = "distances"
    metrics = (
        MetricSpec(PAIRED_COSINE, "paired cosine (to own real face)", True, "cosine",
                   "Mean cosine similarity between each generated face's embedding and its own paired real face's "
                   "(SF2F's cosine); 1 = same direction."),
        MetricSpec(PAIRED_L1, "paired L1 (to own real face)", False, "distance",
                   "Mean L1 distance between the L2-normalised embeddings of each generated face and of its own "
                   "paired real face (SF2F's L1); 0 = identical."),
        MetricSpec(PAIRED_L2, "paired L2 (to own real face)", False, "distance",
                   "Mean Euclidean distance between the L2-normalised embeddings of each generated face and of its "
                   "own paired real face (SF2F's L2); 0 = identical, at most 2."),
    )

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        d = paired_distances(e.fake_emb, e.real_emb, normalize=True)
        values, items = {}, {}
        n = len(e.labels)
        for metric, arr in ((PAIRED_COSINE, d.cosine_similarity), (PAIRED_L1, d.l1), (PAIRED_L2, d.l2)):
            extra = {"median": float(np.median(arr)), "normalized": d.normalized,
                     "ci": ci_dict(arr, e.face_ids, seed=opts.seed, n_resamples=opts.n_resamples,
                                   rate=False)}
            values[metric] = (float(arr.mean()), n, extra)
            items[metric] = ItemValues(keys=e.pair_ids, values=arr, groups=e.face_ids)
        return self._result(e, gs, opts, {"normalized": True}, values, items)


class MatchingSuite(_FaceSpaceSuite):
    """1:N voice-face matching (Wen et al. 2019; Nagrani et al. 2018): is the generated face closer, by cosine,
    to another real face of its speaker than to N-1 impostors' real faces? With the real-vs-real ceiling."""

    name = "matching"
    metrics = tuple(
        spec for n in DEFAULT_MATCHING for spec in (
            MetricSpec(matching_metric(n), f"1:{n} matching", True, "rate",
                       f"Share of 1:{n} tuples where the generated face is closer (cosine, judge's face space) to "
                       f"another real face of its speaker than to the real faces of {n - 1} impostors drawn with the "
                       f"seed from the other test identities; chance 1/{n}."),
            MetricSpec(matching_metric(n, True), f"1:{n} matching ceiling (real probe)", True, "rate",
                       f"The same 1:{n} tuples with the generated face replaced by its own paired real face: what a "
                       f"perfect generator would reach with this judge."),
            MetricSpec(matching_metric(n, same_gender=True), f"1:{n} matching, same-gender impostors", True, "rate",
                       f"1:{n} matching with the {n - 1} impostors drawn only from test identities of the speaker's "
                       f"gender (labels, else the attribute judge; the row's gender_source says which): a "
                       f"generator that learnt only gender scores chance 1/{n}."),
            MetricSpec(matching_metric(n, True, True), f"1:{n} same-gender matching ceiling (real probe)", True,
                       "rate", f"The same-gender 1:{n} tuples with the generated face replaced by its own paired "
                       f"real face.")))
    done_when = (matching_metric(2), matching_metric(2, same_gender=True))

    def n_ways(self, opts: Context) -> tuple[tuple[int, ...], bool]:
        """(the 1:N sizes to score, whether they were asked for explicitly)."""
        if opts.testlist is not None:
            have = tuple(sorted(opts.testlist.matching))
            if opts.matching is not None:
                missing = [n for n in opts.matching if n not in have]
                if missing:
                    raise InputError(f"expected 1:{missing[0]} matching tuples in test list {opts.testlist.id}, got "
                                     f"{', '.join(f'1:{n}' for n in have) or 'none'}")
                return tuple(sorted(set(opts.matching))), True
            return have, True
        if opts.matching is not None:
            return tuple(sorted({int(n) for n in opts.matching})), True
        return DEFAULT_MATCHING, False

    def check(self, opts: Context) -> None:
        super().check(opts)
        ns, explicit = self.n_ways(opts)
        if opts.testlist is not None or not explicit:
            return
        n_ids, n_multi = split_identity_counts(opts)
        for n in ns:
            check_n_way(n, n_ids)  # raises, saying which 1:N are possible
        if n_multi == 0:
            raise InputError(f"matching needs identities with at least 2 distinct faces (face_id) in the "
                             f"{opts.split} split, got none of {n_ids}; matching is not possible on this split")

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        ns, explicit = self.n_ways(opts)
        values, items, config = {}, {}, {"n_ways": list(ns)}
        self._score_n(gs, opts, e, ns, explicit, values, items)
        genders = row_genders(gs, opts, e.labels)
        if isinstance(genders, str):
            for n in ns:
                values[matching_metric(n, same_gender=True)] = _skipped(genders, {"chance": 1.0 / n})
            log.warning("same-gender matching skipped (%s)", genders)
        else:
            self._score_n(gs, opts, e, ns, False, values, items, genders)
        return self._result(e, gs, opts, config, values, items)

    def _score_n(self, gs, opts: Context, e, ns, explicit: bool, values: dict, items: dict,
                 genders: tuple[np.ndarray, str] | None = None) -> None:
        """Rows of each 1:N in ``ns`` (``genders`` = (row genders, their source): same-gender impostors)."""
        labels, face_ids, pair_ids = e.labels, e.face_ids, e.pair_ids
        n_ids = len(np.unique(labels))
        fid = np.asarray(face_ids)
        same = genders is not None
        for n in ns:
            metric, ceil_metric = matching_metric(n, same_gender=same), matching_metric(n, True, same)
            dropped = excluded = 0
            try:
                if same and opts.testlist is None:
                    why = same_gender_problem(labels, genders[0], n)
                    if why:
                        raise InputError(why)
                if opts.testlist is not None:
                    tuples, dropped = opts.testlist.matching_indices(n, pair_ids, drop_missing=True, same_gender=same)
                    if len(tuples) == 0:
                        raise InputError(f"none of test list {opts.testlist.id}'s 1:{n} tuples has all its faces in "
                                         f"{gs.run}'s scored set")
                else:
                    drawn = draw_matching_tuples(labels, face_ids, n, seed=opts.seed,
                                                 genders=genders[0] if same else None)
                    tuples, excluded = drawn.tuples, int(drawn.excluded.size)
            except InputError as exc:
                if explicit:
                    raise
                values[metric] = _skipped(str(exc), {"chance": 1.0 / n})
                # a default 1:N the split cannot hold is a note, not a warning (an asked-for N raised above)
                log.info("1:%d matching skipped: %s", n, exc)
                continue
            res = matching_accuracy(e.fake_emb, e.real_emb, tuples)
            groups = fid[res.probes].tolist()
            keys = [pair_ids[i] for i in res.probes]
            common = {"chance": res.chance, "n_way": n, "n_tuples": int(len(tuples)), "n_identities": n_ids,
                      "n_excluded_probes": excluded, "n_dropped_tuples": int(dropped)}
            if same:
                common["gender_source"] = genders[1]
            values[metric] = (res.accuracy, len(tuples), {
                **common, "ceiling": res.ceiling, "n_tied": res.n_tied,
                "ci": ci_dict(res.correct, groups, seed=opts.seed, n_resamples=opts.n_resamples)})
            values[ceil_metric] = (res.ceiling, len(tuples), {
                **common, "ci": ci_dict(res.ceiling_correct, groups, seed=opts.seed, n_resamples=opts.n_resamples)})
            items[metric] = ItemValues(keys=keys, values=res.correct, groups=groups, binary=True)
            items[ceil_metric] = ItemValues(keys=keys, values=res.ceiling_correct, groups=groups, binary=True)


def row_genders(gs, opts: Context, labels: np.ndarray) -> tuple[np.ndarray, str] | str:
    """(gender of each scored row str [M], its source) for same-gender matching, or the reason there is none.

    With a test list: the genders frozen in it; else the dataset's labels, falling back to the attribute judge
    (:func:`w2p_eval.judges.attributes.identity_genders`, memoised in ``opts.memo``)."""
    names = [gs.identity_names[int(i)] for i in labels]
    tl = opts.testlist
    if tl is not None:
        if not tl.genders:
            return tl.same_gender_missing(2) or "the test list freezes no genders"
        of, source = tl.genders, str(tl.gender_source)
    else:
        key = ("identity-genders", str(opts.data_dir), tuple(sorted(set(names))))
        if key not in opts.memo:
            try:  # the test identities only: the judge reads no face of the others
                opts.memo[key] = identity_genders(opts.data_dir, device=opts.device, cache_dir=opts.cache_dir,
                                                  names=sorted(set(names)))
            except InputError as exc:
                opts.memo[key] = str(exc)
        got = opts.memo[key]
        if isinstance(got, str):
            return got
        of, source = got.of, got.source
    missing = sorted({n for n in names if n not in of})
    if missing:
        return f"no gender for test identities {', '.join(missing[:5])}"
    return np.array([of[n] for n in names]), source


RETRIEVAL = RetrievalSuite()
DISTANCES = DistancesSuite()
MATCHING = MatchingSuite()
REGISTER_SUITES = (
    Entry("retrieval", "RETRIEVAL", "SF2F gallery recall@K", order=40),
    Entry("distances", "DISTANCES", "paired cosine/L1/L2 to the own real face", order=50),
    Entry("matching", "MATCHING", "1:N voice-face matching", order=60),
)
