"""Models by name, as lazy "module:attr" strings (nothing heavy imported at start)."""

from __future__ import annotations

import os

from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import load_checkpoint
from w2p_eval.names import lookup

# model name -> FaceGenerator subclass (has .from_checkpoint)
MODELS: dict[str, str] = {
    "wav2pix": "w2p_eval.models.wav2pix:Wav2Pix",
    "l1_regression": "w2p_eval.models.wav2pix:Wav2Pix",
    "mean_face": "w2p_eval.models.baselines:MeanFace",
    "gender_oracle": "w2p_eval.models.baselines:GenderOracle",
    "random_real": "w2p_eval.models.baselines:RandomReal",
    "speaker_retrieval": "w2p_eval.models.baselines:SpeakerRetrieval",
    "real_faces": "w2p_eval.models.baselines:RealFaces",
    "voice2face": "w2p_eval.models.voice2face:Voice2Face",
    "sf2f": "w2p_eval.models.sf2f:SF2F",
}


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
