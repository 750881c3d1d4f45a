"""Speech-only speaker identification: how much identity the audio carries at all.

The speaker classifier is the voice judge of :mod:`w2p_eval.judges.voice` (resemblyzer's pretrained
VoiceEncoder) plus the multinomial logistic-regression head that a ``speaker_retrieval`` checkpoint holds
(fitted on the training clips).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from w2p_eval.errors import InputError
from w2p_eval.judges.voice import EMBED_DIM, clip_embeddings
from w2p_eval.utils import topk_accuracy

log = logging.getLogger(__name__)

EVALUATOR = "speaker/resemblyzer+linear"
EVALUATOR_VERSION = "1"
METRIC_TOP1, METRIC_TOP5 = "speaker_id_top1", "speaker_id_top5"


def evaluate_speaker_id(
    ckpt_path: str | os.PathLike, data_dir: str | os.PathLike, *, split: str = "test",
    protocol: str = "seen", seed: int = 0, device: str | None = None, cache_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Top-1 / top-5 speaker-ID accuracy of a ``speaker_retrieval`` checkpoint's classifier on ``split``.

    Returns two results rows (metrics ``speaker_id_top1`` and ``speaker_id_top5``); ``extra`` holds
    per-identity top-1 accuracy, the chance level (1 / identities in the training split) and the
    number of identities. The classifier is deterministic, so ``seed`` is recorded only.
    """
    from w2p_eval.data.dataset import PairDataset
    from w2p_eval.data.manifest import manifest_hash
    from w2p_eval.models.checkpoint import checkpoint_hash, load_checkpoint
    from w2p_eval.models.generation import check_compatible
    from w2p_eval.utils import select_device, sha256_json

    ckpt = load_checkpoint(ckpt_path)
    if ckpt["model"] != "speaker_retrieval":
        raise InputError(f"expected a speaker_retrieval checkpoint for speaker-ID accuracy, got model "
                         f"{ckpt['model']!r} ({ckpt_path})")
    trained_on = ckpt.get("config", {}).get("protocol", "seen")
    if trained_on != protocol:
        raise InputError(f"checkpoint {ckpt_path} was fitted on the {trained_on} protocol's training split, "
                         f"got protocol {protocol!r} (its test split may overlap that training data)")
    ds = PairDataset(data_dir, split=split, protocol=protocol, image_size=int(ckpt["image_size"]),
                     audio_seconds=float(ckpt["audio_seconds"]), cache=False)
    check_compatible(ckpt, ds)
    if len(ds) == 0:
        raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
    head = ckpt["state"]["head"]
    w, b = head["weight"].float().numpy(), head["bias"].float().numpy()
    if w.shape[1] != EMBED_DIM:
        raise InputError(f"expected a {EMBED_DIM}-d speaker head in {ckpt_path}, got {tuple(w.shape)}")
    emb = clip_embeddings(data_dir, ds.df, ds.audio_seconds, device=select_device(device), cache_dir=cache_dir,
                          weights_path=ckpt.get("config", {}).get("speaker_weights"))
    logits = emb @ w.T + b
    labels = ds.labels
    pred = logits.argmax(1)
    per_id = {name: float(np.mean(pred[labels == i] == i)) for i, name in enumerate(ds.identities) if (labels == i).any()}
    n_train_ids = int((b > -1e3).sum())
    path = Path(ckpt_path)
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
    base = dict(
        data_hash=manifest_hash(data_dir), run=run, model=ckpt["model"], checkpoint=str(path),
        checkpoint_hash=checkpoint_hash(path), epoch=int(ckpt["epoch"]), split=split, protocol=protocol,
        seed=int(seed), n=int(len(labels)), evaluator=EVALUATOR, evaluator_version=EVALUATOR_VERSION,
        config_hash=sha256_json(ckpt.get("config", {})),
    )
    rows = []
    for metric, k in ((METRIC_TOP1, 1), (METRIC_TOP5, 5)):
        extra = {"per_identity_top1": per_id, "chance": min(k, n_train_ids) / max(n_train_ids, 1),
                 "k": k, "n_identities_train": n_train_ids, "n_identities_test": len(per_id)}
        rows.append({**base, "metric": metric, "value": topk_accuracy(logits, labels, k), "extra": extra})
    return rows
