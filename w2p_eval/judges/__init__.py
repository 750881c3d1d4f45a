"""Pretrained "judge" networks, loaded lazily by name: nothing heavy is imported until one is asked for.

``IDENTITY_BACKBONES`` maps a backbone name to a "module:attr" factory returning an
:class:`w2p_eval.judges.identity.IdentityBackbone`; :func:`load_identity_backbone` resolves it and
answers an unknown name with "did you mean ...; available: ...". :func:`parse_backbones` reads the
comma list of ``--backbone dlib_resnet,faceres`` (several judges in one evaluation).
"""

from __future__ import annotations

from w2p_eval.errors import InputError
from w2p_eval.names import lookup, unknown

IDENTITY_BACKBONES: dict[str, str] = {
    "dlib_resnet": "w2p_eval.judges.dlib_face:DlibResnetBackbone",
    "facenet_vggface2": "w2p_eval.judges.facenet_face:FacenetBackbone",
    "vgg_face": "w2p_eval.judges.vgg_face:VggFaceBackbone",
    "vgg_scratch": "w2p_eval.judges.vgg_face:VggScratchBackbone",
    "dlib_resnet_native": "w2p_eval.judges.dlib_face:DlibResnetNativeBackbone",
    "dlib_resnet_ft": "w2p_eval.judges.dlib_finetune:DlibResnetFineTuneBackbone",
    "faceres": "w2p_eval.judges.faceres:FaceResBackbone",
    "mobilefacenet": "w2p_eval.judges.mobilefacenet:MobileFaceNetBackbone",
}


# Preflight (issue 31): each backbone's files checked without loading it ("module:attr" of a ``require(**options)``
# next to the backbone; a backbone with no files, e.g. vgg_scratch, trains from scratch and needs none)
IDENTITY_REQUIREMENTS: dict[str, str] = {
    "dlib_resnet": "w2p_eval.judges.dlib_face:require",
    "dlib_resnet_native": "w2p_eval.judges.dlib_face:require",
    "dlib_resnet_ft": "w2p_eval.judges.dlib_face:require",
    "facenet_vggface2": "w2p_eval.judges.facenet_face:require",
    "vgg_face": "w2p_eval.judges.vgg_face:require",
    "faceres": "w2p_eval.judges.faceres:require",
    "mobilefacenet": "w2p_eval.judges.mobilefacenet:require",
}


def require_identity_backbone(name: str, **options) -> None:
    """The files identity backbone ``name`` needs are on disk, or MissingWeightsError (file, folder, how to get
    it); an unknown name is InputError with a hint. Nothing heavy is loaded."""
    if name not in IDENTITY_BACKBONES:
        raise InputError(unknown("identity backbone", name, IDENTITY_BACKBONES))
    if name in IDENTITY_REQUIREMENTS:
        lookup(IDENTITY_REQUIREMENTS, name, "identity backbone")(**options)


# ``table[name]`` imported from its "module:attr" string, unknown names -> InputError with a hint
# (the one implementation is :func:`w2p_eval.names.lookup`; this name is kept for its callers).
resolve_name = lookup


def load_identity_backbone(name: str, device: str = "cpu", **options):
    """The identity backbone called ``name`` on ``device`` (weights loaded from disk, never downloaded)."""
    return lookup(IDENTITY_BACKBONES, name, "identity backbone")(device=device, **options)


def parse_backbones(value) -> tuple[str, ...]:
    """``"dlib_resnet,faceres"`` (or a list of names) -> ("dlib_resnet", "faceres"): the identity judges of one
    evaluation, the first the primary one. Empty lists, unknown names (with "did you mean") and repeated
    names are InputError."""
    if not isinstance(value, (str, list, tuple)) or not all(isinstance(p, str) for p in
                                                             (value.split(",") if isinstance(value, str) else value)):
        raise InputError(f"expected identity backbones as a name, a comma-separated list of names or a list of names "
                         f"(e.g. dlib_resnet,faceres), got {str(value)[:60]!r}")
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = [str(p).strip() for p in parts]
    if not names or not all(names):
        raise InputError(f"expected identity backbones as a comma-separated list of names (e.g. dlib_resnet,faceres), "
                         f"got {value!r}")
    for name in names:
        if name not in IDENTITY_BACKBONES:
            raise InputError(unknown("identity backbone", name, IDENTITY_BACKBONES))
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise InputError(f"expected distinct identity backbones, got {dup!r} more than once in {value!r}")
    return tuple(names)
