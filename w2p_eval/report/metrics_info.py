"""What each metric means, how to print it, and which way is better: the report's legend."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    label: str
    higher_is_better: bool
    is_rate: bool  # a fraction in [0, 1], printed as a percentage
    explanation: str


METRICS: dict[str, MetricInfo] = {
    "identity_top1_fake": MetricInfo(
        "identity top-1 (generated)", True, True,
        "Share of generated faces that the identity classifier (trained on real training faces) assigns to "
        "the speaker whose speech produced them; chance is 1 / number of identities."),
    "identity_top5_fake": MetricInfo(
        "identity top-5 (generated)", True, True,
        "Share of generated faces whose speaker is among the classifier's five most likely identities."),
    "identity_top1_real": MetricInfo(
        "identity top-1 (real)", True, True,
        "The same classifier's accuracy on the paired real test faces, at the generator's resolution: the "
        "ceiling for generated faces."),
    "identity_top5_real": MetricInfo(
        "identity top-5 (real)", True, True, "Top-5 accuracy of the classifier on the real test faces."),
    "cosine_own_centroid": MetricInfo(
        "cosine to own centroid", True, False,
        "Mean cosine similarity, in the judge's face-embedding space, between each generated face and the "
        "centroid of its speaker's real test faces."),
    "cosine_other_centroids": MetricInfo(
        "cosine to other centroids", False, False,
        "Mean cosine similarity between each generated face and the centroids of the other speakers' real "
        "faces; a good generator keeps it below the own-centroid value."),
    "retrieval_r1": MetricInfo(
        "retrieval R@1", True, True,
        "Share of generated faces whose nearest real identity centroid (by cosine) is their own speaker's."),
    "retrieval_r5": MetricInfo(
        "retrieval R@5", True, True,
        "Share of generated faces whose speaker's centroid is among the five nearest centroids."),
    "frechet_face": MetricInfo(
        "Fréchet face distance", False, False,
        "Fréchet distance between Gaussians fitted to generated and real test-face embeddings (FID computed "
        "in face-recognition space); 0 for identical distributions."),
    "kid_face": MetricInfo(
        "KID (face space)", False, False,
        "Kernel inception distance (unbiased polynomial-kernel MMD) between generated and real face "
        "embeddings; about 0 for identical distributions."),
    "landmark_detection_rate": MetricInfo(
        "landmark detection rate", True, True,
        "The paper's landmark accuracy: share of generated faces on which the detector finds a face and "
        "places all 68 landmarks (95 % Wilson interval in the tables' notes)."),
    "landmark_detection_rate_real": MetricInfo(
        "landmark detection (real)", True, True,
        "The same detection rate on the real test faces at the generator's resolution: the ceiling."),
    "landmark_nme": MetricInfo(
        "landmark NME", False, False,
        "Mean distance between landmarks of a generated face and of its paired real face, normalised by the "
        "real face's outer-eye-corner distance, over pairs where both are detected."),
    "speaker_id_top1": MetricInfo(
        "speaker ID top-1 (speech only)", True, True,
        "Accuracy of the speaker classifier on the test speech alone: the ceiling of any identity signal "
        "a speech-to-face model can pass on."),
    "speaker_id_top5": MetricInfo(
        "speaker ID top-5 (speech only)", True, True, "Top-5 accuracy of the speech-only speaker classifier."),
}

# The order of columns in the main table; metrics not listed follow alphabetically.
ORDER = list(METRICS)

MODEL_ORDER = ["wav2pix", "l1_regression", "speaker_retrieval", "random_real", "mean_face", "real_faces"]
BASELINE_MODELS = {"l1_regression", "speaker_retrieval", "random_real", "mean_face", "real_faces"}


def info(metric: str) -> MetricInfo:
    return METRICS.get(metric, MetricInfo(metric, True, False, f"{metric} (no description)."))


def sort_metrics(metrics) -> list[str]:
    metrics = list(dict.fromkeys(metrics))
    known = [m for m in ORDER if m in metrics]
    return known + sorted(m for m in metrics if m not in METRICS)


def format_value(metric: str, value: float | None, std: float | None = None) -> str:
    """``0.5008 -> '50.08 %'`` for rates, 4 significant digits otherwise; ``± std`` when given."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    rate = info(metric).is_rate
    fmt = (lambda v: f"{100 * v:.2f}") if rate else (lambda v: f"{v:.4g}")
    text = fmt(value)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {fmt(std) if rate else f'{std:.2g}'}"
    return text + (" %" if rate else "")
