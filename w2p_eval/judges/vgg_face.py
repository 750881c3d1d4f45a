"""VGG-16 VGG-Face (Parkhi et al. 2015) with converted weights, and a small VGG-style CNN from scratch.

``vgg_face`` reads a state_dict in the layout of the widely used PyTorch conversion
``vgg_face_dag.pth`` (keys ``conv1_1.weight`` ... ``conv5_3.bias``, ``fc6``/``fc7``/``fc8`` as
Linear layers: fc6 [4096, 25088], fc7 [4096, 4096], fc8 [2622, 4096]; RGB input 224 px in
0..255 minus the mean (129.186, 104.762, 93.594)). The path comes from ``weights=`` (CLI
``--vgg-face-weights``) or ``$W2P_VGG_FACE_WEIGHTS``. Trunk (frozen): conv1_1..pool5, fc6, ReLU ->
[N, 4096]. Head (trained): fc7 (pretrained) + ReLU (the 4096-d embedding) + a new Linear(4096, C).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch
from w2p_eval.registry import Entry

ENV_VAR = "W2P_VGG_FACE_WEIGHTS"
WEIGHTS_FILE = "vgg_face_dag.pth"
WEIGHTS_URL = "https://www.robots.ox.ac.uk/~albanie/pytorch-models.html (vgg_face_dag.pth)"
MEAN_RGB = (129.186279296875, 104.76238250732422, 93.59396362304688)
CONV_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VggFaceNet(nn.Module):
    """VGG-Face with the vgg_face_dag.pth parameter names; ``features`` gives [N, 512, 7, 7] at 224 px."""

    def __init__(self, n_classes: int = 2622):
        super().__init__()
        c_in = 3
        self.conv_names = []
        for b, widths in enumerate(CONV_BLOCKS, start=1):
            for j, c_out in enumerate(widths, start=1):
                name = f"conv{b}_{j}"
                setattr(self, name, nn.Conv2d(c_in, c_out, 3, padding=1))
                self.conv_names.append(name)
                c_in = c_out
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.conv_names:
            x = torch.relu(getattr(self, name)(x))
            if name.endswith(f"_{len(CONV_BLOCKS[int(name[4]) - 1])}"):
                x = torch.nn.functional.max_pool2d(x, 2, 2)
        return x


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    path = weights or os.environ.get(ENV_VAR)
    if not path:
        raise MissingWeightsError("VGG-Face", WEIGHTS_FILE, f"--vgg-face-weights / ${ENV_VAR} (neither is set)",
                                  WEIGHTS_URL)
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError("VGG-Face", path.name, str(path.parent), WEIGHTS_URL)
    return path


class VggFaceHead(nn.Module):
    def __init__(self, fc7: nn.Linear, n_classes: int):
        super().__init__()
        self.fc7 = nn.Linear(4096, 4096)
        self.fc7.load_state_dict(fc7.state_dict())
        self.dropout = nn.Dropout(0.5)
        self.fc8 = nn.Linear(4096, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.relu(self.fc7(self.dropout(x)))
        return emb, self.fc8(self.dropout(emb))


class VggFaceBackbone(IdentityBackbone):
    name = "vgg_face"
    input_size = 224
    train_config = {"epochs": 30, "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32, "patience": 8}

    def __init__(self, device: str = "cpu", weights: str | os.PathLike | None = None):
        super().__init__(device)
        self.weights = resolve_weights(weights)
        try:
            state = torch.load(self.weights, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise InputError(f"expected a vgg_face_dag.pth state_dict in {self.weights}, got an unreadable file "
                             f"({exc.__class__.__name__})") from None
        net = VggFaceNet(n_classes=state["fc8.weight"].shape[0] if "fc8.weight" in state else 2622)
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
        bad = [k for k in want if got.get(k) != want[k]]
        if bad:
            k = bad[0]
            raise InputError(f"expected vgg_face_dag.pth layout in {self.weights}: {k} {want[k]}, "
                             f"got {got.get(k, 'missing')} ({len(bad)} keys differ)")
        net.load_state_dict(state)
        self.net = net.to(device).eval()

    def version(self) -> str:
        return f"vgg_face_dag ({self.weights.name}); torch {torch.__version__}"

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, 4096] (ReLU(fc6) at 224 px)."""
        check_images(images)
        x = torch.from_numpy(resize_batch(images, self.input_size)).permute(0, 3, 1, 2).float()
        x = (x - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)).to(self.device)
        with torch.no_grad():
            f = self.net.features(x).flatten(1)
            return torch.relu(self.net.fc6(f)).float().cpu()

    def make_head(self, n_classes: int) -> nn.Module:
        return VggFaceHead(self.net.fc7, n_classes)


class VggScratchNet(nn.Module):
    """Small VGG-style CNN for 64 px faces: 4 x (conv-GroupNorm-ReLU x2, maxpool) 32..256 ch, GAP, FC 128.

    GroupNorm rather than BatchNorm: with the few steps small datasets give, BatchNorm's running
    statistics lag behind and the eval-mode network (used for model selection) is far off."""

    def __init__(self, n_classes: int, width: int = 32, emb_dim: int = 128):
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, width * 2, width * 4, width * 8):
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(8, c_out), nn.ReLU(True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Dropout(0.3), nn.Linear(c_in, emb_dim), nn.ReLU(True))
        self.classifier = nn.Linear(emb_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(self.body(x).mean(dim=(2, 3)))
        return emb, self.classifier(emb)


class VggScratchBackbone(IdentityBackbone):
    """No pretrained weights: the trunk only resizes/normalises ([N, 3, 64, 64] in [-1, 1])."""

    name = "vgg_scratch"
    input_size = 64
    train_config = {"epochs": 60, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32, "patience": 20}

    def __init__(self, device: str = "cpu", width: int = 32, epochs: int | None = None):
        super().__init__(device)
        self.width = int(width)
        self.train_config = {**self.train_config, **({"epochs": int(epochs)} if epochs else {})}

    def describe(self) -> dict:
        return {**super().describe(), "width": self.width}

    def version(self) -> str:
        return f"vgg_scratch; torch {torch.__version__}"

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        check_images(images)
        x = torch.from_numpy(resize_batch(images, self.input_size)).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1.0

    def make_head(self, n_classes: int) -> nn.Module:
        return VggScratchNet(n_classes, width=self.width)


def require(weights: str | os.PathLike | None = None, **options) -> None:
    """Preflight: VGG-Face's weights file is on disk (``weights`` / ``$W2P_VGG_FACE_WEIGHTS``), or
    MissingWeightsError naming it, where it was looked for and where to get it; nothing is loaded."""
    resolve_weights(weights)


REGISTER_JUDGES = (
    Entry("vgg_face", "VggFaceBackbone", "VGG-Face (--vgg-face-weights)",
          {"judge": "identity", "require": "w2p_eval.judges.vgg_face:require"}, order=30),
    Entry("vgg_scratch", "VggScratchBackbone", "VGG-Face trained from scratch", {"judge": "identity"}, order=40),
)
