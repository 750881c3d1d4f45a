"""The WAV2PIX paper's reported numbers (Duarte et al., ICASSP 2019), shown beside ours and labelled as such.

All values are fractions in [0, 1]. The paper's setting: 10 identities of the "Youtubers" dataset
(5 female, 5 male), a VGG-Face classifier fine-tuned on real faces as the identity judge, and dlib's
68-point ensemble-of-regression-trees detector (Kazemi & Sullivan 2014) for landmarks.
"""

from __future__ import annotations

CITATION = ("Duarte et al., \"Wav2Pix: Speech-conditioned Face Generation using Generative "
            "Adversarial Networks\", ICASSP 2019")
PAPER_N_IDENTITIES = 10
PAPER_IMAGE_SIZE = 64

# metric -> (value, what the paper measured)
PAPER: dict[str, tuple[float, str]] = {
    "identity_top1_real": (0.7681, "VGG-Face fine-tuned classifier on real faces, 10 identities"),
    "identity_top1_fake": (0.5008, "VGG-Face fine-tuned classifier on generated faces, 10 identities"),
    "landmark_detection_rate": (0.9025, "all 68 points found (dlib ERT), 1 s of audio"),
}

# audio seconds -> landmark detection rate of WAV2PIX faces (the paper's audio-length ablation)
PAPER_ABLATION_LANDMARKS: dict[float, float] = {0.3: 0.8116, 0.7: 0.8912, 1.0: 0.9025}


def paper_value(metric: str) -> float | None:
    """The paper's number for ``metric`` (a fraction), or None when it did not report one."""
    entry = PAPER.get(metric)
    return None if entry is None else entry[0]
