"""Pretrained "judge" networks, loaded lazily by name: nothing heavy is imported until one is asked for.

``IDENTITY_BACKBONES`` maps a backbone name to a "module:attr" factory returning an
:class:`w2p_eval.judges.identity.IdentityBackbone`; :func:`load_identity_backbone` resolves it and
answers an unknown name with "did you mean ...; available: ...".
"""

from __future__ import annotations

from w2p_eval.names import lookup

IDENTITY_BACKBONES: dict[str, str] = {
    "dlib_resnet": "w2p_eval.judges.dlib_face:DlibResnetBackbone",
    "facenet_vggface2": "w2p_eval.judges.facenet_face:FacenetBackbone",
    "vgg_face": "w2p_eval.judges.vgg_face:VggFaceBackbone",
    "vgg_scratch": "w2p_eval.judges.vgg_face:VggScratchBackbone",
    "dlib_resnet_native": "w2p_eval.judges.dlib_face:DlibResnetNativeBackbone",
    "dlib_resnet_ft": "w2p_eval.judges.dlib_finetune:DlibResnetFineTuneBackbone",
    "faceres": "w2p_eval.judges.faceres:FaceResBackbone",
}


# ``table[name]`` imported from its "module:attr" string, unknown names -> InputError with a hint
# (the one implementation is :func:`w2p_eval.names.lookup`; this name is kept for its callers).
resolve_name = lookup


def load_identity_backbone(name: str, device: str = "cpu", **options):
    """The identity backbone called ``name`` on ``device`` (weights loaded from disk, never downloaded)."""
    return lookup(IDENTITY_BACKBONES, name, "identity backbone")(device=device, **options)
