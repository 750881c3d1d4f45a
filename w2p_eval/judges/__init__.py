"""Pretrained "judge" networks, loaded lazily by name: nothing heavy is imported until one is asked for.

:data:`JUDGES` (one :class:`~w2p_eval.registry.Registry`; plugins through the ``w2p_eval.judges`` entry-point
group) holds every judge, its ``meta["judge"]`` saying which kind: ``identity`` (a "module:attr" factory
returning an :class:`w2p_eval.judges.identity.IdentityBackbone`), ``landmark`` (a landmark backend class of
:mod:`w2p_eval.judges.landmarks`) or ``attribute``. ``IDENTITY_BACKBONES`` / ``LANDMARK_BACKENDS`` are the
registries of one kind (same entries, filtered); :func:`load_identity_backbone` resolves a name and
answers an unknown one with "did you mean ...; available: ...". :func:`parse_backbones` reads the
comma list of ``--backbone dlib_resnet,faceres`` (several judges in one evaluation).
"""

from __future__ import annotations

from w2p_eval.errors import InputError
from w2p_eval.names import lookup, resolve, unknown
from w2p_eval.registry import Entry, Registry

_ID, _LM, _ATTR = {"judge": "identity"}, {"judge": "landmark"}, {"judge": "attribute"}
_LM_TORCH = {**_LM, "spawn": True}  # a torch landmark judge: its worker processes are spawned, not forked


def _id(require: str | None = None) -> dict:
    """Identity-judge metadata; ``require``: "module:attr" of its preflight check (files on disk, nothing loaded)."""
    return {**_ID, "require": require} if require else _ID


JUDGES_ENTRIES = (
    Entry("dlib_resnet", "w2p_eval.judges.dlib_face:DlibResnetBackbone", "dlib's descriptor in torch + a linear head", _id("w2p_eval.judges.dlib_face:require")),
    Entry("facenet_vggface2", "w2p_eval.judges.facenet_face:FacenetBackbone", "FaceNet InceptionResnetV1, VGGFace2", _id("w2p_eval.judges.facenet_face:require")),
    Entry("vgg_face", "w2p_eval.judges.vgg_face:VggFaceBackbone", "VGG-Face (--vgg-face-weights)", _id("w2p_eval.judges.vgg_face:require")),
    Entry("vgg_scratch", "w2p_eval.judges.vgg_face:VggScratchBackbone", "VGG-Face trained from scratch", _ID),
    Entry("dlib_resnet_native", "w2p_eval.judges.dlib_face:DlibResnetNativeBackbone", "dlib_resnet in dlib-bin", _id("w2p_eval.judges.dlib_face:require")),
    Entry("dlib_resnet_ft", "w2p_eval.judges.dlib_finetune:DlibResnetFineTuneBackbone",
          "dlib_resnet with its last residual stage fine-tuned on the real training faces", _id("w2p_eval.judges.dlib_face:require")),
    Entry("faceres", "w2p_eval.judges.faceres:FaceResBackbone", "HSE FaceRes, VGGFace2", _id("w2p_eval.judges.faceres:require")),
    Entry("mobilefacenet", "w2p_eval.judges.mobilefacenet:MobileFaceNetBackbone",
          "MobileFaceNet (ArcFace-type, 192-d; training data undocumented)", _id("w2p_eval.judges.mobilefacenet:require")),
    Entry("dlib", "w2p_eval.judges.landmarks:DlibBackend", "HOG detector + 68-point ERT", _LM),
    Entry("dlib_cnn", "w2p_eval.judges.landmarks:DlibCnnBackend", "MMOD CNN detector + ERT", _LM),
    Entry("fan", "w2p_eval.judges.landmarks_fan:FanBackend", "face-alignment 2D-FAN", _LM_TORCH),
    Entry("facemesh", "w2p_eval.judges.landmarks_facemesh:FacemeshBackend",
          "MediaPipe FaceMesh (468 points mapped to 68; training data undocumented)", _LM_TORCH),
    Entry("faceres+gear", "w2p_eval.judges.attributes:AttributeJudge", "FaceRes gender/age + GEAR ethnicity", _ATTR),
)


def _of_kind(kind: str):
    return lambda e: e.meta.get("judge", "identity") == kind  # plugins without the key are identity judges


JUDGES = Registry("judge", "w2p_eval.judges", JUDGES_ENTRIES)
IDENTITY_BACKBONES = Registry("identity backbone", "w2p_eval.judges", JUDGES_ENTRIES, keep=_of_kind("identity"))
LANDMARK_BACKENDS = Registry("landmark backend", "w2p_eval.judges", JUDGES_ENTRIES, keep=_of_kind("landmark"))


def require_identity_backbone(name: str, **options) -> None:
    """The files identity backbone ``name`` needs are on disk, or MissingWeightsError (file, folder, how to get
    it); an unknown name is InputError with a hint. Nothing heavy is loaded."""
    # preflight (issue 31): the entry's meta["require"] is the "module:attr" of a ``require(**options)`` next to the
    # backbone; a backbone with no files (vgg_scratch trains from scratch) declares none
    require = IDENTITY_BACKBONES.entry(name).meta.get("require")
    if require:
        resolve(require)(**options)


# ``table[name]`` imported from its "module:attr" string, unknown names -> InputError with a hint
# (the one implementation is :func:`w2p_eval.names.lookup`; this name is kept for its callers).
resolve_name = lookup


def load_identity_backbone(name: str, device: str = "cpu", **options):
    """The identity backbone called ``name`` on ``device`` (weights loaded from disk, never downloaded)."""
    return lookup(IDENTITY_BACKBONES, name, "identity backbone")(device=device, **options)


def parse_backbones(value) -> tuple[str, ...]:
    """``"dlib_resnet,faceres"`` (or a list of names) -> ("dlib_resnet", "faceres"): the identity judges of one
    evaluation, the first the primary one (:meth:`Registry.parse_list`)."""
    return IDENTITY_BACKBONES.parse_list(value, "dlib_resnet,faceres")
