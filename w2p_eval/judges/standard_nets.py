"""Standard networks the papers quote numbers with, run from weight files the USER supplies (no package ships
them; nothing is downloaded): Inception-v3 for Inception FID / IS, and the VGGFace2 ResNet-50 (8,631
identities) for SF2F's VGGFace Score.

- :func:`load_inception` builds torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow 2015-12-05
  Inception graph ported to torch; TF1-style bilinear resize to 299 px, inputs (x - 128) / 128) from
  torch-fidelity's converted state_dict (``weights-inception-2015-12-05-6726825d.pth``, keys
  ``Conv2d_1a_3x3.conv.weight`` ... ``fc.weight`` [1008, 2048]). The file is read with
  ``weights_only=True`` (torch-fidelity's own loader would unpickle anything; it runs here under
  ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``).
- :func:`load_vggface2` builds a torchvision ``resnet50(num_classes=8631)`` and loads a state_dict in
  torchvision's layout (``conv1.weight`` [64, 3, 7, 7], ``bn1.*``, ``layer1.0.conv1.weight`` ...
  ``layer4.2.bn3.*``, ``layerN.0.downsample.0/1.*``, ``fc.weight`` [8631, 2048], ``fc.bias`` [8631]; BatchNorm
  running statistics included, ``num_batches_tracked`` optional). The VGGFace2 authors' ``resnet50_ft`` (as
  converted by cydonia999/VGGFace2-pytorch, ``resnet50_ft_weight.pkl``, the file SF2F uses) has exactly these
  names: :func:`convert_vggface2_pickle` (``scripts/convert_vggface2.py``) saves its arrays as a torch state_dict.
  The network runs as the authors' Caffe model does: each stage's stride on the first 1x1 convolution, max
  pooling with ceil mode and no padding; input as SF2F's script feeds it (RGB 0-255 minus (131.0912, 103.8827,
  91.4953), bilinear to 224 px with aligned corners).

Both take uint8 RGB faces [N, H, W, 3] and return float32 logits (plus Inception's 2048-d pool features).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric  # noqa: F401 (used by metrics)

from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.utils import atomic_path

VGGFACE2_CLASSES = 8631
VGGFACE2_MEAN_RGB = (131.0912, 103.8827, 91.4953)


@dataclass(frozen=True)
class WeightsFile:
    """A network's weights the user supplies: the option and variable that name it, the file, where to get it."""

    what: str
    option: str
    env: str
    filename: str
    where: str

    def path(self, given: str | os.PathLike | None) -> Path | None:
        """The file from ``given`` (the CLI option) or ``$env``; None when neither is set; a path that is not a
        file -> MissingWeightsError (one line: the file, the folder looked in, where to get it)."""
        path = given or os.environ.get(self.env)
        if not path:
            return None
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(self.what, path.name or self.filename, str(path.parent), self.where)
        return path

    def missing(self) -> str:
        """The one line said when no file is given."""
        return (f"no {self.what} weights: pass {self.option} FILE (or ${self.env}) with {self.filename}, from "
                f"{self.where}")


WEIGHTS = {
    "inception": WeightsFile(
        "Inception-v3", "--inception-weights", "W2P_INCEPTION_WEIGHTS", "weights-inception-2015-12-05-6726825d.pth",
        f"torch-fidelity's release ({URL_INCEPTION_V3}; the TensorFlow Inception of the FID/IS papers, converted)"),
    "vggface2": WeightsFile(
        "VGGFace2 ResNet-50", "--vggface2-weights", "W2P_VGGFACE2_WEIGHTS", "resnet50_ft.pt",
        "the VGGFace2 authors' resnet50_ft (ox-vgg/vgg_face2; PyTorch arrays in cydonia999/VGGFace2-pytorch's "
        "resnet50_ft_weight.pkl, converted by scripts/convert_vggface2.py: docs/recent-metrics.md)"),
}


def file_digest(path: Path) -> str:
    """sha256 of the file (hex, first 12): the weights' identity in the rows' evaluator name."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _weights_only_loads():
    """torch.load inside this block reads tensors only, whatever ``weights_only`` the caller passes."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]


def load_inception(path: Path, device: str = "cpu") -> FeatureExtractorInceptionV3:
    """torch-fidelity's Inception-v3 with the weights of ``path`` (features "2048" and "logits_unbiased")."""
    with _weights_only_loads():
        try:
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                              feature_extractor_weights_path=str(path))
        except Exception as exc:  # a foreign or truncated file: say what was expected, one line
            raise InputError(f"expected torch-fidelity's Inception-v3 state_dict ({WEIGHTS['inception'].filename}) "
                             f"in {path}, got {_first_line(exc)}") from None
    return net.to(device).eval()


def inception_features(net, faces: np.ndarray, device: str = "cpu", batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, 3] -> (pool features float32 [N, 2048], unbiased logits float32 [N, 1008])."""
    _check_faces(faces)
    pools, logits = [], []
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[i:i + batch])).permute(0, 3, 1, 2).to(device)
            pool, logit = net(x)
            pools.append(pool.float().cpu().numpy())
            logits.append(logit.float().cpu().numpy())
    return np.concatenate(pools), np.concatenate(logits)


def _caffe_strides(net: torchvision.models.ResNet) -> torchvision.models.ResNet:
    """The Caffe ResNet-50 the VGGFace2 weights were trained as: stride on each stage's first 1x1 conv, max pool
    with ceil mode and no padding (same parameter names and shapes as torchvision's)."""
    net.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for layer in (net.layer2, net.layer3, net.layer4):
        first = layer[0]
        first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)
    return net


def load_vggface2(path: Path, device: str = "cpu") -> torchvision.models.ResNet:
    """The VGGFace2 ResNet-50 (8,631 classes) with the weights of ``path`` (layout: this module's docstring)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"expected a torch state_dict ({WEIGHTS['vggface2'].filename}) in {path}, got "
                         f"{_first_line(exc)}") from None
    return _vggface2_net(state, path).to(device).eval()


def _vggface2_net(state, path) -> torchvision.models.ResNet:
    """The network with ``state`` loaded; a state of another layout -> InputError naming the first key that differs."""
    net = _caffe_strides(torchvision.models.resnet50(weights=None, num_classes=VGGFACE2_CLASSES))
    want = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    bad = [k for k in want if got.get(k) != want[k]]
    if bad:
        raise InputError(f"expected a torchvision resnet50 state_dict with {VGGFACE2_CLASSES} classes in {path}: "
                         f"{bad[0]} {want[bad[0]]}, got {got.get(bad[0], 'missing')} ({len(bad)} keys differ)")
    net.load_state_dict(state, strict=False)
    return net


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays in dicts and nothing else (any other class is refused, never constructed)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name} (only numpy arrays are read)")


def convert_vggface2_pickle(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """cydonia999/VGGFace2-pytorch's ``resnet50_ft_weight.pkl`` (a pickled {name: numpy array}) -> a torch
    state_dict at ``dst`` that :func:`load_vggface2` reads (checked). Only numpy arrays are unpickled."""
    try:
        with open(src, "rb") as f:
            arrays = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(f"expected a pickled dict of numpy arrays (resnet50_ft_weight.pkl) in {src}, got "
                         f"{_first_line(exc)}") from None
    if not isinstance(arrays, dict) or not all(isinstance(v, np.ndarray) for v in arrays.values()):
        raise InputError(f"expected a pickled dict of numpy arrays in {src}, got {type(arrays).__name__}")
    state = {str(k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    _vggface2_net(state, src)  # the layout is checked before anything is written
    with atomic_path(Path(dst)) as tmp:
        torch.save(state, tmp)
    return Path(dst)


def vggface2_logits(net, faces: np.ndarray, device: str = "cpu", batch: int = 32) -> np.ndarray:
    """uint8 [N, H, W, 3] -> logits float32 [N, 8631] (SF2F's input: RGB minus the means, 224 px bilinear)."""
    _check_faces(faces)
    mean = torch.tensor(VGGFACE2_MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[i:i + batch])).permute(0, 3, 1, 2).float() - mean
            x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=True)
            out.append(net(x.to(device)).float().cpu().numpy())
    return np.concatenate(out)


def _check_faces(faces: np.ndarray) -> None:
    if not (isinstance(faces, np.ndarray) and faces.dtype == np.uint8 and faces.ndim == 4 and faces.shape[-1] == 3
            and len(faces)):
        got = f"{faces.dtype} {faces.shape}" if isinstance(faces, np.ndarray) else type(faces).__name__
        raise InputError(f"expected faces as uint8 [N, H, W, 3] RGB, got {got}")
