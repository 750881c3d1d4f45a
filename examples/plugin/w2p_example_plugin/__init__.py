"""An example w2p-eval plugin (docs/plugins.md): one metric suite and one identity judge, registered through the
entry points of pyproject.toml (``w2p_eval.suites``, ``w2p_eval.judges``)."""

from __future__ import annotations

import numpy as np
import torch

from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch
from w2p_eval.metrics.base import MetricSpec, MetricSuite, SuiteResult, ItemValues, ci_dict


class BrightnessSuite(MetricSuite):
    """example_brightness: the mean pixel value (0-255) of each generated face, with its 95 % interval."""

    help = "mean pixel value of each generated face (example plugin)"
    name = "example_brightness"
    metrics = (MetricSpec("example_brightness", "brightness (generated)", True, "value",
                          "Mean pixel value of the generated faces, 0-255 (an example plugin metric)."),)

    def evaluator(self, opts) -> str:
        return "example/brightness"

    def score(self, gs, opts) -> SuiteResult:
        """``gs.fake`` uint8 [N, S, S, 3] -> one value per face, resampled by face id for the interval."""
        per_face = gs.fake.reshape(len(gs.fake), -1).mean(axis=1).astype(np.float64)
        ci = ci_dict(per_face, gs.face_ids, seed=opts.seed, n_resamples=opts.n_resamples, rate=False)
        items = ItemValues(keys=list(gs.pair_ids), values=per_face, groups=list(gs.face_ids))
        value = float(per_face.mean()) if len(per_face) else float("nan")
        return SuiteResult(self.evaluator(opts), "1", {"metric": "mean pixel"},
                           {"example_brightness": (value, len(per_face), {"ci": ci})}, {"example_brightness": items})


SUITE = BrightnessSuite()


class ExamplePixels(IdentityBackbone):
    """example_pixels: faces downsampled to 16x16 grey and flattened are the embedding; a linear head classifies."""

    help = "16x16 grey pixels as the embedding (example plugin)"
    registry_meta = {"judge": "identity"}
    name = "example_pixels"
    input_size = 16
    train_config = {"epochs": 30, "lr": 1e-2, "weight_decay": 1e-4, "batch_size": 32, "patience": 10}

    def version(self) -> str:
        return "example_pixels 1"

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, 256] in [0, 1]."""
        check_images(images)
        small = resize_batch(images, self.input_size).astype(np.float32).mean(axis=3) / 255.0
        return torch.from_numpy(small.reshape(len(images), -1))

    def make_head(self, n_classes: int) -> torch.nn.Module:
        return PixelHead(self.input_size ** 2, n_classes)


class PixelHead(torch.nn.Module):
    """features [N, D] -> (embedding = the features themselves [N, D], logits [N, n_classes])."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.classify = torch.nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, self.classify(x)
