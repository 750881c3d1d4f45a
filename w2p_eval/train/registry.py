"""Trainers by model name: each generator's entry in :data:`w2p_eval.models.registry.MODELS` names its trainer
(``meta["trainer"]``, a lazy "module:attr"); the YAML's ``model:`` key picks the entry.

Trainer signature: ``train(config: dict, data_dir, out_dir, *, resume: bool, device: str) -> list[Path]``
(the checkpoints written).
"""

from __future__ import annotations

from w2p_eval.errors import InputError
from w2p_eval.models.registry import MODELS
from w2p_eval.names import resolve


def get_trainer(name: str):
    """The trainer function of model ``name`` (InputError with "did you mean" for an unknown name)."""
    entry = MODELS.entry(name)
    if "trainer" not in entry.meta:
        raise InputError(f"model {name!r} (from {entry.package or 'w2p-eval'}) declares no trainer "
                         f"(registry_meta['trainer'] = 'module:attr')")
    return resolve(entry.meta["trainer"])
