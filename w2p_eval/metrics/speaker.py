"""Speech-only speaker identification: how much identity the audio carries at all.

The speaker classifier is the voice judge of :mod:`w2p_eval.judges.voice` (resemblyzer's pretrained
VoiceEncoder) plus the multinomial logistic-regression head that a ``speaker_retrieval`` checkpoint holds
(fitted on the training clips).
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.data.folder import open_dataset
from w2p_eval.judges.voice import EMBED_DIM, clip_embeddings
from w2p_eval.judges.voice import require as voice_require
from w2p_eval.metrics.base import (Context, MetricSpec, MetricSuite, ReportSection, SuiteResult, ci_dict,
                                  result_rows)
from w2p_eval.metrics.identity import topk_hits
from w2p_eval.metrics.plan import Plan, Runtime
from w2p_eval.models.generation import GeneratedSet, check_compatible
from w2p_eval.models.sources import checkpoint_items
from w2p_eval.registry import Entry
from w2p_eval.utils import select_device, topk_accuracy

log = logging.getLogger(__name__)

EVALUATOR = "speaker/resemblyzer+linear"
EVALUATOR_VERSION = "1"
METRIC_TOP1, METRIC_TOP5 = "speaker_id_top1", "speaker_id_top5"


def speaker_values(ckpt: dict, data_dir, *, split: str = "test", protocol: str = "seen", device: str | None = None,
                   cache_dir=None, seed: int = 0, n_resamples: int = 2000) -> dict[str, tuple[float, int, dict]]:
    """Top-1 / top-5 speaker-ID accuracy of a loaded ``speaker_retrieval`` checkpoint's classifier on ``split``
    -> {metric: (value, n, extra)}; ``extra`` holds per-identity top-1 accuracy, the chance level
    (1 / identities in the training split), the number of identities and ``ci``: the seeded 95 % cluster
    bootstrap interval (:func:`w2p_eval.metrics.base.ci_dict`; clips cut from one face's audio window resampled
    together, as every other suite groups pairs by face)."""
    where = ckpt.get("path", "the checkpoint")
    if ckpt["model"] != "speaker_retrieval":
        raise InputError(f"expected a speaker_retrieval checkpoint for speaker-ID accuracy, got model "
                         f"{ckpt['model']!r} ({where})")
    trained_on = ckpt.get("config", {}).get("protocol", "seen")
    if trained_on != protocol:
        raise InputError(f"checkpoint {where} was fitted on the {trained_on} protocol's training split, "
                         f"got protocol {protocol!r} (its test split may overlap that training data)")
    ds = PairDataset(data_dir, split=split, protocol=protocol, image_size=int(ckpt["image_size"]),
                     audio_seconds=float(ckpt["audio_seconds"]), cache=False)
    check_compatible(ckpt, ds)
    if len(ds) == 0:
        raise InputError(f"expected pairs in split {split!r} ({protocol} protocol) of {data_dir}, found none")
    head = ckpt["state"]["head"]
    w, b = head["weight"].float().numpy(), head["bias"].float().numpy()
    if w.shape[1] != EMBED_DIM:
        raise InputError(f"expected a {EMBED_DIM}-d speaker head in {where}, got {tuple(w.shape)}")
    emb = clip_embeddings(data_dir, ds.df, ds.audio_seconds, device=select_device(device), cache_dir=cache_dir,
                          weights_path=ckpt.get("config", {}).get("speaker_weights"))
    logits = emb @ w.T + b
    labels = ds.labels
    pred = logits.argmax(1)
    per_id = {name: float(np.mean(pred[labels == i] == i)) for i, name in enumerate(ds.identities) if (labels == i).any()}
    n_train_ids = int((b > -1e3).sum())
    groups = [str(f) for f in ds.df["face_id"]]
    out = {}
    for metric, k in ((METRIC_TOP1, 1), (METRIC_TOP5, 5)):
        hits = topk_hits(logits, labels, k)
        extra = {"per_identity_top1": per_id, "chance": min(k, n_train_ids) / max(n_train_ids, 1),
                 "k": k, "n_identities_train": n_train_ids, "n_identities_test": len(per_id),
                 "ci": ci_dict(hits, groups, seed=seed, n_resamples=n_resamples, rate=True)}
        out[metric] = (topk_accuracy(logits, labels, k), int(len(labels)), extra)
    return out


class SpeakerSuite(MetricSuite):
    """Speech-only speaker ID of a ``speaker_retrieval`` checkpoint: the ceiling of any identity signal a
    speech-to-face model can pass on (other sources are passed over). The classifier is deterministic; the
    seed draws the bootstrap interval only."""

    name = "speaker"
    metrics = (
        MetricSpec(METRIC_TOP1, "speaker ID top-1 (speech only)", True, "rate",
                   "Accuracy of the speaker classifier on the test speech alone: the ceiling of any identity "
                   "signal a speech-to-face model can pass on."),
        MetricSpec(METRIC_TOP5, "speaker ID top-5 (speech only)", True, "rate",
                   "Top-5 accuracy of the speech-only speaker classifier."),
    )

    def evaluator(self, opts: Context) -> str:
        return EVALUATOR

    def report_section(self) -> ReportSection:
        return ReportSection("speaker_id", "Speech-only speaker-ID ceiling",
                             "How well the speaker can be identified from the test speech alone; no face generator "
                             "can carry more identity than this.", (METRIC_TOP1, METRIC_TOP5))

    def applies(self, model: str, source: str) -> bool:
        return source == "checkpoint" and model == "speaker_retrieval"

    def requirements(self, opts: Context, items=()) -> list:
        """The voice-encoder weights each speaker-scored checkpoint names (``config.speaker_weights``; None = the
        packaged file), each once. A speaker_retrieval checkpoint is a small linear head, and the item keeps it
        loaded for its scoring anyway."""
        found = [(item.checkpoint().get("config") or {}).get("speaker_weights")
                 for item in items if self.applies(item.model, item.kind)] if items else [None]
        return [("speaker voice encoder" + (f" {w}" if w else ""), functools.partial(voice_require, w))
                for w in dict.fromkeys(found)]

    def score(self, gs, opts: Context) -> SuiteResult:
        if gs.checkpoint is None:
            raise InputError(f"expected a speaker_retrieval checkpoint for speaker-ID accuracy, got {gs.source} "
                             f"{gs.ckpt_path}")
        values = speaker_values(gs.checkpoint, opts.data_dir, split=opts.split, protocol=opts.protocol,
                                device=opts.device, cache_dir=opts.cache_dir, seed=opts.seed,
                                n_resamples=opts.n_resamples)
        return SuiteResult(EVALUATOR, EVALUATOR_VERSION, gs.checkpoint.get("config", {}), values)


SUITE = SpeakerSuite()
REGISTER_SUITES = (Entry("speaker", "SUITE", "speech-only speaker identification of speaker_retrieval", order=30),)


def evaluate_speaker_id(
    ckpt_path: str | os.PathLike, data_dir: str | os.PathLike, *, split: str = "test",
    protocol: str = "seen", seed: int = 0, device: str | None = None, cache_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Results rows (``speaker_id_top1``, ``speaker_id_top5``) of a ``speaker_retrieval`` checkpoint: a
    convenience over :func:`w2p_eval.metrics.base.result_rows` without generating faces."""
    opts = Context(Plan(open_dataset(data_dir, cache_dir), split=split, protocol=protocol, seed=seed),
                   Runtime(device=device, cache_dir=cache_dir))
    rows = []
    for item in checkpoint_items(ckpt_path):
        ckpt = item.checkpoint()
        values = speaker_values(ckpt, opts.data_dir, split=split, protocol=protocol, device=device, cache_dir=cache_dir,
                                seed=seed)
        gs = GeneratedSet(pair_ids=[], identities=[], labels=np.zeros(0, np.int64), identity_names=[],
                          fake=np.zeros((0, 1, 1, 3), np.uint8), real=np.zeros((0, 1, 1, 3), np.uint8),
                          ckpt_path=str(item.path), model=item.model, epoch=item.epoch,
                          image_size=int(ckpt["image_size"]), audio_seconds=float(ckpt["audio_seconds"]),
                          run=item.run, source=item.kind, source_hash=item.content_hash)
        rows += result_rows(gs, SuiteResult(EVALUATOR, EVALUATOR_VERSION, ckpt.get("config", {}), values), opts,
                            manifest_hash(opts.data_dir))
    return rows
