"""The report's sample grid: the real face of each test speaker beside each model's face from that speech.

Faces come from what ``evaluate`` kept beside the results store, so drawing the grid needs no generator pass
(an older store falls back to one generator pass of a checkpoint still on disk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from w2p_eval.errors import InputError
from w2p_eval.models.generation import generate_split
from w2p_eval.report import figures as F
from w2p_eval.report import tables as T
from w2p_eval.results import sample_file

MAX_GRID_IDENTITIES = 10
MAX_GRID_CHECKPOINTS_PER_RUN = 4


def _pick_epochs(epochs: list) -> list:
    """At most MAX_GRID_CHECKPOINTS_PER_RUN epochs, evenly spread, first and last included."""
    if len(epochs) <= MAX_GRID_CHECKPOINTS_PER_RUN:
        return list(epochs)
    idx = sorted({round(i * (len(epochs) - 1) / (MAX_GRID_CHECKPOINTS_PER_RUN - 1))
                  for i in range(MAX_GRID_CHECKPOINTS_PER_RUN)})
    return [epochs[i] for i in idx]


def _sample_faces(store: Path, row, data_dir, protocol: str, seed: int):
    """(identities, real, fake, epoch) of one evaluated source: the faces ``evaluate`` kept beside the store, or
    for an older store a generator pass of the checkpoint when it is still on disk; None when neither exists."""
    path = sample_file(store, row["run"], str(row["checkpoint_hash"]))
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            epoch = int(z["epoch"])
            return [str(i) for i in z["identities"]], z["real"], z["fake"], None if epoch < 0 else epoch
    ckpt = Path(str(row["checkpoint"]))
    if data_dir is None or str(row.get("source") or "checkpoint") != "checkpoint" or not ckpt.is_file():
        return None

    gs = generate_split(ckpt, data_dir, split="test", protocol=protocol, seed=seed)
    first: dict[str, int] = {}
    for i, ident in enumerate(gs.identities):
        first.setdefault(ident, i)
    names = sorted(first)[:MAX_GRID_IDENTITIES]
    picks = [first[n] for n in names]
    return names, gs.real[picks], gs.fake[picks], gs.epoch


def sample_grid_figure(df: pd.DataFrame, store: Path, data_dir, fig_dir: Path, protocol: str = "seen",
                       seed: int = 0) -> tuple[Path | None, list[str]]:
    """Rows = test identities (first test pair of each), columns = the real face, then each run's evaluated
    checkpoints (up to four, spread over training) and each external model's faces. Faces come from what
    ``evaluate`` kept beside the store, so drawing the grid needs no generator pass."""
    columns: list[tuple[str, object]] = []
    notes: list[str] = []
    names: list[str] | None = None
    sources = df.drop_duplicates(["run", "checkpoint_hash"])
    for run in T.ordered_runs(df):
        sub = sources[sources["run"] == run].sort_values("epoch")
        keep = _pick_epochs(list(sub.index))
        for idx in keep:
            row = sub.loc[idx]
            try:
                got = _sample_faces(store, row, data_dir, protocol, seed)
            except InputError as exc:
                notes.append(f"{run}: {exc}")
                continue
            if got is None:
                notes.append(f"{run} (epoch {T.epoch_text(row['epoch'])}): no kept faces and no checkpoint on disk")
                continue
            ids, real, fake, epoch = got
            if names is None:
                names = ids
                columns.append(("real face", real))
            elif ids != names:
                notes.append(f"{run}: its sample faces are of other speakers ({ids[:3]}...)")
                continue
            label = f"{run}\nep {epoch}" if len(sub) > 1 and epoch is not None else run
            columns.append((label, fake))
    if names is None:
        return None, notes
    return F.sample_grid(columns, names, fig_dir, "samples"), notes
