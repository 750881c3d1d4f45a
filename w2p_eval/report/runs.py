"""What the report knows about a run folder: name, model, config, checkpoints, training losses."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    name: str
    path: Path
    model: str | None = None
    config: dict = field(default_factory=dict)
    checkpoints: list[Path] = field(default_factory=list)
    losses: list[dict] = field(default_factory=list)

    @property
    def audio_seconds(self) -> float | None:
        val = self.config.get("audio_seconds")
        return None if val is None else float(val)

    @property
    def image_size(self) -> int | None:
        val = self.config.get("image_size")
        return None if val is None else int(val)


def read_losses(path: Path) -> list[dict]:
    """RUN/losses.jsonl -> list of per-epoch dicts (unreadable lines are skipped and counted)."""
    if not path.is_file():
        return []
    recs, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            recs.append(rec)
    if bad:
        log.warning("skipped %d unreadable lines in %s", bad, path)
    return recs


def load_run(path: str | os.PathLike) -> RunInfo:
    """A run folder (RUN/config.yaml, RUN/checkpoints/epoch_NNNN.pt, RUN/losses.jsonl) or one checkpoint."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"expected a run folder or checkpoint file, got missing path {path}")
    run_dir = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    ckpts = list_checkpoints(path)
    config: dict = {}
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        try:
            config = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"expected YAML in {cfg_path}, got unreadable text ({exc})") from None
    if not isinstance(config, dict):
        raise InputError(f"expected a mapping in {cfg_path}, got {type(config).__name__}")
    if not config.get("model") or "audio_seconds" not in config or "image_size" not in config:
        ckpt = load_checkpoint(ckpts[-1])
        config = {**ckpt.get("config", {}), **config}
        config.setdefault("model", ckpt.get("model"))
        config.setdefault("audio_seconds", ckpt.get("audio_seconds"))
        config.setdefault("image_size", ckpt.get("image_size"))
    return RunInfo(
        name=run_dir.name if path.is_dir() else run_dir.name,
        path=run_dir, model=config.get("model"), config=config, checkpoints=ckpts,
        losses=read_losses(run_dir / "losses.jsonl"),
    )


def rows_of_runs(df, runs: list[RunInfo]):
    """Results rows that belong to ``runs``: checkpoint path inside a run folder, or the same run name.

    The ``run`` column is set to the run's name so every checkpoint of a folder groups together.
    """
    if not runs:
        return df
    keep = []
    resolved = [(r, str(r.path.resolve()) + os.sep) for r in runs]
    for _, row in df.iterrows():
        ck = str(Path(str(row["checkpoint"])).resolve())
        match = next((r for r, prefix in resolved if ck.startswith(prefix)), None)
        if match is None:
            match = next((r for r in runs if r.name == row["run"]), None)
        keep.append(None if match is None else match.name)
    out = df.assign(run=keep)
    return out[out["run"].notna()].reset_index(drop=True)
