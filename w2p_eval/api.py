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

from w2p_eval.errors import InputError
from w2p_eval.metrics.base import EvalOptions, score_items
from w2p_eval.metrics.registry import get_suite
from w2p_eval.models.sources import ArrayItem, CallableItem
from w2p_eval.validate import finite_number, integer


def test_pairs(data: str | os.PathLike, split: str = "test", protocol: str = "seen"):
    """The pairs your model should draw a face for: the manifest rows of ``split`` (pair_id, identity,
    audio_path, audio_start, audio_duration, ...; paths relative to ``data``). Faces are matched to pairs by
    pair id, so their order does not matter."""
    from w2p_eval.models.sources import split_rows

    return split_rows(data, split, protocol)


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
    import pandas as pd

    batch_size = integer(batch_size, "batch_size", low=1)  # issue 31: 0 / negative were a traceback
    if callable(faces):
        if pair_ids is not None:
            raise InputError("expected pair_ids only with an array of faces, got them with a callable")
        item = CallableItem(fn=faces, run=name, image_size=integer(image_size, "image_size", low=8),
                            audio_seconds=finite_number(audio_seconds, "audio_seconds", low=0, low_open=True))
    else:
        if pair_ids is None:
            raise InputError("expected pair_ids (one per face) with an array of faces, got none")
        item = ArrayItem(array=faces, pair_ids=list(pair_ids), run=name)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    suites = [get_suite(m) for m in metrics]
    if not any(s.applies(item.model, item.kind) for s in suites):
        raise InputError(f"expected metric suites that score faces (identity, landmarks), got {list(metrics)}")
    opts = EvalOptions(data, split=split, protocol=protocol, seed=seed, device=device, cache_dir=cache_dir,
                       backbone=backbone, backend=backend, batch_size=batch_size, weight_files=dict(weight_files or {}))
    rows = score_items([item], suites, opts)
    if store is not None:
        from w2p_eval.results import ResultsStore

        ResultsStore(store).write(rows)
    return pd.DataFrame(rows)


__all__ = ["evaluate_faces", "test_pairs"]
