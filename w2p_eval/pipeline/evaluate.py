"""`w2p-eval evaluate`: every metric for every checkpoint of the given runs (and baselines), into the store.

What the store already holds for (data, checkpoint, split, protocol, seed, judge) is skipped unless
``force``; rows are written after each run and judge, so an interrupted evaluation keeps its progress.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from w2p_eval.errors import InputError

log = logging.getLogger(__name__)

SUITES = ("identity", "landmarks", "speaker")
# suite -> metrics that must all be in the store for the suite to count as done
DONE_WHEN = {
    "identity": ("identity_top1_fake", "identity_top1_real"),
    "landmarks": ("landmark_detection_rate",),
    "speaker": ("speaker_id_top1", "speaker_id_top5"),
}


@dataclass
class EvalSummary:
    rows_written: int = 0
    evaluated: list[str] = field(default_factory=list)  # "run/epoch_NNNN.pt suite"
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"evaluated {len(self.evaluated)} (checkpoint, judge) pairs, {self.rows_written} rows written; "
                f"skipped {len(self.skipped)} already in the store; {len(self.failed)} failed")


def check_judges(suites, backbone: str, backend: str) -> None:
    """Refuse an empty suite list or an unknown judge before any checkpoint is touched."""
    from w2p_eval.judges import IDENTITY_BACKBONES
    from w2p_eval.judges.landmarks import BACKENDS
    from w2p_eval.validate import check_choice

    if not suites:
        raise InputError(f"expected at least one metric suite among {list(SUITES)}, got none")
    if "identity" in suites:
        check_choice(backbone, IDENTITY_BACKBONES, "--backbone")
    if "landmarks" in suites:
        check_choice(backend, BACKENDS, "--backend")


def evaluator_name(suite: str, backbone: str, backend: str) -> str:
    if suite == "identity":
        return f"identity/{backbone}"
    if suite == "landmarks":
        return f"landmarks/{backend}"
    from w2p_eval.metrics.speaker import EVALUATOR

    return EVALUATOR


def _checkpoints(item, final_only: bool) -> tuple[str, list[Path]]:
    from w2p_eval.models.checkpoint import list_checkpoints

    path = Path(item)
    ckpts = list_checkpoints(path)
    if final_only:
        ckpts = ckpts[-1:]
    run_dir = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    return run_dir.name, ckpts


def _model_of(ckpt: Path) -> str:
    from w2p_eval.models.checkpoint import load_checkpoint

    return str(load_checkpoint(ckpt)["model"])


def _run_suite(suite: str, pending: list[Path], run: str, data_dir: Path, opts: dict) -> list[dict]:
    if suite == "identity":
        from w2p_eval.metrics.identity import evaluate_identity

        return evaluate_identity(pending, data_dir, backbone=opts["backbone"], split=opts["split"],
                                 protocol=opts["protocol"], seed=opts["seed"], device=opts["device"],
                                 cache_dir=opts["cache_dir"], run_name=run)
    if suite == "landmarks":
        from w2p_eval.metrics.landmarks import evaluate_landmarks

        overlay_dir = opts["overlay_root"] / run if opts["overlay_root"] else None
        return evaluate_landmarks(pending, data_dir, backend=opts["backend"], split=opts["split"],
                                  protocol=opts["protocol"], workers=opts["workers"], seed=opts["seed"],
                                  overlay_dir=overlay_dir, cache_dir=opts["cache_dir"], run_name=run,
                                  device=opts["device"])
    from w2p_eval.metrics.speaker import evaluate_speaker_id

    rows = []
    for ck in pending:
        for row in evaluate_speaker_id(ck, data_dir, split=opts["split"], protocol=opts["protocol"],
                                       seed=opts["seed"], device=opts["device"]):
            rows.append({**row, "run": run})
    return rows


def evaluate_runs(
    run_dirs: list[str | os.PathLike],
    data_dir: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    baselines: list[str | os.PathLike] = (),
    suites: tuple[str, ...] = ("identity", "landmarks", "speaker"),
    backbone: str = "dlib_resnet",
    backend: str = "dlib",
    split: str = "test",
    protocol: str = "seen",
    seed: int = 0,
    force: bool = False,
    final_only: bool = False,
    device: str | None = None,
    workers: int = 1,
    cache_dir: str | os.PathLike | None = None,
    overlay_root: str | os.PathLike | None = None,
) -> EvalSummary:
    """Evaluate every checkpoint of ``run_dirs`` and ``baselines`` (run folders or checkpoint files).

    Suites: ``identity`` (identity accuracy + embedding metrics), ``landmarks`` (detection rate, NME)
    and ``speaker`` (speech-only speaker ID; only for speaker_retrieval checkpoints). Landmark overlays go to
    ``overlay_root/RUN`` (default: beside the store, ``overlays/``). A checkpoint that fails with an
    InputError is counted in ``failed`` and the rest go on.
    """
    from tqdm import tqdm

    from w2p_eval.data.manifest import manifest_hash
    from w2p_eval.models.checkpoint import checkpoint_hash
    from w2p_eval.results import ResultsStore, default_store

    data_dir = Path(data_dir)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise InputError(f"expected metric suites among {list(SUITES)}, got {unknown}")
    check_judges(suites, backbone, backend)
    items = list(run_dirs) + list(baselines)
    if not items:
        raise InputError("expected at least one RUN_DIR or --baselines run folder, got none")
    data_hash = manifest_hash(data_dir)
    store_path = Path(store) if store else default_store(data_dir)
    results = ResultsStore(store_path)
    opts = dict(backbone=backbone, backend=backend, split=split, protocol=protocol, seed=int(seed), device=device,
                workers=int(workers), cache_dir=cache_dir,
                overlay_root=Path(overlay_root) if overlay_root else store_path.parent / "overlays")
    plan = [_checkpoints(item, final_only) for item in items]
    names = [run for run, _ in plan]
    if len(set(names)) != len(names):
        raise InputError(f"expected runs with distinct folder names, got {names}")
    summary = EvalSummary()
    total = sum(len(ck) for _, ck in plan) * len(suites)
    bar = tqdm(total=total, desc="evaluate", unit="ckpt-judge", dynamic_ncols=True)
    for run, ckpts in plan:
        models = {ck: _model_of(ck) for ck in ckpts}
        for suite in suites:
            evaluator = evaluator_name(suite, backbone, backend)
            pending = []
            for ck in ckpts:
                tag = f"{run}/{ck.name} {suite}"
                if suite == "speaker" and models[ck] != "speaker_retrieval":
                    bar.update(1)
                    continue
                if not force and results.has(data_hash=data_hash, checkpoint_hash=checkpoint_hash(ck), split=split,
                                             protocol=protocol, seed=seed, evaluator=evaluator,
                                             metrics=DONE_WHEN[suite]):
                    summary.skipped.append(tag)
                    bar.update(1)
                    continue
                pending.append(ck)
            if not pending:
                continue
            bar.set_description(f"{suite}: {run}")
            try:
                rows = _run_suite(suite, pending, run, data_dir, opts)
            except InputError as exc:
                log.warning("%s %s failed: %s", run, suite, exc)
                summary.failed += [f"{run}/{ck.name} {suite}: {exc}" for ck in pending]
                bar.update(len(pending))
                continue
            summary.rows_written += results.write(rows)
            summary.evaluated += [f"{run}/{ck.name} {suite}" for ck in pending]
            bar.update(len(pending))
    bar.close()
    log.info(summary.line())
    return summary
