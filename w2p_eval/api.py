"""The Python entry point: score faces from your own training loop or notebook.

>>> import w2p_eval
>>> df = w2p_eval.evaluate_faces(faces, pair_ids, data="runs/data", metrics=("identity", "landmarks"))
>>> df.pivot_table(index="run", columns="metric", values="value")

``faces`` is a uint8 array [N, S, S, 3] RGB (or float [N, 3, S, S] in [0, 1], numpy or torch) with one face
per pair id, or a callable ``batch -> faces`` that is run over the split like one of our generators. The
faces go through exactly the judges, caches and rules of ``w2p-eval evaluate --images``; nothing is written
to a results store unless ``store`` is given.
"""

from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from w2p_eval.errors import InputError
from w2p_eval.evaluation import Evaluation, write_scored
from w2p_eval.metrics.registry import get_suite
from w2p_eval.models.sources import checkpoint_items, split_rows
from w2p_eval.models.sources_python import ArrayItem, CallableItem
from w2p_eval.validate import finite_number, integer


def test_pairs(data: str | os.PathLike, split: str = "test", protocol: str = "seen"):
    """The pairs your model should draw a face for: the manifest rows of ``split`` (pair_id, identity,
    audio_path, audio_start, audio_duration, ...; paths relative to ``data``). Faces are matched to pairs by
    pair id, so their order does not matter."""
    return split_rows(data, split, protocol)


def _python_item(faces, pair_ids, name: str, image_size, audio_seconds):
    """``faces`` (an array with its ``pair_ids``, or a callable) as the source item that scores them."""
    if callable(faces):
        if pair_ids is not None:
            raise InputError("expected pair_ids only with an array of faces, got them with a callable")
        return CallableItem(fn=faces, run=name, image_size=integer(image_size, "image_size", low=8),
                            audio_seconds=finite_number(audio_seconds, "audio_seconds", low=0, low_open=True))
    if pair_ids is None:
        raise InputError("expected pair_ids (one per face) with an array of faces, got none")
    return ArrayItem(array=faces, pair_ids=list(pair_ids), run=name)


def evaluate_faces(
    faces,
    pair_ids: Sequence[str] | None = None,
    *,
    data: str | os.PathLike,
    metrics: Sequence[str] = ("identity", "landmarks"),
    name: str = "python",
    split: str = "test",
    protocol: str = "seen",
    seed: int = 0,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    backbone: str | Sequence[str] = "dlib_resnet",
    backend: str = "dlib",
    image_size: int = 64,
    audio_seconds: float = 1.0,
    batch_size: int = 64,
    store: str | os.PathLike | None = None,
    weight_files: dict[str, str] | None = None,
):
    """Score generated faces on a prepared dataset's ``split`` -> pandas DataFrame, one row per metric.

    Args:
        faces: uint8 [N, S, S, 3] / float [N, 3, S, S] in [0, 1] faces, row i for ``pair_ids[i]``; or a
            callable ``fn(batch) -> faces [B, 3, S, S] in [0, 1]`` given each collated PairDataset batch
            (``audio`` float [B, 1, T] at 16 kHz, ``image``, ``label``, ``pair_id``, ``identity``).
        pair_ids: the pair id of each face (arrays only). Pairs of the split without a face are named in
            the log and counted in ``extra["n_pairs_missing"]``.
        data: the prepared dataset folder (``w2p-eval prepare``).
        metrics: metric suites (``identity``, ``landmarks``; see ``w2p_eval.metrics.registry.SUITES``).
        backbone: the identity judge, or several (``["dlib_resnet", "faceres"]`` or ``"dlib_resnet,faceres"``):
            the identity/retrieval/distances/matching suites then score the faces under each (one network
            forward per face and judge), their rows told apart by ``evaluator`` (``identity/<name>``).
        name: the run name of the rows. image_size / audio_seconds: for a callable, the face size fed to the
            pipeline and the speech length of each batch. store: a results store path to write the rows to.
        weight_files: ``{"inception": path, "vggface2": path}`` for the ``inception`` / ``vggface_score`` suites
            (docs/recent-metrics.md); without them those rows are stored without a value, saying which file.

    The columns are those of the results store (run, model="external", metric, value, n, evaluator, extra ...).
    """
    batch_size = integer(batch_size, "batch_size", low=1)  # issue 31: 0 / negative were a traceback
    item = _python_item(faces, pair_ids, name, image_size, audio_seconds)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    suites = [get_suite(m) for m in metrics]
    if not any(s.applies(item.model, item.kind) for s in suites):
        raise InputError(f"expected metric suites that score faces (identity, landmarks), got {list(metrics)}")
    ev = Evaluation.build(data, suites=[s.name for s in suites], split=split, protocol=protocol, seed=seed,
                          device=device, cache_dir=cache_dir, backbone=backbone, backend=backend,
                          batch_size=batch_size, weight_files=weight_files, sources=[item])
    scored = ev.score_all()
    if store is not None:
        write_scored(store, scored)
    return pd.DataFrame([s.row for s in scored])


def evaluate_checkpoints(ckpt_paths: Sequence[str | os.PathLike], data: str | os.PathLike, *,
                         metrics: str | Sequence[str] = ("identity",), run_name: str | None = None,
                         backbone_options: dict | None = None, **plan_and_runtime) -> list[dict]:
    """Score every checkpoint of ``ckpt_paths`` (files or run folders) with ``metrics`` -> result rows (no store).

    ``run_name`` overrides the run name (:func:`w2p_eval.models.sources.run_name_of`); ``backbone_options``
    are the primary judge's options; ``plan_and_runtime``: the keywords of :meth:`Evaluation.build` (backbone,
    backend, split, protocol, seed, device, workers, batch_size, cache_dir, overlay_dir ...).
    """
    if not ckpt_paths:
        raise InputError("expected at least one checkpoint file or run folder, got none")
    suites = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    items = [it for p in ckpt_paths for it in checkpoint_items(p, name=run_name)]
    if backbone_options:
        judge = plan_and_runtime.get("backbone", "dlib_resnet")
        plan_and_runtime["judge_options"] = {str(judge).split(",")[0]: backbone_options}
    ev = Evaluation.build(data, suites=suites, sources=items, **plan_and_runtime)
    return [s.row for s in ev.score_all()]


__all__ = ["evaluate_checkpoints", "evaluate_faces", "test_pairs"]
