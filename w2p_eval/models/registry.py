"""Models and baselines by name, as lazy "module:attr" strings (nothing heavy imported at start).

:data:`MODELS` is the one registry of generators: each entry's target is a FaceGenerator subclass (with
``.from_checkpoint``), ``meta["trainer"]`` the "module:attr" of the function that trains it (the YAML's
``model:`` key picks the entry; :func:`w2p_eval.train.registry.get_trainer`), ``meta["baseline"]`` whether it
is a baseline. Plugins add generators through the ``w2p_eval.baselines`` entry-point group (the object's
``registry_meta = {"trainer": "pkg:train"}``).
"""

from __future__ import annotations

import os

from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import load_checkpoint
from w2p_eval.names import lookup
from w2p_eval.registry import Entry, Registry

_GAN, _FIT = "w2p_eval.train.gan:train", "w2p_eval.train.baselines:train"
MODELS = Registry("model", "w2p_eval.baselines", [
    Entry("wav2pix", "w2p_eval.models.wav2pix:Wav2Pix", "the WAV2PIX speech-to-face GAN", {"trainer": _GAN}),
    Entry("l1_regression", "w2p_eval.models.wav2pix:Wav2Pix", "WAV2PIX without the discriminator (L1 only)",
          {"trainer": _GAN, "baseline": True}),
    Entry("mean_face", "w2p_eval.models.baselines:MeanFace", "the mean training face (ignores the audio)",
          {"trainer": _FIT, "baseline": True}),
    Entry("gender_oracle", "w2p_eval.models.baselines:GenderOracle", "the mean training face of the true gender",
          {"trainer": _FIT, "baseline": True}),
    Entry("random_real", "w2p_eval.models.baselines:RandomReal", "a real face of a random identity",
          {"trainer": _FIT, "baseline": True}),
    Entry("speaker_retrieval", "w2p_eval.models.baselines:SpeakerRetrieval",
          "speaker identified from the audio -> that identity's medoid face", {"trainer": _FIT, "baseline": True}),
    Entry("real_faces", "w2p_eval.models.baselines:RealFaces", "the real paired face (the ceiling)",
          {"trainer": _FIT, "baseline": True}),
    Entry("voice2face", "w2p_eval.models.voice2face:Voice2Face", "Wen et al. 2019: voice embedding -> face GAN",
          {"trainer": "w2p_eval.train.voice2face:train"}),
    Entry("sf2f", "w2p_eval.models.sf2f:SF2F", "SF2F (Bai et al.): speech fuser + face decoder",
          {"trainer": "w2p_eval.train.sf2f:train"}),
])


def load_generator(ckpt_or_path, device: str = "cpu"):
    """A checkpoint dict or path -> the FaceGenerator it holds, in eval mode on ``device``."""
    ckpt = ckpt_or_path if isinstance(ckpt_or_path, dict) else load_checkpoint(os.fspath(ckpt_or_path))
    cls = lookup(MODELS, ckpt["model"], "model")
    try:
        gen = cls.from_checkpoint(ckpt, device=device)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        raise InputError(f"expected the weights of a {ckpt['model']} model in checkpoint {ckpt.get('path')}, "
                         f"got unusable state ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    return gen.to(device).eval()
