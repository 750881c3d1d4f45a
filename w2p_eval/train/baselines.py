"""Fitting the baselines (mean_face, gender_oracle, random_real, speaker_retrieval, real_faces): one pass, one checkpoint.

``train(config, data_dir, out_dir, *, resume, device)`` follows the trainer contract of
models/registry.py and writes ``RUN/checkpoints/epoch_0000.pt`` (epoch 0: fitted, no gradient epochs),
``RUN/config.yaml`` (when the caller has not written it) and one line of fit statistics in
``RUN/losses.jsonl``.

Config keys used: model, seed, image_size, audio_seconds, protocol, and optionally
``pool_per_identity`` (random_real, default 100), ``medoid_candidates`` (speaker_retrieval, default 500
faces per identity), ``speaker_C`` (inverse L2 strength of the speaker head, default 1.0),
``speaker_weights`` (a VoiceEncoder state-dict file instead of resemblyzer's packaged one),
``cache_dir`` (embedding cache root; default $W2P_EVAL_CACHE or ~/.cache/w2p-eval) and ``gender_judge``
(gender_oracle: the attribute judge for identities without a gender label, default faceres; ``none`` =
labels only).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb, resize_rgb
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.judges.attributes import identity_genders
from w2p_eval.judges.voice import clip_embeddings, fit_linear_head
from w2p_eval.models.checkpoint import checkpoint_path, save_checkpoint
from w2p_eval.utils import Skips, atomic_path, atomic_write_text, select_device, topk_accuracy

log = logging.getLogger(__name__)

BASELINES = ("mean_face", "gender_oracle", "random_real", "speaker_retrieval", "real_faces")

# Every key a baseline config may hold (train/run.py:resolve_config refuses any other with a did-you-mean,
# as it does for WAV2PIX). EXTRA_KEYS are the generic training options `w2p-eval train` can set; a one-pass
# fit has no use for them, so they are accepted (no default) and a note says they are ignored.
DEFAULTS: dict = {
    "model": None, "seed": 0, "image_size": 64, "audio_seconds": 1.0, "protocol": "seen",
    "pool_per_identity": 100, "medoid_candidates": 500, "speaker_C": 1.0, "speaker_weights": None, "cache_dir": None,
    "gender_judge": "faceres",
}
EXTRA_KEYS = ("epochs", "batch_size", "checkpoint_every", "threads", "num_workers", "n_samples")
_IGNORED = EXTRA_KEYS


def check_config(cfg: dict) -> None:
    """The baseline trainer's rules beyond ``validate.check_config_values``: protocol, text paths; a note
    for generic training options that a one-pass fit ignores. One-line InputError; nothing written yet."""
    if cfg.get("protocol") not in ("seen", "unseen"):
        raise InputError(f"expected protocol seen or unseen, got {cfg.get('protocol')!r}")
    for key in ("speaker_weights", "cache_dir"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise InputError(f"expected a path (text) for {key}, got {cfg[key]!r}")
    ignored = [k for k in _IGNORED if cfg.get(k) is not None]
    if ignored:
        log.warning("%s is fitted in one pass: %s ignored", cfg.get("model"), ", ".join(ignored))


def load_faces(ds, image_size: int):
    """Every training pair's face of a PairDataset split, resized.

    Returns (faces uint8 [N, S, S, 3], labels int64 [N], first int64 [F] = the first row of each
    face_id (copies of one face count once for pools and medoids), skips). Unreadable images are
    skipped and counted; none readable raises InputError.
    """
    skips = Skips("training faces")
    faces, labels, face_ids = [], [], []
    for row in ds.df.itertuples():
        try:
            img = load_image_rgb(ds.data_dir / row.image_path)
        except InputError as exc:
            skips.add(row.image_path, str(exc).split(" (")[0])
            continue
        faces.append(resize_rgb(img, image_size))
        labels.append(ds.identities.index(row.identity))
        face_ids.append(row.face_id)
    if skips:
        log.warning(skips.summary())
    if not faces:
        raise InputError(f"expected readable training faces in {ds.data_dir}, got none ({skips.summary()})")
    _, first = np.unique(np.array(face_ids, dtype=object).astype(str), return_index=True)
    return np.stack(faces), np.array(labels, np.int64), np.sort(first).astype(np.int64), skips


def mean_face(faces: np.ndarray):
    """uint8 [N, S, S, 3] -> their per-pixel mean as float32 tensor [3, S, S] in [0, 1]."""
    mean = faces.astype(np.float64).mean(0) / 255.0
    return torch.from_numpy(mean.transpose(2, 0, 1).astype(np.float32))


def gender_means(faces: np.ndarray, labels: np.ndarray, identities: list[str], genders, log_to: dict):
    """The gender_oracle state: mean training face of the female, of the male and of all speakers
    (float32 [3, 3, S, S] in [0, 1]) and each identity's row (int64 [K]; 2 = unknown gender). A gender without
    training faces gets the mean of all faces (said in ``log_to``)."""
    rows = np.array([("f", "m").index(genders.of[n]) if n in genders.of else 2 for n in identities], np.int64)
    face_rows = rows[labels]
    means = [mean_face(faces)] * 3
    counts = {}
    for g, name in enumerate(("f", "m")):
        sel = face_rows == g
        counts[name] = int(sel.sum())
        if sel.any():
            means[g] = mean_face(faces[sel])
    log_to.update(gender_faces=counts, gender_source=genders.source,
                  identity_genders={n: genders.of.get(n) for n in identities})
    if not all(counts.values()):
        log.warning("gender_oracle: no training faces of gender %s; its mean face is the mean of all faces",
                    [k for k, v in counts.items() if not v])
    return {"means": torch.stack(means), "identity_gender": torch.from_numpy(rows)}


def face_pool(faces: np.ndarray, labels: np.ndarray, per_identity: int, seed: int):
    """At most ``per_identity`` faces of each identity, drawn with a seeded RNG -> (uint8 [N,S,S,3], int64 [N])."""
    rng = np.random.default_rng(seed)
    keep = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        keep.extend(sorted(rng.choice(idx, size=min(per_identity, len(idx)), replace=False).tolist()))
    keep = np.array(keep)
    return torch.from_numpy(faces[keep].copy()), torch.from_numpy(labels[keep].copy())


def medoid_index(faces: np.ndarray) -> int:
    """Row of uint8 [F, S, S, 3] with the smallest summed Euclidean pixel distance to all others."""
    x = torch.from_numpy(faces.reshape(len(faces), -1)).double() / 255.0
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0).sqrt()
    return int(d.sum(1).argmin())


def medoid_faces(faces: np.ndarray, labels: np.ndarray, n_identities: int, candidates: int, seed: int):
    """One medoid face per identity -> uint8 tensor [K, S, S, 3] (zeros where an identity has no face)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_identities,) + faces.shape[1:], np.uint8)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        if len(idx) > candidates:
            idx = np.sort(rng.choice(idx, size=candidates, replace=False))
        out[k] = faces[idx[medoid_index(faces[idx])]]
    return torch.from_numpy(out)


def fit_speaker_head(ds, config: dict, device: str) -> tuple[dict, dict]:
    """Speaker classifier on the training clips -> ({"weight", "bias"} tensors, fit statistics)."""
    t0 = time.time()
    emb = clip_embeddings(ds.data_dir, ds.df, ds.audio_seconds, cache_dir=config.get("cache_dir"),
                          weights_path=config.get("speaker_weights"), device=device)
    t_embed = time.time() - t0
    labels = ds.labels
    weight, bias = fit_linear_head(emb, labels, ds.n_identities, c=float(config.get("speaker_C", 1.0)),
                                   seed=int(config.get("seed", 0)))
    train_top1 = topk_accuracy(emb @ weight.T + bias, labels, 1)
    n_ids = len(np.unique(labels))
    log.info("speaker head: training top-1 %.3f on %d clips, %d identities (chance %.3f)",
             train_top1, len(labels), n_ids, 1 / n_ids)
    stats = {"train_speaker_top1": train_top1, "n_train_clips": int(len(labels)), "n_train_identities": n_ids,
             "chance": 1 / n_ids, "embed_seconds": round(t_embed, 2)}
    return {"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)}, stats


def _write_side_files(config: dict, out_dir: Path, stats: dict) -> None:
    if not (out_dir / "config.yaml").exists():
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=True))
    losses = out_dir / "losses.jsonl"
    old = losses.read_text() if losses.exists() else ""
    with atomic_path(losses) as tmp:
        tmp.write_text(old + json.dumps(stats, sort_keys=True) + "\n")


def train(config: dict, data_dir: str | Path, out_dir: str | Path, *, resume: bool = False,
          device: str | None = None) -> list[Path]:
    """Fit the baseline named by ``config["model"]`` on the training split; return [the checkpoint]."""
    model = config.get("model")
    if model not in BASELINES:
        raise InputError(f"expected model one of {list(BASELINES)} for the baseline trainer, got {model!r}")
    out_dir = Path(out_dir)
    path = checkpoint_path(out_dir, 0)
    if resume and path.is_file():
        log.info("%s already fitted: %s", model, path)
        return [path]
    device = select_device(device)
    seed = int(config.get("seed", 0))
    image_size = int(config.get("image_size", 64))
    audio_seconds = float(config.get("audio_seconds", 1.0))
    protocol = str(config.get("protocol", "seen"))
    config = {**config, "seed": seed, "image_size": image_size, "audio_seconds": audio_seconds, "protocol": protocol}
    t0 = time.time()
    ds = PairDataset(data_dir, split="train", protocol=protocol, image_size=image_size,
                     audio_seconds=audio_seconds, cache=False)
    if len(ds) == 0:
        raise InputError(f"expected training pairs ({protocol} protocol) in {data_dir}, found none")
    stats: dict = {"epoch": 0, "model": model, "n_train_pairs": len(ds)}
    state: dict = {}
    genders = None
    if model == "gender_oracle":  # before any face is read: no labels and no judge is one line
        judge = str(config.get("gender_judge", "faceres"))
        genders = identity_genders(data_dir, judge=None if judge == "none" else judge, device=device,
                                   cache_dir=config.get("cache_dir"))
    if model != "real_faces":
        faces, labels, first, skips = load_faces(ds, image_size)
        stats.update(n_train_faces=int(len(faces)), n_unique_faces=int(len(first)), skipped=dict(skips.counts))
        unique_faces, unique_labels = faces[first], labels[first]
        if model == "mean_face":
            state["mean_face"] = {"mean": mean_face(faces)}
        elif model == "gender_oracle":
            state["gender_oracle"] = gender_means(faces, labels, ds.identities, genders, stats)
        elif model == "random_real":
            pool, pool_labels = face_pool(unique_faces, unique_labels, int(config.get("pool_per_identity", 100)), seed)
            state["random_real"] = {"pool": pool, "pool_labels": pool_labels, "seed": seed}
            stats["pool_size"] = int(len(pool))
        else:
            head, fit = fit_speaker_head(ds, config, device)
            state["head"] = head
            state["speaker_retrieval"] = {"medoids": medoid_faces(
                unique_faces, unique_labels, ds.n_identities, int(config.get("medoid_candidates", 500)), seed)}
            stats.update(fit)
    stats["fit_seconds"] = round(time.time() - t0, 2)
    save_checkpoint(path, model=model, epoch=0, config=config, identities=ds.identities, image_size=image_size,
                    audio_seconds=audio_seconds, state=state, data_hash=manifest_hash(data_dir), extra=stats)
    _write_side_files(config, out_dir, stats)
    log.info("%s fitted in %.1f s -> %s", model, stats["fit_seconds"], path)
    return [path]
