"""Training runs: resolve a config (CLI > YAML > trainer defaults), set up RUN/, dispatch by ``model:``.

``run_training`` is what `w2p-eval train` calls, and what other commands (demo, ablation) call
to train a model without going through the CLI.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from pathlib import Path

import yaml

from w2p_eval.data.folder import open_dataset
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import CKPT_DIR
from w2p_eval.names import unknown as unknown_name
from w2p_eval.outdir import LOCK, FolderLock, claim, read_marker, write_marker
from w2p_eval.train import ddp
from w2p_eval.train.registry import get_trainer
from w2p_eval.utils import atomic_write_text
from w2p_eval.validate import check_config_values

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"


def load_config(config: dict | str | os.PathLike) -> dict:
    """A dict (copied) or a YAML file (yaml.safe_load) -> a flat dict with a ``model`` key."""
    if isinstance(config, dict):
        cfg = dict(config)
    else:
        path = Path(config)
        if not path.is_file():
            raise InputError(f"expected a YAML config file, got missing path {path}")
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"expected valid YAML in {path}, got a parse error ({str(exc).splitlines()[0]})") from None
        if not isinstance(cfg, dict):
            raise InputError(f"expected a YAML mapping (key: value lines) in {path}, got {type(cfg).__name__}")
    if "model" not in cfg:
        raise InputError("expected a `model:` key in the config (e.g. model: wav2pix), found none")
    return cfg


def parse_set(items: list[str] | tuple[str, ...]) -> dict:
    """``["lr_g=2e-4", "adversarial=false"]`` -> {"lr_g": 0.0002, "adversarial": False} (YAML scalars)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected --set key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _trainer_module(model: str):
    train_fn = get_trainer(model)
    return train_fn, importlib.import_module(train_fn.__module__)


def resolve_config(base: dict, overrides: dict | None, defaults: dict, extra_keys=()) -> dict:
    """defaults < base (YAML) < overrides (CLI). Unknown keys (not in defaults, nor in the trainer's
    ``extra_keys``: accepted without a default) are refused when defaults are known."""
    cfg = {**defaults, **base, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if defaults:
        known = sorted({*defaults, *extra_keys})
        unknown = [k for k in cfg if k not in known]
        if unknown:
            raise InputError(unknown_name("config key", unknown[0], known))
        for key, default in defaults.items():
            value = cfg[key]
            if isinstance(default, bool) and not isinstance(value, bool):
                raise InputError(f"expected true/false for {key}, got {value!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
                    try:
                        value = float(value)
                    except ValueError:
                        pass
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InputError(f"expected a number for {key}, got {value!r}")
                if not math.isfinite(value):
                    raise InputError(f"expected a finite number for {key}, got {value!r}")
                cfg[key] = type(default)(value) if isinstance(default, float) or float(value).is_integer() else value
    return check_config_values(cfg)


def run_training(
    config: dict | str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overrides: dict | None = None,
    resume: bool = False,
    device: str | None = None,
    seed: int | None = None,
) -> list[Path]:
    """Train the model named by the config's ``model:`` key; returns the checkpoints written.

    ``overrides`` (e.g. from the CLI: epochs, batch_size, image_size, audio_seconds, or --set pairs)
    beat the YAML, which beats the trainer's DEFAULTS. The resolved config goes to RUN/config.yaml.
    With ``resume`` the saved RUN/config.yaml is the base (overrides still apply, e.g. more epochs)
    and training restarts after the last complete checkpoint. A RUN that already holds checkpoints
    is refused without ``resume``.
    """
    out_dir = Path(out_dir)
    data_dir = open_dataset(data_dir)  # read once (a clear error for a folder that is not a dataset), passed down
    base = load_config(config)
    claim(out_dir, "train", own=_looks_like_run)
    base = _run_base(base, out_dir, resume)
    overrides = dict(overrides or {})
    if "model" in overrides and overrides["model"] != base.get("model"):
        raise InputError(f"expected the model to come from the config's `model:` key ({base.get('model')!r}), "
                         f"got --set model={overrides['model']!r}; use that model's own config instead")
    if seed is not None:
        overrides["seed"] = int(seed)
    train_fn, module = _trainer_module(str(base["model"]))
    cfg = resolve_config(base, overrides, getattr(module, "DEFAULTS", {}), getattr(module, "EXTRA_KEYS", ()))
    check = getattr(module, "check_config", None)
    if check is not None:  # bad values fail before RUN/ is touched
        check(cfg)
    if ddp.rank() != 0:
        return list(train_fn(cfg, data_dir, out_dir, resume=resume, device=device))
    out_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(out_dir / LOCK, f"run folder {out_dir}"):  # one writer per run folder
        if read_marker(out_dir) is None:
            write_marker(out_dir, "train")
        atomic_write_text(out_dir / CONFIG_NAME, yaml.safe_dump(cfg, sort_keys=True))
        log.info("training %s into %s: %s", cfg["model"], out_dir, cfg)
        return list(train_fn(cfg, data_dir, out_dir, resume=resume, device=device))


def _run_base(base: dict, out_dir: Path, resume: bool) -> dict:
    """The config a run starts from: ``base``, or with ``resume`` the run's saved RUN/config.yaml (same model).
    A run folder that holds checkpoints is refused without ``resume``."""
    ckpt_dir = out_dir / CKPT_DIR
    if not resume and ckpt_dir.is_dir() and any(ckpt_dir.glob("epoch_*.pt")):
        raise InputError(f"expected a new run folder, got {out_dir} which already holds checkpoints "
                         f"(pass --resume to continue it, or choose another --out)")
    saved = out_dir / CONFIG_NAME
    if not (resume and saved.is_file()):
        return base
    previous = load_config(saved)
    if previous.get("model") != base.get("model"):
        raise InputError(f"cannot resume {out_dir}: it trains {previous.get('model')!r}, "
                         f"the config asks for {base.get('model')!r}")
    return previous


def _looks_like_run(folder: Path) -> bool:
    """A run folder written before run folders carried a marker: config.yaml beside checkpoints/."""
    return (folder / CONFIG_NAME).is_file() and (folder / CKPT_DIR).is_dir()
