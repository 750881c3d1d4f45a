"""Landmark metrics of checkpoints: the paper's 68-point detection rate (with a Wilson 95 % CI),
NME between generated and paired real faces, and the real faces' rate (the ceiling).

Rows follow the results contract (docs/architecture.md); ``extra`` is a dict.
"""

from __future__ import annotations

import logging
import functools
import math
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from w2p_eval.cache import Cache, array_problem
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.images import load_image_rgb
from w2p_eval.errors import InputError
from w2p_eval.judges.landmarks import (N_POINTS, LandmarkResult, draw_landmarks, get_backend, list_images,
                                       parse_backends, score_images)
from w2p_eval.judges.landmarks import require as require_backend
from w2p_eval.judges.landmarks_validation import nme
from w2p_eval.metrics.base import Context, ItemValues, MetricSpec, MetricSuite, SuiteResult, ci_dict
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.registry import Entry
from w2p_eval.utils import Skips, atomic_path, sha256_json

log = logging.getLogger(__name__)

DETECTION_RATE = "landmark_detection_rate"
DETECTION_RATE_REAL = "landmark_detection_rate_real"
NME = "landmark_nme"
CACHE_VERSION = 1
N_BOOTSTRAP = 1000


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95 % by default); (nan, nan) for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def detection_summary(results: Sequence[LandmarkResult]) -> dict:
    """Rate over readable images -> {"value", "n", "n_detected", "ci_low", "ci_high", "skipped", "misses"}."""
    readable = [r for r in results if not r.error]
    k, n = sum(r.detected for r in readable), len(readable)
    lo, hi = wilson_interval(k, n)
    misses: dict[str, int] = {}
    for r in readable:
        if not r.detected:
            misses[r.note] = misses.get(r.note, 0) + 1
    return {"value": k / n if n else float("nan"), "n": n, "n_detected": int(k), "ci_low": lo, "ci_high": hi,
            "skipped": len(results) - n, "misses": misses}


def points_array(results: Sequence[LandmarkResult]) -> np.ndarray:
    """float32 [N, 68, 2] (NaN rows for images not detected)."""
    if not results:
        return np.zeros((0, N_POINTS, 2), np.float32)
    return np.stack([r.points for r in results]).astype(np.float32)


def nme_summary(fake: Sequence[LandmarkResult], real: Sequence[LandmarkResult], seed: int = 0) -> dict:
    """NME of generated vs paired real landmarks where both are detected (outer-eye normalisation
    by the real face) -> {"value" (mean), "n", "median", "ci_low", "ci_high" (bootstrap 95 %)}."""
    if len(fake) != len(real):
        raise InputError(f"expected as many real as generated faces, got {len(real)} and {len(fake)}")
    errs = nme(points_array(fake), points_array(real)) if fake else np.zeros(0)
    errs = errs[np.isfinite(errs)]
    if errs.size == 0:
        return {"value": float("nan"), "n": 0, "median": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    rng = np.random.default_rng(seed)
    boots = errs[rng.integers(0, errs.size, (N_BOOTSTRAP, errs.size))].mean(axis=1)
    return {"value": float(errs.mean()), "n": int(errs.size), "median": float(np.median(errs)),
            "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975))}


# ---------------------------------------------------------------- real faces and their cache
def real_faces(data_dir, split: str = "test", protocol: str = "seen", image_size: int = 64):
    """The split's real faces through the generation pipeline -> (pair_ids, uint8 [N, S, S, 3]).

    Same operations as ``generate_split``'s real faces, so cached real-face landmarks match what a
    checkpoint's evaluation would compute.
    """
    df = split_rows(data_dir, split, protocol)
    return list(df["pair_id"]), real_faces_at(data_dir, list(df["image_path"]), image_size)


def _as_arrays(pair_ids: list[str], results: Sequence[LandmarkResult]) -> dict[str, np.ndarray]:
    return {"pair_ids": np.array(pair_ids, dtype=str), "detected": np.array([r.detected for r in results], bool),
            "points": points_array(results), "boxes": np.stack([r.box for r in results]).astype(np.float32),
            "scores": np.array([r.score for r in results], np.float64),
            "notes": np.array([r.note for r in results], dtype=str)}


CACHE_SPECS = {"pair_ids": ("U", ("N",), False), "detected": ("bool", ("N",), False),
               "points": ("float32", ("N", N_POINTS, 2), False), "boxes": ("float32", ("N", 4), False),
               "scores": ("float64", ("N",), False), "notes": ("U", ("N",), False)}


def cache_problem(z: dict) -> str | None:
    """Why stored real-face landmarks cannot be used (shapes and dtypes of :data:`CACHE_SPECS`; points finite
    exactly where a face was detected); None when they can."""
    problem = array_problem(z, CACHE_SPECS)
    if problem is None and not (np.isfinite(z["points"]).all(axis=(1, 2)) == z["detected"]).all():
        problem = "landmark points that are NaN for a detected face, or numbers for a face not detected"
    if problem is None and not np.isfinite(z["boxes"][z["detected"]]).all():
        problem = "NaN or infinite boxes of detected faces"
    return problem


def real_landmarks(data_dir, split="test", protocol="seen", image_size=64, backend="dlib", workers=1,
                   cache_dir=None, faces: tuple[list[str], np.ndarray] | None = None) -> tuple[list[str], list]:
    """Landmarks of the split's real faces at ``image_size``, cached on disk, keyed by (manifest hash,
    split, protocol, size, backend + its settings). ``faces`` = (pair_ids, uint8 [N,S,S,3]) skips reloading."""
    data_dir = open_dataset(data_dir, cache_dir)
    model = get_backend(backend)
    settings_hash = sha256_json({"version": model.version, **model.settings()}, 8)
    cache = Cache(cache_dir, "landmarks", CACHE_VERSION, fmt="npz")
    key = {"name": f"real-{data_dir.hash}-{split}-{protocol}-{int(image_size)}px-{backend}-{settings_hash}",
           "extractor": {"version": model.version, **model.settings()}}
    ids = list(data_dir.split(split, protocol)["pair_id"]) if faces is None else list(faces[0])
    z = cache.load(key, cache_problem)
    if z is not None:
        known = {str(pid): LandmarkResult(bool(d), p, b, float(s), str(t)) for pid, d, p, b, s, t in
                 zip(z["pair_ids"], z["detected"], z["points"], z["boxes"], z["scores"], z["notes"])}
        if all(p in known for p in ids):  # a source scoring a subset of pairs reuses a full cache
            log.info("real-face landmarks from cache %s", cache.path(key))
            return ids, [known[p] for p in ids]
    if faces is None:
        ids, imgs = real_faces(data_dir, split, protocol, image_size)
    else:
        imgs = faces[1]
    results = score_images(imgs, backend, workers=workers, progress=True)
    cache.save(key, _as_arrays(ids, results))
    return ids, results


# ---------------------------------------------------------------- overlays
def write_overlay(path, rows: Sequence[tuple[np.ndarray, LandmarkResult]], columns: int = 8, tile: int = 128) -> Path:
    """PNG grid of faces with their landmarks (green points; red frame = not detected)."""
    tiles = []
    for img, res in rows:  # letterbox each image into a tile x tile square
        s = tile / max(img.shape[:2])
        w, h = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
        small = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
        scaled = LandmarkResult(res.detected, (res.points + 0.5) * s - 0.5, res.box, res.score, res.note)
        canvas = np.zeros((tile, tile, 3), np.uint8)
        canvas[:h, :w] = draw_landmarks(small, scaled)
        tiles.append(canvas)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.concatenate([np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)], axis=0)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
            raise InputError(f"could not write overlay image {path}")
        os.chmod(tmp, 0o644)  # a figure for reports, readable like any other output file
    return path


def _pair_overlay(path, fake, real, fake_res, real_res, seed: int, n_pairs: int = 16) -> Path:
    """Rows alternate: generated faces, then their paired real faces (``n_pairs`` chosen by ``seed``)."""
    idx = np.sort(np.random.default_rng(seed).choice(len(fake), min(n_pairs, len(fake)), replace=False))
    rows = []
    for start in range(0, len(idx), 8):
        part = idx[start:start + 8]
        rows += [(fake[i], fake_res[i]) for i in part] + [(None, None)] * (8 - len(part))
        rows += [(real[i], real_res[i]) for i in part] + [(None, None)] * (8 - len(part))
    blank = np.zeros_like(fake[0])
    rows = [(blank, LandmarkResult.missing()) if img is None else (img, res) for img, res in rows]
    return write_overlay(path, rows)


# the per-image CSV's columns; its header line is how a later run knows the file is one it wrote
PER_IMAGE_COLUMNS = ("image", "detected", "note", "score", "left", "top", "right", "bottom",
                     *(f"x{k}" for k in range(N_POINTS)), *(f"y{k}" for k in range(N_POINTS)))
PER_IMAGE_HEADER = ",".join(PER_IMAGE_COLUMNS)


def write_per_image_csv(path, names: Sequence[str], results: Sequence[LandmarkResult]) -> Path:
    """One CSV row per image: name, detected, note, score, box, then x0..x67, y0..y67 (0-based px); the
    header line is exactly :data:`PER_IMAGE_HEADER`."""
    pts = points_array(results).reshape(len(results), -1)
    df = pd.DataFrame({
        "image": list(names), "detected": [r.detected for r in results], "note": [r.note for r in results],
        "score": [r.score for r in results],
        **{k: [float(r.box[i]) for r in results] for i, k in enumerate(("left", "top", "right", "bottom"))},
        **{f"x{k}": pts[:, 2 * k] for k in range(N_POINTS)}, **{f"y{k}": pts[:, 2 * k + 1] for k in range(N_POINTS)},
    })
    assert tuple(df.columns) == PER_IMAGE_COLUMNS
    path = Path(path)
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.3f")
    return path


# ---------------------------------------------------------------- rows
def _row(base: dict, metric: str, summary: dict, extra: dict) -> dict:
    keep = {k: v for k, v in summary.items() if k not in ("value", "n")}
    return {**base, "metric": metric, "value": float(summary["value"]), "n": int(summary["n"]),
            "extra": {**keep, **extra}}


def _values(summary: dict, extra: dict) -> tuple[float, int, dict]:
    return (float(summary["value"]), int(summary["n"]),
            {**{k: v for k, v in summary.items() if k not in ("value", "n")}, **extra})


class LandmarkJudged(MetricSuite):
    """A suite scored under each landmark judge of ``--backend dlib,facemesh`` (landmarks, geometry)."""

    def variants(self, opts: Context) -> list[Context]:
        """One scoring per landmark backend of ``opts.backend`` (``"dlib,facemesh"``: both judges)."""
        return [opts.for_backend(b) for b in parse_backends(opts.backend)]

    def check(self, opts: Context) -> None:
        get_backend(opts.backend)

    def requirements(self, opts: Context, items=()) -> list:
        return [(f"landmark backend {b}", functools.partial(require_backend, b)) for b in parse_backends(opts.backend)]


class LandmarkSuite(LandmarkJudged):
    """The paper's 68-point detection rate of generated faces, the same rate on the paired real faces (the
    ceiling; cached) and the landmark error (NME) between each generated face and its real face."""

    name = "landmarks"
    metrics = (
        MetricSpec(DETECTION_RATE, "landmark detection rate", True, "rate",
                   "The paper's landmark accuracy: share of generated faces on which the detector finds a face and "
                   "places all 68 landmarks."),
        MetricSpec(DETECTION_RATE_REAL, "landmark detection (real)", True, "rate",
                   "The same detection rate on the real test faces at the generator's resolution: the ceiling."),
        MetricSpec(NME, "landmark NME", False, "nme",
                   "Mean distance between landmarks of a generated face and of its paired real face, normalised "
                   "by the real face's outer-eye-corner distance, over pairs where both are detected."),
    )
    done_when = (DETECTION_RATE,)

    def evaluator(self, opts: Context) -> str:
        return f"landmarks/{opts.backend}"

    def score(self, gs, opts: Context) -> SuiteResult:
        backend = get_backend(opts.backend)
        log.info("landmarks of %d generated faces from %s (%s)", len(gs.fake), gs.ckpt_path, opts.backend)
        fake_res = fake_landmarks(gs, opts)
        _, real_res = real_landmarks(opts.data_dir, opts.split, opts.protocol, gs.image_size, opts.backend,
                                     opts.workers, opts.cache_dir, faces=(gs.pair_ids, gs.real))
        config = {"backend": opts.backend, **backend.settings(), "split": opts.split, "protocol": opts.protocol,
                  "image_size": gs.image_size}
        extra = {"image_size": gs.image_size, "backend_settings": backend.settings()}
        if opts.overlay_dir is not None:
            tag = f"epoch{gs.epoch:04d}" if gs.epoch is not None else gs.source
            name = f"{_slug(gs.run)}-{tag}-{opts.split}-{opts.protocol}-{opts.backend}.png"
            extra["overlay"] = str(_pair_overlay(Path(opts.overlay_dir) / name, gs.fake, gs.real, fake_res, real_res,
                                                 opts.seed))
        values = {
            DETECTION_RATE: _values(detection_summary(fake_res), extra),
            DETECTION_RATE_REAL: _values(detection_summary(real_res), extra),
            NME: _values(nme_summary(fake_res, real_res, opts.seed),
                         {**extra, "normalisation": "real outer-eye corners (37, 46)"}),
        }
        items = per_item_values(gs, fake_res, real_res)
        for metric, it in items.items():  # the one interval shape of every row (cluster bootstrap over face ids)
            v, n, ex = values[metric]
            values[metric] = (v, n, {**ex, "ci": ci_dict(it.values, it.groups, seed=opts.seed,
                                                          n_resamples=opts.n_resamples, rate=it.binary)})
        return SuiteResult(f"landmarks/{opts.backend}", backend.version, config, values, items)


def fake_landmarks(gs, opts: Context) -> list[LandmarkResult]:
    """Landmarks of ``gs.fake`` under ``opts.backend``, computed once per face set and backend for every suite
    that reads them (landmarks, geometry): the latest face set's results are kept in ``opts.memo``."""
    key = (id(gs.fake), gs.source_hash, gs.run, opts.backend)
    memo = opts.memo.setdefault("fake_landmarks", {})
    if key not in memo:
        for old in [k for k in memo if k[:3] != key[:3]]:  # another face set: forget it
            del memo[old]
        memo[key] = score_images(gs.fake, opts.backend, workers=opts.workers, progress=True)
    return memo[key]


def per_item_values(gs, fake_res: Sequence[LandmarkResult], real_res: Sequence[LandmarkResult]
                    ) -> dict[str, ItemValues]:
    """Per-pair values behind the rows: detected (0/1) on generated and on real faces over readable images,
    and the NME of pairs where both are detected; keys = pair ids, groups = face ids."""
    groups_all = [str(g) for g in (gs.face_ids or gs.pair_ids)]
    out = {}
    for metric, res in ((DETECTION_RATE, fake_res), (DETECTION_RATE_REAL, real_res)):
        ok = [i for i, r in enumerate(res) if not r.error]
        if ok:
            out[metric] = ItemValues(keys=[gs.pair_ids[i] for i in ok],
                                     values=np.array([float(res[i].detected) for i in ok]),
                                     groups=[groups_all[i] for i in ok], binary=True)
    if len(fake_res):
        errs = nme(points_array(fake_res), points_array(real_res))
        ok = np.flatnonzero(np.isfinite(errs))
        if ok.size:
            out[NME] = ItemValues(keys=[gs.pair_ids[i] for i in ok], values=errs[ok].astype(np.float64),
                                  groups=[groups_all[i] for i in ok])
    return out


SUITE = LandmarkSuite()
REGISTER_SUITES = (Entry("landmarks", "SUITE", "68-point landmark detection rate and NME", order=20),)
METRICS = tuple(m.name for m in SUITE.metrics)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def evaluate_real(data_dir, *, backend="dlib", split="test", protocol="seen", image_size=64, workers=1,
                  seed=0, overlay_dir=None, cache_dir=None) -> list[dict]:
    """Detection rate of the dataset's real faces at ``image_size`` (no checkpoint) -> one row."""
    data_dir = open_dataset(data_dir, cache_dir)  # a path from a Python caller is opened once, here
    model_be = get_backend(backend)
    ids, res = real_landmarks(data_dir, split, protocol, image_size, backend, workers, cache_dir)
    config = {"backend": backend, **model_be.settings(), "split": split, "protocol": protocol, "image_size": image_size}
    base = {
        "data_hash": data_dir.hash, "run": "real_faces", "model": "real_faces", "checkpoint": "",
        "checkpoint_hash": f"real-{image_size}px", "epoch": None, "split": split, "protocol": protocol,
        "seed": int(seed), "evaluator": f"landmarks/{backend}", "evaluator_version": model_be.version,
        "config_hash": sha256_json(config),
    }
    extra = {"image_size": int(image_size), "backend_settings": model_be.settings()}
    if overlay_dir is not None:
        _, imgs = real_faces(data_dir, split, protocol, image_size)
        pick = np.sort(np.random.default_rng(seed).choice(len(imgs), min(32, len(imgs)), replace=False))
        name = f"real-{image_size}px-{split}-{protocol}-{backend}.png"
        extra["overlay"] = str(write_overlay(Path(overlay_dir) / name, [(imgs[i], res[i]) for i in pick]))
    return [_row(base, DETECTION_RATE_REAL, detection_summary(res), extra)]


def evaluate_images(folder, *, backend="dlib", workers=1, seed=0, overlay_dir=None,
                    per_image_csv=None) -> tuple[list[dict], list]:
    """Detection rate of any folder of images (no dataset) -> ([row], per-image results).
    Unreadable files are counted skips (``extra["skipped"]``), not misses. ``per_image_csv``: also
    write every image's result (see :func:`write_per_image_csv`)."""
    files = list_images(folder)
    res = score_images(files, backend, workers=workers, progress=True)
    skips = Skips("images")
    for f, r in zip(files, res):
        if r.error:
            skips.add(f.name, "unreadable image")
    if len(skips):
        log.warning(skips.summary())
    if len(skips) == len(files):
        raise InputError(f"expected readable images in {folder}, got {len(files)} unreadable files")
    model_be = get_backend(backend)
    data_hash = sha256_json([(f.name, f.stat().st_size) for f in files])
    base = {
        "data_hash": data_hash, "run": "images", "model": "images", "checkpoint": str(folder),
        "checkpoint_hash": data_hash, "epoch": None, "split": "images", "protocol": "-", "seed": int(seed),
        "evaluator": f"landmarks/{backend}", "evaluator_version": model_be.version,
        "config_hash": sha256_json({"backend": backend, **model_be.settings()}),
    }
    extra = {"backend_settings": model_be.settings()}
    if per_image_csv is not None:
        extra["per_image_csv"] = str(write_per_image_csv(per_image_csv, [f.name for f in files], res))
    if overlay_dir is not None:
        rows = [(load_image_rgb(f), r) for f, r in zip(files, res) if not r.error][:32]
        extra["overlay"] = str(write_overlay(Path(overlay_dir) / f"images-{backend}.png", rows))
    return [_row(base, DETECTION_RATE, detection_summary(res), extra)], res
