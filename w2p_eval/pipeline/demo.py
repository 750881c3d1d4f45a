"""`w2p-eval demo`: offline, no arguments: build the synthetic demo data, train WAV2PIX (64 px, a few
epochs) and the baselines, evaluate identity, landmarks and the speaker-ID ceiling, write the report.

Re-running with the same ``out`` continues where the last run stopped: the data is reused, finished
runs are kept (training resumes), and stored results are not recomputed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from w2p_eval.data.folder import open_dataset
from w2p_eval.data.prepare_demo import build_demo
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import list_checkpoints
from w2p_eval.pipeline.configs import config_for
from w2p_eval.pipeline.evaluate import evaluate_runs
from w2p_eval.report.build import build_report
from w2p_eval.results import default_store
from w2p_eval.train.run import run_training

log = logging.getLogger(__name__)
QUICK_ENV = "W2P_DEMO_QUICK"


@dataclass(frozen=True)
class DemoSettings:
    n_identities: int
    pairs_per_identity: int
    epochs: int
    batch_size: int
    checkpoint_every: int
    baselines: tuple[str, ...]
    generators: tuple[str, ...] = ()  # the field's generators (--full): trained for WAV2PIX's epochs


# The paper's learning rates (1e-4 / 4e-4) with batch 16 instead of 64: 10 updates per epoch on the demo data,
# so faces start to take shape within the 300 updates of 30 epochs (about 3 min on 2 idle CPU cores).
# (10x higher learning rates learn faster at first but the discriminator diverges within 200 updates.)
FULL = DemoSettings(n_identities=8, pairs_per_identity=24, epochs=30, batch_size=16, checkpoint_every=10,
                    baselines=("speaker_retrieval", "random_real", "mean_face", "real_faces"))
QUICK = DemoSettings(n_identities=4, pairs_per_identity=12, epochs=2, batch_size=16, checkpoint_every=1,
                     baselines=("mean_face", "real_faces"))


FIELD_GENERATORS = ("voice2face", "sf2f")


def quick_from_env() -> bool:
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _say(message: str) -> None:
    tqdm.write(f"[demo] {message}", file=sys.stderr)


def _demo_data(data: Path, cache: Path, seed: int, s: DemoSettings):
    """The demo dataset at ``data``: built (step 1/4), or reused when it was built with this seed and size; read
    once for the trainings, the evaluation and the report."""
    if (data / "dataset.json").is_file():
        info = open_dataset(data, cache).info
        if int(info.get("seed", -1)) != int(seed) or len(info.get("identities", [])) != s.n_identities:
            raise InputError(f"expected demo data built with seed {seed} and {s.n_identities} identities in {data}, "
                             f"got seed {info.get('seed')} and {len(info.get('identities', []))} identities "
                             f"(choose another --out)")
        _say(f"reusing demo data in {data}")
    else:
        _say(f"1/4 building demo data: {s.n_identities} identities x {s.pairs_per_identity} pairs -> {data}")
        build_demo(data, seed=seed, n_identities=s.n_identities, pairs_per_identity=s.pairs_per_identity)
    return open_dataset(data, cache)


def run_demo(out: str | os.PathLike = "w2p_demo", *, seed: int = 0, quick: bool = False,
             epochs: int | None = None, device: str | None = None, workers: int = 1, batch_size: int = 64,
             cache_dir: str | os.PathLike | None = None, settings: DemoSettings | None = None,
             full: bool = False) -> Path:
    """Run the whole pipeline into ``out`` (data/, runs/, cache/, report/); returns report/report.html.
    ``device``/``workers``/``batch_size``/``cache_dir``: the evaluation's runtime (cache default: ``out/cache``);
    ``full``: also the field's generators (voice2face, SF2F)."""
    s = settings or (QUICK if quick else FULL)
    if full:
        s = replace(s, generators=FIELD_GENERATORS)
    out = Path(out)
    data, runs_dir = out / "data", out / "runs"
    cache = Path(cache_dir) if cache_dir else out / "cache"
    t0 = time.perf_counter()
    data = _demo_data(data, cache, seed, s)
    t_data = time.perf_counter()

    n_epochs = int(epochs or s.epochs)
    wav2pix = runs_dir / "wav2pix_64"
    _say(f"2/4 training WAV2PIX 64 px for {n_epochs} epochs (batch {s.batch_size}) -> {wav2pix}")
    run_training(config_for("wav2pix_64"), data, wav2pix, resume=wav2pix.exists(), device=device, seed=seed,
                 overrides={"epochs": n_epochs, "batch_size": s.batch_size,
                            "checkpoint_every": min(s.checkpoint_every, n_epochs)})
    generator_dirs = []
    for name in s.generators:  # WAV2PIX's epochs and batch; their extra stages kept short (docs/generators.md)
        run_dir = runs_dir / name
        _say(f"2/4 training {name} for {n_epochs} epochs (batch {s.batch_size}) -> {run_dir}")
        run_training(config_for(name), data, run_dir, resume=run_dir.exists(), device=device, seed=seed,
                     overrides={"epochs": n_epochs, "batch_size": s.batch_size, "checkpoint_every": n_epochs,
                                **({"embed_epochs": max(1, n_epochs // 3)} if name == "voice2face" else
                                   {"fuser_epochs": max(1, n_epochs // 10)})})
        generator_dirs.append(run_dir)
    baseline_dirs = []
    for name in s.baselines:
        run_dir = runs_dir / name
        _say(f"2/4 fitting baseline {name} -> {run_dir}")
        run_training(config_for(name), data, run_dir, resume=run_dir.exists(), device=device, seed=seed)
        list_checkpoints(run_dir)
        baseline_dirs.append(run_dir)
    t_train = time.perf_counter()

    _say("3/4 evaluating identity (dlib ResNet judge), landmarks (dlib 68 points) and speaker ID")
    summary = evaluate_runs([wav2pix, *generator_dirs], data, baselines=baseline_dirs, seed=seed, device=device,
                            workers=workers, batch_size=batch_size, cache_dir=cache)
    for item in summary.failed:
        _say(f"evaluation failed: {item}")
    _say(summary.line())
    t_eval = time.perf_counter()

    _say(f"4/4 writing the report -> {out / 'report'}")
    html = build_report([wav2pix, *generator_dirs, *baseline_dirs], default_store(data), out / "report", data_dir=data,
                        seed=seed, title="w2p-eval demo: WAV2PIX and baselines on the synthetic demo data",
                        command=f"w2p-eval demo --out {out} --seed {seed}" + (" --quick" if quick else "")
                        + (" --full" if full else ""))
    t_end = time.perf_counter()
    _say(f"done in {t_end - t0:.0f} s (data {t_data - t0:.0f} s, training {t_train - t_data:.0f} s, "
         f"evaluation {t_eval - t_train:.0f} s, report {t_end - t_eval:.0f} s)")
    return html
