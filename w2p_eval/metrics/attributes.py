"""The ``attributes`` suite (Speech2Face's attribute agreement): gender, age and ethnicity of every generated face
and of its paired real face, by the attribute judges of :mod:`w2p_eval.judges.attributes` (FaceRes: gender, age;
GEAR: ethnicity), and, where the dataset has gender labels (``prepare --identity-meta``), gender accuracy.

Per pair i: ``g`` = 1 when P(male) >= 0.5 (generated ``g_f``, real ``g_r``), ``a`` = expected age in years,
``e`` = the most probable of GEAR's five ethnicities. Rows (each with ``extra["ci"]``: the cluster bootstrap over
face ids, :func:`w2p_eval.metrics.base.ci_dict`; ``age_corr``: percentile cluster bootstrap of Pearson's r):

- ``gender_agreement`` mean(g_f == g_r); ``extra["chance"]`` = the agreement of independent draws with the same
  marginals (p_f p_r + (1-p_f)(1-p_r)); ``extra["confusion"]`` [[real f & gen f, real f & gen m], [real m & gen f,
  real m & gen m]] (counts of pairs);
- ``age_mae`` mean |a_f - a_r| (years), ``age_corr`` Pearson r(a_f, a_r) (NaN when either side is constant);
- ``ethnicity_agreement`` mean(e_f == e_r), with its 5 x 5 confusion (rows real, columns generated);
- with labels: ``gender_accuracy_fake`` mean(g_f == label), ``gender_accuracy_real`` mean(g_r == label) (the
  judge's ceiling on the real test faces), ``extra["gender_source"]`` naming where the labels came from.

``real_faces`` agrees with itself by construction (100 %, MAE 0); ``mean_face`` (one face) scores the share of
pairs whose real face has its one predicted gender; ``random_real`` about the population's agreement.
"""

from __future__ import annotations

import functools
import hashlib
import logging

import numpy as np

from w2p_eval.errors import InputError

from w2p_eval.data.identity_meta import identity_genders as labelled_genders
from w2p_eval.data.manifest import load_info
from w2p_eval.judges import require_identity_backbone
from w2p_eval.judges.attributes import ETHNICITIES, load_attribute_judge
from w2p_eval.metrics.base import Context, ItemValues, MetricSpec, MetricSuite, SuiteResult, ci_dict
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

GENDER_AGREEMENT, AGE_MAE, AGE_CORR = "gender_agreement", "age_mae", "age_corr"
ETHNICITY_AGREEMENT = "ethnicity_agreement"
GENDER_ACC_FAKE, GENDER_ACC_REAL = "gender_accuracy_fake", "gender_accuracy_real"
EVALUATOR = "attributes/faceres+gear"


def correlation_ci(x: np.ndarray, y: np.ndarray, groups, *, seed: int, n_resamples: int) -> dict | None:
    """Pearson r of x, y (float [N]) with a seeded percentile cluster bootstrap (groups resampled together) ->
    the ``extra["ci"]`` shape; None when r is undefined (fewer than 3 items or a constant side)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r = float(np.corrcoef(x, y)[0, 1])
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(int(n_resamples)):
        idx = np.concatenate([members[g] for g in rng.integers(len(members), size=len(members))])
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            stats.append(np.corrcoef(x[idx], y[idx])[0, 1])
    lo, hi = (np.percentile(stats, [2.5, 97.5]) if stats else (np.nan, np.nan))
    return {"value": r, "low": float(lo), "high": float(hi), "confidence": 0.95,
            "method": "percentile cluster bootstrap (Pearson r)", "n_items": int(len(x)),
            "n_groups": len(members), "n_resamples": int(n_resamples), "seed": int(seed)}


def confusion(real: np.ndarray, fake: np.ndarray, k: int) -> list[list[int]]:
    """Counts [k, k]: rows = the real face's class, columns = the generated face's."""
    mat = np.zeros((k, k), dtype=np.int64)
    np.add.at(mat, (real.astype(int), fake.astype(int)), 1)
    return mat.tolist()


class AttributesSuite(MetricSuite):
    """Attribute agreement between each generated face and its paired real face (Speech2Face), and gender accuracy
    against the dataset's labels."""

    name = "attributes"
    metrics = (
        MetricSpec(GENDER_AGREEMENT, "gender agreement (generated vs real)", True, "rate",
                   "Share of pairs where the attribute judge (FaceRes) gives the generated face and the speaker's "
                   "real face the same gender; chance (in the row) = agreement of independent faces with the same "
                   "gender shares."),
        MetricSpec(AGE_MAE, "age MAE (generated vs real, years)", False, "years",
                   "Mean absolute difference in years between the judge's age of the generated face and of the "
                   "speaker's real face (FaceRes, expected value over 100 one-year bins)."),
        MetricSpec(AGE_CORR, "age correlation (generated vs real)", True, "correlation",
                   "Pearson correlation over pairs between the judge's age of the generated face and of the real "
                   "face; 0 = no age information."),
        MetricSpec(ETHNICITY_AGREEMENT, "ethnicity agreement (generated vs real)", True, "rate",
                   "Share of pairs where GEAR's most probable of (white, black, asian, indian, other) is the same "
                   "for the generated and the real face (GEAR's ethnicity head is weak on these faces: docs/judges.md)."),
        MetricSpec(GENDER_ACC_FAKE, "gender accuracy (generated)", True, "rate",
                   "Share of generated faces whose judged gender is the speaker's labelled gender (dataset "
                   "metadata; the row's gender_source says where the labels came from)."),
        MetricSpec(GENDER_ACC_REAL, "gender accuracy (real test faces)", True, "rate",
                   "Share of real test faces whose judged gender is the speaker's labelled gender: the judge's "
                   "ceiling on this data."),
    )
    done_when = (GENDER_AGREEMENT,)

    def evaluator(self, opts: Context) -> str:
        """``attributes/faceres+gear``, or ``attributes/faceres`` when GEAR's files are absent (no ethnicity rows):
        rows say which networks made them, and installing GEAR later makes the suite pending again."""
        try:
            return f"attributes/{load_attribute_judge(opts.device).name}"
        except InputError:  # no FaceRes either: check() says so in one line before anything runs
            return EVALUATOR

    def requirements(self, opts: Context, items=()) -> list:
        # FaceRes (gender, age) through its judge entry (its module is an nn.Module one: w2p_eval.lazy); GEAR ships in
        # the same files
        return [("attribute judge", functools.partial(require_identity_backbone, "faceres"))]

    def check(self, opts: Context) -> None:
        load_attribute_judge(opts.device)  # missing weights: one line naming the file and the npm command

    def _predict(self, judge, faces: np.ndarray, opts: Context, remember: bool) -> dict:
        key = ("attributes", judge.name, hashlib.sha1(np.ascontiguousarray(faces).tobytes()).hexdigest())
        if key in opts.memo:
            return opts.memo[key]
        got = judge.predict(faces)
        if remember:  # the real faces are the same for every source: predicted once per evaluation
            opts.memo[key] = got
        return got

    def score(self, gs, opts: Context) -> SuiteResult:
        judge = load_attribute_judge(opts.device)
        real = self._predict(judge, gs.real, opts, remember=True)
        fake = self._predict(judge, gs.fake, opts, remember=False)
        groups = [str(f) for f in (gs.face_ids or gs.pair_ids)]
        keys = list(gs.pair_ids)
        n = len(keys)
        g_r, g_f = real["p_male"] >= 0.5, fake["p_male"] >= 0.5
        ci = dict(seed=opts.seed, n_resamples=opts.n_resamples)
        values, items = {}, {}

        def put(metric, per_item, extra, rate=True, binary=True):
            per_item = np.asarray(per_item, np.float64)
            values[metric] = (float(per_item.mean()), n, {**extra, "ci": ci_dict(per_item, groups, rate=rate, **ci)})
            items[metric] = ItemValues(keys=keys, values=per_item, groups=groups, binary=binary)

        share_f, share_r = g_f.mean(), g_r.mean()
        put(GENDER_AGREEMENT, g_f == g_r, {
            "chance": float(share_f * share_r + (1 - share_f) * (1 - share_r)), "share_male_fake": float(share_f),
            "share_male_real": float(share_r), "confusion": confusion(g_r, g_f, 2), "confusion_labels": ["f", "m"]})
        diff = np.abs(fake["age"] - real["age"])
        put(AGE_MAE, diff, {"mean_age_fake": float(fake["age"].mean()), "mean_age_real": float(real["age"].mean()),
                            "age_rule": "1 + sum(i * p_i) over 100 bins"}, rate=False, binary=False)
        r = correlation_ci(fake["age"], real["age"], groups, **ci)
        values[AGE_CORR] = (float("nan") if r is None else r["value"], n,
                            {"ci": r} if r else {"ci": None, "skipped": "an age side is constant: r undefined"})
        if "ethnicity_probs" in real:
            e_r, e_f = real["ethnicity_probs"].argmax(1), fake["ethnicity_probs"].argmax(1)
            put(ETHNICITY_AGREEMENT, e_f == e_r, {"confusion": confusion(e_r, e_f, len(ETHNICITIES)),
                                                  "confusion_labels": list(ETHNICITIES)})
        labels = labelled_genders(load_info(opts.data_dir))
        if labels is not None and all(name in labels[0] for name in gs.identities):
            truth = np.array([labels[0][name] == "m" for name in gs.identities])
            src = {"gender_source": "metadata", "labels_source": labels[1]}
            put(GENDER_ACC_FAKE, g_f == truth, {**src, "chance": float(max(truth.mean(), 1 - truth.mean())),
                                                "confusion": confusion(truth, g_f, 2), "confusion_labels": ["f", "m"]})
            put(GENDER_ACC_REAL, g_r == truth, {**src, "confusion": confusion(truth, g_r, 2),
                                                "confusion_labels": ["f", "m"]})
        else:
            why = "no gender labels for every test identity (prepare --identity-meta)"
            values[GENDER_ACC_FAKE] = (float("nan"), 0, {"skipped": why})
        config = {"judge": judge.name, "split": opts.split, "protocol": opts.protocol, "seed": opts.seed,
                  "image_size": gs.image_size, "threshold": 0.5, "testlist": opts.testlist_id}
        log.info("attributes %s: gender agreement %.3f, age MAE %.1f", gs.run, values[GENDER_AGREEMENT][0],
                 values[AGE_MAE][0])
        return SuiteResult(f"attributes/{judge.name}", judge.version(), config, values, items)


SUITE = AttributesSuite()
REGISTER_SUITES = (Entry("attributes", "SUITE", "gender/age/ethnicity agreement, gender accuracy", order=70),)
