"""Face geometry: craniofacial ratios from 68 landmarks (Speech2Face's measures, Cross-Modal Perceptionist's ratio
error), under each landmark judge.

Each detected face gives :data:`RATIOS` - widths and heights between iBUG points divided by the outer inter-ocular
distance (points 37 and 46, 1-based). Per speaker, the identity means: g_s over the speaker's generated faces, m_s
over its real faces in the evaluated split. ``geometry_ratio_error`` = the mean over speakers of
mean_k |g_s,k - m_s,k| / m_s,k (the mean absolute relative error of the speaker's face shape), with a bootstrap
interval over speakers. ``geometry_ratio_error_real`` compares the two halves of each speaker's real faces (every
other face, in split order) the same way: the sampling spread of a speaker's mean shape, the floor a generator
that reproduced the speaker's faces would reach (the real faces themselves as "generated" score 0). A generator
that draws one face for everyone scores worse whenever the speakers' shapes differ (the known-answer tests).
Single faces are not compared: a face's ratios move with pose and expression more than speakers' means differ.

Landmarks come from the landmark judges (``--backend dlib,facemesh``: one set of rows per judge, evaluator
``geometry/<backend>``); the real faces' landmarks from the landmark suite's disk cache
(:func:`w2p_eval.metrics.landmarks.real_landmarks`). FaceMesh's jaw line differs in meaning from iBUG's, so its
jaw-based ratios are its own: compare a judge's numbers with the same judge's.
"""

from __future__ import annotations

import logging
import numpy as np

from w2p_eval.judges.landmarks import get_backend
from w2p_eval.judges.landmarks_validation import outer_eye_distance
from w2p_eval.metrics.base import ItemValues, MetricSpec, SuiteResult, ci_dict
from w2p_eval.metrics.landmarks import LandmarkJudged, fake_landmarks, points_array, real_landmarks
from w2p_eval.metrics.plan import Context
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

RATIO_ERROR = "geometry_ratio_error"
RATIO_ERROR_REAL = "geometry_ratio_error_real"
# name -> (iBUG point a, point b) (0-based): each ratio is |p_a - p_b| / outer inter-ocular distance
RATIOS: dict[str, tuple[int, int]] = {
    "face_width": (0, 16),  # bizygomatic-ish width at the top of the jaw line
    "jaw_width": (4, 12),  # lower face width
    "face_height": (27, 8),  # nasion to chin
    "lower_face_height": (33, 8),  # subnasale to chin
    "nose_length": (27, 33),
    "nose_width": (31, 35),
    "mouth_width": (48, 54),
    "inner_eye_distance": (39, 42),
    "mouth_to_chin": (57, 8),
}


def face_ratios(points: np.ndarray) -> np.ndarray:
    """float [N, 68, 2] landmarks -> float64 [N, len(RATIOS)] ratios (NaN rows where a face is not detected or
    its eye distance is 0)."""
    points = np.asarray(points, np.float64)
    eye = outer_eye_distance(points)
    dist = np.stack([np.linalg.norm(points[..., a, :] - points[..., b, :], axis=-1) for a, b in RATIOS.values()], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((eye > 0)[..., None], dist / np.where(eye > 0, eye, 1.0)[..., None], np.nan)


def identity_means(ratios: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """{label: mean ratio vector over that identity's faces with finite ratios}."""
    out = {}
    for lab in np.unique(labels):
        rows = ratios[(labels == lab) & np.isfinite(ratios).all(1)]
        if len(rows):
            out[int(lab)] = rows.mean(0)
    return out


def relative_error(g: np.ndarray, m: np.ndarray) -> float:
    """mean_k |g_k - m_k| / m_k (NaN unless every m_k > 0)."""
    return float(np.mean(np.abs(g - m) / m)) if (m > 0).all() else float("nan")


def speaker_errors(fake: np.ndarray, real: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """{label: relative error of the speaker's generated mean shape vs its real mean shape} for speakers with both."""
    g, m = identity_means(fake, labels), identity_means(real, labels)
    return {lab: relative_error(g[lab], m[lab]) for lab in sorted(set(g) & set(m))}


def split_half_errors(real: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """{label: relative error between the mean shapes of the two halves of the speaker's real faces (faces 0, 2,
    4, ... vs 1, 3, 5, ... among those with finite ratios)} for speakers with at least two such faces."""
    out = {}
    ok = np.isfinite(real).all(1)
    for lab in np.unique(labels):
        idx = np.flatnonzero((labels == lab) & ok)
        if len(idx) >= 2:
            out[int(lab)] = relative_error(real[idx[0::2]].mean(0), real[idx[1::2]].mean(0))
    return out


class GeometrySuite(LandmarkJudged):
    """Craniofacial ratio error of generated faces against their speaker's real faces, and the real faces'
    within-speaker spread, once per landmark judge."""

    name = "geometry"
    metrics = (
        MetricSpec(RATIO_ERROR, "face geometry ratio error", False, "distance",
                   "Mean absolute relative error of 9 face width/height ratios (normalised by the outer inter-ocular "
                   "distance), averaged over each speaker's generated faces, against the same average over the "
                   "speaker's real faces (Speech2Face's craniofacial measures, CMP's ratio error); mean over speakers; "
                   "0 = the speakers' face shapes."),
        MetricSpec(RATIO_ERROR_REAL, "face geometry ratio error (real)", False, "distance",
                   "The same error between the two halves of each speaker's real faces: how much a speaker's mean "
                   "shape moves with the faces sampled, the floor a generator can reach."),
    )
    done_when = (RATIO_ERROR,)

    def evaluator(self, opts: Context) -> str:
        return f"geometry/{opts.backend}"

    def score(self, gs, opts: Context) -> SuiteResult:
        backend = get_backend(opts.backend)
        fake_res = fake_landmarks(gs, opts)  # computed once with the landmark suite's
        _, real_res = real_landmarks(opts.data_dir, opts.split, opts.protocol, gs.image_size, opts.backend,
                                     opts.workers, opts.cache_dir, faces=(gs.pair_ids, gs.real))
        labels = np.asarray(gs.labels)
        real = face_ratios(points_array(real_res))
        fake = face_ratios(points_array(fake_res))
        errors = {RATIO_ERROR: speaker_errors(fake, real, labels), RATIO_ERROR_REAL: split_half_errors(real, labels)}
        extra = {"ratios": {k: list(v) for k, v in RATIOS.items()}, "normalisation": "outer eye corners (37, 46)",
                 "image_size": gs.image_size, "backend_settings": backend.settings(), "unit": "speakers",
                 "n_faces_detected": int(np.isfinite(fake).all(1).sum())}
        values, items = {}, {}
        for metric, per in errors.items():
            per = {lab: e for lab, e in per.items() if np.isfinite(e)}
            names = [gs.identity_names[lab] for lab in per]
            err = np.array(list(per.values()), np.float64)
            items[metric] = ItemValues(keys=names, values=err, groups=names)
            ci = ci_dict(err, names, seed=opts.seed, n_resamples=opts.n_resamples, rate=False)
            values[metric] = (float(err.mean()) if err.size else float("nan"), int(err.size), {**extra, "ci": ci})
        config = {"backend": opts.backend, **backend.settings(), "split": opts.split, "protocol": opts.protocol,
                  "image_size": gs.image_size, "ratios": sorted(RATIOS)}
        return SuiteResult(f"geometry/{opts.backend}", backend.version, config, values, items)


SUITE = GeometrySuite()
REGISTER_SUITES = (Entry("geometry", "SUITE", "face-geometry ratio error under each landmark judge", order=150),)
