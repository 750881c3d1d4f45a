"""`w2p-eval ablate-audio`: train and evaluate WAV2PIX per audio length; the paper's table shape
(audio length x identity accuracy / landmark detection rate), the paper's numbers beside ours."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from w2p_eval.data.folder import open_dataset
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import list_checkpoints
from w2p_eval.pipeline.configs import config_for
from w2p_eval.pipeline.evaluate import evaluate_runs
from w2p_eval.report import tables as T
from w2p_eval.report.build import build_report
from w2p_eval.report.recent import audio_length_table
from w2p_eval.report.runs import load_run, rows_of_runs
from w2p_eval.results import ResultsStore, default_store
from w2p_eval.train.run import load_config, run_training

log = logging.getLogger(__name__)


def run_name(seconds: float, image_size: int = 64) -> str:
    return f"wav2pix_{image_size}-audio{seconds:g}s"


def ablate_audio(
    data_dir: str | os.PathLike,
    seconds: list[float] = (0.3, 0.7, 1.0),
    *,
    out: str | os.PathLike = "runs/ablate_audio",
    config: dict | str | os.PathLike | None = None,
    epochs: int | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    device: str | None = None,
    store: str | os.PathLike | None = None,
    backbone: str = "dlib_resnet",
    backend: str = "dlib",
    protocol: str = "seen",
    workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    eval_batch_size: int = 64,
    report: bool = True,
    suites: tuple[str, ...] = ("identity", "landmarks"),
    weight_files: dict[str, str] | None = None,
) -> dict:
    """Train one WAV2PIX run per audio length into ``out/wav2pix_64-audio<S>s`` (continuing runs that are
    there), evaluate each run's final checkpoint with ``suites`` (identity and landmarks are always among them:
    the paper's table), write ``out/ablation_audio.{csv,md,tex}`` (the paper's shape), ``out/ablation_audio_
    metrics.{csv,md,tex}`` (audio length x every metric stored) and, with ``report``, the report ``out/report``.
    Returns {"table": DataFrame, "metrics_table": DataFrame, "runs": [...], "paths": [...]}.
    """
    data_dir = open_dataset(data_dir, cache_dir)  # read once for every training and evaluation below
    seconds = _check_seconds(data_dir, seconds)
    base = _wav2pix_config(config)
    store_path = Path(store) if store else default_store(data_dir)
    run_dirs = [_train_one(base, data_dir, Path(out), sec, overrides, epochs, seed, device) for sec in seconds]
    suites = tuple(dict.fromkeys(("identity", "landmarks", *suites)))
    evaluate_runs(run_dirs, data_dir, store=store_path, suites=suites, backbone=backbone,
                  backend=backend, protocol=protocol, seed=seed, final_only=True, device=device, workers=workers,
                  batch_size=eval_batch_size, cache_dir=cache_dir, weight_files=weight_files)
    table, every, paths = _write_table(run_dirs, store_path, Path(out), protocol, seed, backbone, backend)
    if report:
        paths.append(build_report(run_dirs, store_path, Path(out) / "report", data_dir=data_dir, seed=seed,
                                  title="w2p-eval: audio-length ablation"))
    return {"table": table, "metrics_table": every, "runs": run_dirs, "paths": paths}


def _check_seconds(data_dir, seconds) -> list[float]:
    """Positive lengths no longer than the data's shortest pair (InputError otherwise)."""
    seconds = [float(s) for s in seconds]
    if not seconds or any(s <= 0 for s in seconds):
        raise InputError(f"expected positive audio lengths in seconds, got {seconds}")
    shortest = float(data_dir.readable(data_dir.rows)["audio_duration"].min())
    if max(seconds) > shortest + 1e-3:
        raise InputError(f"expected audio lengths <= the data's shortest pair ({shortest:.2f} s), got {max(seconds)} s")
    return seconds


def _wav2pix_config(config) -> dict:
    base = load_config(config if config is not None else config_for("wav2pix_64"))
    if base.get("model") != "wav2pix":
        raise InputError(f"expected a wav2pix config for the audio ablation, got model {base.get('model')!r}")
    return base


def _train_one(base: dict, data_dir, out: Path, sec: float, overrides, epochs, seed, device) -> Path:
    """Train (or continue) the run of one audio length -> its folder."""
    ov = {**(overrides or {}), "audio_seconds": sec}
    if epochs is not None:
        ov["epochs"] = int(epochs)
    run_dir = out / run_name(sec, int(ov.get("image_size", base.get("image_size", 64))))
    log.info("ablation: training %s (%g s of audio)", run_dir, sec)
    run_training(base, data_dir, run_dir, overrides=ov, resume=run_dir.exists(), device=device, seed=seed)
    list_checkpoints(run_dir)  # an InputError when training wrote nothing
    return run_dir


def _write_table(run_dirs, store_path: Path, out: Path, protocol: str, seed: int, backbone: str, backend: str):
    """The paper's ablation table and the every-metric table from the store -> (table, every, written paths)."""
    runs = [load_run(r) for r in run_dirs]
    df = rows_of_runs(ResultsStore(store_path).query(protocol=protocol, seed=seed), runs)
    ev = df["evaluator"].astype(str)
    df = df[(ev == f"identity/{backbone}") | ~ev.str.startswith("identity/")]  # one identity judge per cell
    audio = {r.name: r.audio_seconds for r in runs}
    table = T.ablation_table(df[df["evaluator"].isin([f"identity/{backbone}", f"landmarks/{backend}"])], audio)
    paths = T.write_table(table, out, "ablation_audio", "Audio-length ablation of WAV2PIX; the paper's landmark "
                                                         "detection rates beside ours.")
    every = audio_length_table(df, audio)
    paths += T.write_table(every, out, "ablation_audio_metrics", f"Audio-length ablation of WAV2PIX: every metric "
                                                                 f"(identity judge {backbone}), 95 % CIs.")
    return table, every, paths
