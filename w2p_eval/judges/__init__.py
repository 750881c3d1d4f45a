"""Pretrained "judge" networks, loaded lazily by name: nothing heavy is imported until one is asked for.

``IDENTITY_BACKBONES`` maps a backbone name to a "module:attr" factory returning an
:class:`w2p_eval.judges.identity.IdentityBackbone`; :func:`load_identity_backbone` resolves it and
answers an unknown name with "did you mean ...; available: ...".
"""

from __future__ import annotations

import difflib
import importlib

from w2p_eval.errors import InputError

IDENTITY_BACKBONES: dict[str, str] = {
    "dlib_resnet": "w2p_eval.judges.dlib_face:DlibResnetBackbone",
    "facenet_vggface2": "w2p_eval.judges.facenet_face:FacenetBackbone",
    "vgg_face": "w2p_eval.judges.vgg_face:VggFaceBackbone",
    "vgg_scratch": "w2p_eval.judges.vgg_face:VggScratchBackbone",
    "dlib_resnet_native": "w2p_eval.judges.dlib_face:DlibResnetNativeBackbone",
    "dlib_resnet_ft": "w2p_eval.judges.dlib_finetune:DlibResnetFineTuneBackbone",
}


def resolve_name(table: dict[str, str], name: str, what: str):
    """``table[name]`` imported from its "module:attr" string; unknown names -> InputError with a hint."""
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise InputError(f"unknown {what} {name!r}{hint}; available: {', '.join(table)}")
    module, attr = table[name].split(":")
    return getattr(importlib.import_module(module), attr)


def load_identity_backbone(name: str, device: str = "cpu", **options):
    """The identity backbone called ``name`` on ``device`` (weights loaded from disk, never downloaded)."""
    return resolve_name(IDENTITY_BACKBONES, name, "identity backbone")(device=device, **options)
