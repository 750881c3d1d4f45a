"""The recent papers' metrics as suites in each identity judge's face space: ``diversity`` (SF2F's
inter-identity cosine, intra-identity spread), ``consistency`` (faces from different clips of one speaker),
``verification`` (voice-face verification EER / ROC-AUC) and ``coverage`` (Naeem et al. 2020 precision,
recall, density, coverage). Array-level definitions: :mod:`w2p_eval.metrics.recent`.

Like ``retrieval``/``distances``/``matching`` they read :func:`w2p_eval.metrics.identity.embeddings` (one
judge forward per face and judge) and run once per identity judge (``judged``; evaluator
``identity/<backbone>``), so the report's "Judge agreement" sets the judges beside each other. Intervals are
seeded 95 % cluster bootstraps with the **identity** as the cluster (faces of one speaker move together).
The references the report prints beside the values are stored in each row's ``extra``: ``real`` (the real
test faces' value), ``ceiling`` and ``chance``. Real faces count once per face id (copies of one picture are
not several faces).
"""

from __future__ import annotations

import logging

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.metrics import recent as R
from w2p_eval.metrics.base import ItemValues, MetricSpec, SuiteResult, ci_dict
from w2p_eval.metrics.plan import Context
from w2p_eval.metrics.protocols_suite import _FaceSpaceSuite, _skipped, row_genders
from w2p_eval.metrics.stats import cluster_bootstrap_stat
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

INTER, SPREAD, CONSISTENCY = "inter_identity_cosine", "intra_identity_spread", "cross_clip_consistency"
PRDC = ("precision", "recall", "density", "coverage")
TRIALS_PER_PROBE = 5


def verification_metric(what: str, same_gender: bool = False, ceiling: bool = False) -> str:
    """``verification_eer``, ``verification_auc_same_gender_ceiling``, ..."""
    return f"verification_{what}" + ("_same_gender" if same_gender else "") + ("_ceiling" if ceiling else "")


def _names(gs, labels: np.ndarray) -> np.ndarray:
    return np.array([gs.identity_names[int(i)] for i in labels])


def _first_per_face(face_ids: list[str]) -> np.ndarray:
    """Row indices of the first row of each distinct face id, in row order."""
    return np.sort(np.unique(np.asarray(face_ids).astype(str), return_index=True)[1])


def _mean_row(m: R.WeightedMean, groups, opts: Context, **extra) -> tuple[float, int, dict]:
    n = int((m.weights > 0).sum())
    ci = ci_dict(m.values, groups, weights=m.weights, seed=opts.seed, n_resamples=opts.n_resamples, rate=False)
    return m.value, n, {**extra, "ci": ci, "interval_groups": "identity"}


def _items(m: R.WeightedMean, keys: list[str], groups) -> ItemValues:
    """Per-face values for ``w2p-eval compare`` (paired by pair id, resampled by identity)."""
    return ItemValues(keys=list(keys), values=m.values, groups=[str(g) for g in groups], weights=m.weights)


def _ref(m: R.WeightedMean, groups, opts: Context) -> dict:
    """A reference value (real faces) with its interval, for a row's ``extra``."""
    value, n, extra = _mean_row(m, groups, opts)
    return {"value": value, "n": n, "ci": extra["ci"]}


class DiversitySuite(_FaceSpaceSuite):
    """Collapse and variety of generated faces: how alike are different speakers' faces, and one speaker's."""

    name = "diversity"
    metrics = (
        MetricSpec(INTER, "inter-identity cosine (collapse)", False, "cosine",
                   "Mean cosine, in the judge's face space, between generated faces of different speakers (SF2F's "
                   "collapse check): one face drawn for everyone scores 1.0; read it beside the real faces' value."),
        MetricSpec(SPREAD, "intra-identity spread", True, "distance",
                   "Mean over speakers of 1 - the cosine of each generated face to its speaker's generated centroid: "
                   "0 when a speaker always gets the same face; the real faces' spread beside it."),
    )

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        names = _names(gs, e.labels)
        reals = _first_per_face(e.face_ids)
        values, items = {}, {}
        if len(np.unique(e.labels)) < 2:
            values[INTER] = _skipped(f"needs faces of at least 2 speakers, got {len(np.unique(e.labels))}")
        else:
            inter, real = (R.inter_identity_cosine(e.fake_emb, e.labels),
                           R.inter_identity_cosine(e.real_emb[reals], e.labels[reals]))
            values[INTER] = _mean_row(inter, names, opts, real=_ref(real, names[reals], opts), collapsed=1.0)
            items[INTER] = _items(inter, e.pair_ids, names)
        spread = R.intra_identity_spread(e.fake_emb, e.labels)
        real = R.intra_identity_spread(e.real_emb[reals], e.labels[reals])
        values[SPREAD] = _mean_row(spread, names, opts, real=_ref(real, names[reals], opts), collapsed=0.0)
        items[SPREAD] = _items(spread, e.pair_ids, names)
        return self._result(e, gs, opts, {"real_faces": "one per face id"}, values, items)


def clip_keys(opts: Context, pair_ids: list[str]) -> tuple[list[str], str]:
    """(the clip each row's audio came from, the level used): the manifest's ``segment_id`` (source segment or
    video) when some speaker has several among ``pair_ids``, else the pair itself (each audio window a clip)."""
    df = opts.data_dir.split(opts.split, opts.protocol)
    if "segment_id" in df.columns:
        sub = df[df["pair_id"].astype(str).isin(set(pair_ids))]
        if len(sub) and sub.groupby("identity")["segment_id"].nunique().max() > 1:
            seg = dict(zip(sub["pair_id"].astype(str), sub["segment_id"].astype(str)))
            return [seg.get(p, p) for p in pair_ids], "segment_id"
    return list(pair_ids), "pair (audio window)"


class ConsistencySuite(_FaceSpaceSuite):
    """Speech2Face / Cross-Modal Perceptionist: do the faces generated from different clips of one speaker agree?"""

    name = "consistency"
    metrics = (
        MetricSpec(CONSISTENCY, "cross-clip consistency", True, "cosine",
                   "For each speaker, the mean cosine between faces generated from different clips (source "
                   "segments where the dataset has several, else audio windows), speakers weighted equally; "
                   "ceiling: the real faces of those clips; a constant face scores 1.0, so read it with the "
                   "inter-identity cosine (collapse) beside it."),
    )

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        names = _names(gs, e.labels)
        clips, level = clip_keys(opts, e.pair_ids)
        fake = R.cross_clip_consistency(e.fake_emb, e.labels, clips)
        values = {}
        if not (fake.weights > 0).any():
            values[CONSISTENCY] = _skipped(f"no speaker has faces from two clips ({level})")
        else:
            real = R.cross_clip_consistency(e.real_emb, e.labels, clips)
            extra = {"clip_level": level, "ceiling": _ref(real, names, opts)}
            reals = _first_per_face(e.face_ids)
            if len(np.unique(e.labels)) > 1:  # a face of anyone else: what ignoring the speaker scores
                extra["chance"] = R.inter_identity_cosine(e.real_emb[reals], e.labels[reals]).value
            values[CONSISTENCY] = _mean_row(fake, names, opts, **extra)
            return self._result(e, gs, opts, {"clips": level}, values, {CONSISTENCY: _items(fake, e.pair_ids, names)})
        return self._result(e, gs, opts, {"clips": level}, values, {})


class VerificationSuite(_FaceSpaceSuite):
    """Voice-face verification (association benchmarks, FAME): is the generated face accepted as the speaker,
    against a real face of the same speaker or of another one? EER and ROC-AUC over balanced trials."""

    name = "verification"
    metrics = tuple(
        MetricSpec(verification_metric(what, same, ceil),
                   f"verification {what.upper()}" + (", same-gender impostors" if same else "")
                   + (" ceiling (real probe)" if ceil else ""),
                   what == "auc", "rate",
                   ("The same trials with the generated face replaced by its own paired real face: what a perfect "
                    "generator reaches with this judge." if ceil else
                    f"Trials: each generated face (probe) against up to {TRIALS_PER_PROBE} real faces of its speaker "
                    f"(other face ids) and as many of other speakers"
                    + (" of the speaker's gender" if same else "") + "; cosine in the judge's face space; "
                    + ("equal error rate (chance 50 %)." if what == "eer" else "ROC-AUC (chance 50 %).")))
        for same in (False, True) for what in ("eer", "auc") for ceil in (False, True))
    done_when = (verification_metric("eer"),)

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        values: dict = {}
        self._score(gs, opts, e, None, values)
        genders = row_genders(gs, opts, e.labels)
        if isinstance(genders, str):
            for what in ("eer", "auc"):
                values[verification_metric(what, True)] = _skipped(genders, {"chance": 0.5})
            log.warning("same-gender verification skipped (%s)", genders)
        else:
            self._score(gs, opts, e, genders, values)
        return self._result(e, gs, opts, {"trials_per_probe": TRIALS_PER_PROBE}, values, {})

    def _score(self, gs, opts: Context, e, genders, values: dict) -> None:
        same = genders is not None
        trials = R.draw_verification_trials(e.labels, e.face_ids, seed=opts.seed, per_probe=TRIALS_PER_PROBE,
                                            genders=genders[0] if same else None)
        if len(trials.probe) == 0 or len(np.unique(e.labels[trials.probe])) < 2:
            for what in ("eer", "auc"):
                values[verification_metric(what, same)] = _skipped(
                    "no probe has both a second real face of its speaker and an impostor", {"chance": 0.5})
            return
        groups = _names(gs, e.labels)[trials.probe]
        common = {"chance": 0.5, "n_trials": int(len(trials.probe)), "n_probes": int(len(np.unique(trials.probe))),
                  "n_excluded_probes": int(len(trials.excluded)),
                  "n_identities": int(len(np.unique(groups)))}
        if same:
            common["gender_source"] = genders[1]
        for ceil, probe_emb in ((False, e.fake_emb), (True, e.real_emb)):
            scores = R.trial_scores(probe_emb, e.real_emb, trials)

            def stat(weights, s=scores):
                return np.stack(R.verification_curves(s, trials.genuine, weights), axis=1)

            try:
                eer, auc = cluster_bootstrap_stat(stat, groups, seed=opts.seed, n_resamples=opts.n_resamples)
            except InputError as exc:
                for what in ("eer", "auc"):
                    values[verification_metric(what, same, ceil)] = _skipped(str(exc), {"chance": 0.5})
                continue
            for what, iv in (("eer", eer), ("auc", auc)):
                values[verification_metric(what, same, ceil)] = (iv.value, len(trials.probe), {
                    **common, "ci": iv.to_dict(), "interval_groups": "identity"})


class CoverageSuite(_FaceSpaceSuite):
    """Naeem et al. 2020: fidelity (precision, density) and diversity (recall, coverage) of the generated faces
    against the real test faces, by k-NN balls in the judge's face space (L2-normalised embeddings)."""

    name = "coverage"
    metrics = (
        MetricSpec("precision", "precision (k-NN, Naeem et al.)", True, "rate",
                   "Share of generated faces inside the k-NN ball of some real test face (judge's face space, k in "
                   "the row); identical sets score 100 %."),
        MetricSpec("recall", "recall (k-NN, Naeem et al.)", True, "rate",
                   "Share of real test faces inside the k-NN ball of some generated face: a collapsed generator "
                   "scores near 0."),
        MetricSpec("density", "density (Naeem et al.)", True, "value",
                   "Mean number of real faces' k-NN balls holding each generated face, divided by k (about 1 for "
                   "faces drawn like the real ones; can exceed 1)."),
        MetricSpec("coverage", "coverage (Naeem et al.)", True, "rate",
                   "Share of real test faces whose k-NN ball holds at least one generated face."),
    )
    done_when = ("precision", "coverage")
    k = R.DEFAULT_K

    def score(self, gs, opts: Context) -> SuiteResult:
        e = self._embeddings(gs, opts)
        names = _names(gs, e.labels)
        reals = _first_per_face(e.face_ids)
        try:
            res = R.prdc(R.l2_normalize(e.real_emb[reals]), R.l2_normalize(e.fake_emb), k=self.k)
        except InputError as exc:
            return self._result(e, gs, opts, {"k": self.k}, {m: _skipped(str(exc)) for m in PRDC}, {})
        common = {"k": self.k, "n_real": int(len(reals)), "n_generated": int(len(e.labels)),
                  "interval_groups": "identity"}
        values, items = {}, {}
        for metric, value, per_item, groups, keys, binary in (
                ("precision", res.precision, res.in_real, names, e.pair_ids, True),
                ("recall", res.recall, res.in_fake, names[reals], [e.pair_ids[i] for i in reals], True),
                ("density", res.density, res.density_items, names, e.pair_ids, False),
                ("coverage", res.coverage, res.covered, names[reals], [e.pair_ids[i] for i in reals], True)):
            ci = ci_dict(per_item, groups, seed=opts.seed, n_resamples=opts.n_resamples, rate=binary)
            values[metric] = (value, len(per_item), {**common, "ci": ci})
            items[metric] = ItemValues(keys=list(keys), values=per_item, groups=list(groups), binary=binary)
        return self._result(e, gs, opts, {"k": self.k, "real_faces": "one per face id"}, values, items)


DIVERSITY = DiversitySuite()
CONSISTENCY_SUITE = ConsistencySuite()
VERIFICATION = VerificationSuite()
COVERAGE = CoverageSuite()
REGISTER_SUITES = (
    Entry("diversity", "DIVERSITY", "inter-identity cosine (collapse), intra-identity spread", order=80),
    Entry("consistency", "CONSISTENCY_SUITE", "cross-clip consistency of one speaker's faces", order=90),
    Entry("verification", "VERIFICATION", "generated vs real face verification EER / AUC", order=100),
    Entry("coverage", "COVERAGE", "precision / recall / density / coverage (Naeem et al.)", order=110),
)
