"""Face geometry: craniofacial ratios from 68 landmarks (Speech2Face's measures, Cross-Modal Perceptionist's ratio
error), under each landmark judge.

Each detected face gives :data:`RATIOS` - widths and heights between iBUG points divided by the outer inter-ocular
distance (points 37 and 46, 1-based). ``geometry_ratio_error`` of a generated face = the mean over ratios of
|r_gen - m_id| / m_id, where m_id is the mean ratio vector of its own speaker's real faces in the evaluated split
(the identity mean); the row is the mean over generated faces whose face and speaker mean exist, with a cluster
bootstrap interval over face ids. ``geometry_ratio_error_real`` scores each real face the same way against the mean
of its speaker's *other* real faces (leave one out): the within-speaker spread, what a generator that reproduced
the speaker's face shape would reach. A generator that draws one face for everyone scores worse whenever the
speakers' shapes differ (the known-answer tests).

Landmarks come from the landmark judges (``--backend dlib,facemesh``: one set of rows per judge, evaluator
``geometry/<backend>``); the real faces' landmarks from the landmark suite's disk cache
(:func:`w2p_eval.metrics.landmarks.real_landmarks`). FaceMesh's jaw line differs in meaning from iBUG's, so its
jaw-based ratios are its own: compare a judge's numbers with the same judge's.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from w2p_eval.judges.landmarks import get_backend, parse_backends, score_images
from w2p_eval.judges.landmarks_validation import outer_eye_distance
from w2p_eval.metrics.base import EvalOptions, ItemValues, MetricSpec, MetricSuite, SuiteResult, ci_dict
from w2p_eval.metrics.landmarks import points_array, real_landmarks

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


def ratio_errors(ratios: np.ndarray, labels: np.ndarray, means: dict[int, np.ndarray]) -> np.ndarray:
    """float64 [N]: mean_k |r_k - m_k| / m_k of each face against its identity's mean (NaN without either)."""
    out = np.full(len(ratios), np.nan)
    for i, (r, lab) in enumerate(zip(ratios, labels)):
        m = means.get(int(lab))
        if m is not None and np.isfinite(r).all() and (m > 0).all():
            out[i] = float(np.mean(np.abs(r - m) / m))
    return out


def leave_one_out_errors(ratios: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float64 [N]: each face against the mean of its identity's *other* faces (NaN when it has none)."""
    out = np.full(len(ratios), np.nan)
    ok = np.isfinite(ratios).all(1)
    for lab in np.unique(labels):
        idx = np.flatnonzero((labels == lab) & ok)
        if len(idx) < 2:
            continue
        total = ratios[idx].sum(0)
        for i in idx:
            m = (total - ratios[i]) / (len(idx) - 1)
            if (m > 0).all():
                out[i] = float(np.mean(np.abs(ratios[i] - m) / m))
    return out


class GeometrySuite(MetricSuite):
    """Craniofacial ratio error of generated faces against their speaker's real faces, and the real faces'
    within-speaker spread, once per landmark judge."""

    name = "geometry"
    metrics = (
        MetricSpec(RATIO_ERROR, "face geometry ratio error", False, "distance",
                   "Mean absolute relative error of 9 face width/height ratios (normalised by the outer inter-ocular "
                   "distance) of each generated face against its own speaker's mean over the real faces "
                   "(Speech2Face's craniofacial measures, CMP's ratio error); 0 = the speaker's face shape."),
        MetricSpec(RATIO_ERROR_REAL, "face geometry ratio error (real)", False, "distance",
                   "The same error of each real face against its speaker's other real faces: the within-speaker "
                   "spread, the floor a generator can reach."),
    )
    done_when = (RATIO_ERROR,)

    def evaluator(self, opts: EvalOptions) -> str:
        return f"geometry/{opts.backend}"

    def variants(self, opts: EvalOptions) -> list[EvalOptions]:
        return [replace(opts, backend=b) for b in parse_backends(opts.backend)]

    def check(self, opts: EvalOptions) -> None:
        get_backend(opts.backend)

    def score(self, gs, opts: EvalOptions) -> SuiteResult:
        backend = get_backend(opts.backend)
        fake_res = score_images(gs.fake, opts.backend, workers=opts.workers, progress=True)
        _, real_res = real_landmarks(opts.data_dir, opts.split, opts.protocol, gs.image_size, opts.backend,
                                     opts.workers, opts.cache_dir, faces=(gs.pair_ids, gs.real))
        labels = np.asarray(gs.labels)
        real = face_ratios(points_array(real_res))
        fake = face_ratios(points_array(fake_res))
        errors = {RATIO_ERROR: ratio_errors(fake, labels, identity_means(real, labels)),
                  RATIO_ERROR_REAL: leave_one_out_errors(real, labels)}
        groups = [str(g) for g in (gs.face_ids or gs.pair_ids)]
        extra = {"ratios": {k: list(v) for k, v in RATIOS.items()}, "normalisation": "outer eye corners (37, 46)",
                 "image_size": gs.image_size, "backend_settings": backend.settings()}
        values, items = {}, {}
        for metric, err in errors.items():
            ok = np.flatnonzero(np.isfinite(err))
            items[metric] = ItemValues(keys=[gs.pair_ids[i] for i in ok], values=err[ok],
                                       groups=[groups[i] for i in ok])
            ci = ci_dict(err[ok], items[metric].groups, seed=opts.seed, n_resamples=opts.n_resamples, rate=False)
            values[metric] = (float(err[ok].mean()) if ok.size else float("nan"), int(ok.size),
                              {**extra, "ci": ci, "n_faces": len(err)})
        config = {"backend": opts.backend, **backend.settings(), "split": opts.split, "protocol": opts.protocol,
                  "image_size": gs.image_size, "ratios": sorted(RATIOS)}
        return SuiteResult(f"geometry/{opts.backend}", backend.version, config, values, items)


SUITE = GeometrySuite()
