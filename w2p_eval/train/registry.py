"""Trainers by model name, as lazy "module:attr" strings (the YAML's ``model:`` key picks the entry).

Trainer signature: ``train(config: dict, data_dir, out_dir, *, resume: bool, device: str) -> list[Path]``
(the checkpoints written). The generators they produce are in :data:`w2p_eval.models.registry.MODELS`.
"""

from __future__ import annotations

from w2p_eval.names import lookup

TRAINERS: dict[str, str] = {
    "wav2pix": "w2p_eval.train.gan:train",
    "l1_regression": "w2p_eval.train.gan:train",
    "mean_face": "w2p_eval.train.baselines:train",
    "gender_oracle": "w2p_eval.train.baselines:train",
    "random_real": "w2p_eval.train.baselines:train",
    "speaker_retrieval": "w2p_eval.train.baselines:train",
    "real_faces": "w2p_eval.train.baselines:train",
    "voice2face": "w2p_eval.train.voice2face:train",
    "sf2f": "w2p_eval.train.sf2f:train",
}


def get_trainer(name: str):
    """The trainer function of model ``name`` (InputError with "did you mean" for an unknown name)."""
    return lookup(TRAINERS, name, "model")
