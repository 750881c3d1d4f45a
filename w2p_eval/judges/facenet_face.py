"""facenet-pytorch InceptionResnetV1 pretrained on VGGFace2, fine-tuned (last block + classifier).

Weights: ``$TORCH_HOME/checkpoints/20180402-114759-vggface2.pt`` (TORCH_HOME defaults to
``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``), read with ``weights_only=True``. Nothing is
downloaded: a missing file raises :class:`MissingWeightsError`.

Trunk (frozen): everything up to ``repeat_3`` -> [N, 1792, 3, 3] at 160 px input.
Head (trained): ``block8``, pooling, ``last_linear``, ``last_bn`` (pretrained) + a new Linear(512, C).
Embedding: the L2-normalised 512-d output of ``last_bn`` (facenet's face space).
"""

from __future__ import annotations

import copy
import os
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges.identity import IdentityBackbone, check_images, resize_batch
from w2p_eval.registry import Entry

WEIGHTS_FILE = "20180402-114759-vggface2.pt"
WEIGHTS_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (as facenet-pytorch)."""
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"),
                                                                        "torch"))))


def weights_path() -> Path:
    return torch_home() / "checkpoints" / WEIGHTS_FILE


def require(path: Path | None = None, **options) -> None:
    """Preflight: the VGGFace2 weights file is on disk (``path``, default :func:`weights_path`), or
    MissingWeightsError naming it, the folder and where to get it; nothing is loaded."""
    path = weights_path() if path is None else path
    if not path.is_file():
        raise MissingWeightsError("facenet-pytorch InceptionResnetV1 (VGGFace2)", WEIGHTS_FILE, str(path.parent),
                                  f"{WEIGHTS_URL} (save it there, or set TORCH_HOME)")


def load_state(path: Path) -> dict:
    """A state_dict from ``path`` (weights_only=True); missing -> MissingWeightsError, unreadable -> InputError."""
    require(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"expected a torch state_dict in {path}, "
                         f"got an unreadable file ({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise InputError(f"expected a torch state_dict in {path}, got {type(state).__name__}")
    return state


class FacenetHead(torch.nn.Module):
    def __init__(self, net, n_classes: int):
        super().__init__()
        self.block8 = copy.deepcopy(net.block8)
        self.last_linear = copy.deepcopy(net.last_linear)
        self.last_bn = copy.deepcopy(net.last_bn)
        self.dropout = torch.nn.Dropout(0.4)
        self.classifier = torch.nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.block8(x).mean(dim=(2, 3))
        x = self.last_bn(self.last_linear(self.dropout(x)))
        return torch.nn.functional.normalize(x, dim=1), self.classifier(x)


class FacenetBackbone(IdentityBackbone):
    name = "facenet_vggface2"
    input_size = 160
    train_config = {"epochs": 30, "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32, "patience": 8}

    def __init__(self, device: str = "cpu", weights: str | os.PathLike | None = None):
        super().__init__(device)
        from facenet_pytorch import InceptionResnetV1  # lazy: backend chosen by name

        self.weights = Path(weights) if weights else weights_path()
        state = load_state(self.weights)
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        net = InceptionResnetV1(pretrained=None, classify=False)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InputError(f"expected InceptionResnetV1 weights in {self.weights}, got a state_dict missing "
                             f"{len(missing)} keys (e.g. {missing[:2]}) with {len(unexpected)} unexpected")
        self.net = net.to(device).eval()

    def version(self) -> str:
        return f"facenet-pytorch {version('facenet-pytorch')}; torch {torch.__version__}"

    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, 1792, 3, 3] (``repeat_3`` output at 160 px)."""
        check_images(images)
        x = torch.from_numpy(resize_batch(images, self.input_size)).permute(0, 3, 1, 2).float()
        x = ((x - 127.5) / 128.0).to(self.device)  # facenet-pytorch fixed_image_standardization
        n = self.net
        with torch.no_grad():
            for layer in (n.conv2d_1a, n.conv2d_2a, n.conv2d_2b, n.maxpool_3a, n.conv2d_3b, n.conv2d_4a,
                          n.conv2d_4b, n.repeat_1, n.mixed_6a, n.repeat_2, n.mixed_7a, n.repeat_3):
                x = layer(x)
        return x.float().cpu()

    def make_head(self, n_classes: int) -> torch.nn.Module:
        return FacenetHead(self.net, n_classes)


REGISTER_JUDGES = (Entry("facenet_vggface2", "FacenetBackbone", "FaceNet InceptionResnetV1, VGGFace2",
                         {"judge": "identity", "require": "w2p_eval.judges.facenet_face:require"}, order=20),)
