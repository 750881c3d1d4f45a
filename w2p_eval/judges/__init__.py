"""Pretrained "judge" networks, loaded lazily by name: nothing heavy is imported until one is asked for.

:data:`JUDGES` (one :class:`~w2p_eval.registry.Registry`; plugins through the ``w2p_eval.judges`` entry-point
group) holds every judge, its ``meta["judge"]`` saying which kind: ``identity`` (a "module:attr" factory
returning an :class:`w2p_eval.judges.identity.IdentityBackbone`), ``landmark`` (a landmark backend class of
:mod:`w2p_eval.judges.landmarks`) or ``attribute``. ``IDENTITY_BACKBONES`` / ``LANDMARK_BACKENDS`` are the
registries of one kind (same entries, filtered). Each judge is declared in its own module
(``REGISTER_JUDGES = (Entry(...),)``), found there without importing it. :func:`load_identity_backbone` resolves
a name and answers an unknown one with "did you mean ...; available: ...". :func:`parse_backbones` reads the
comma list of ``--backbone dlib_resnet,faceres`` (several judges in one evaluation).
"""

from __future__ import annotations

from w2p_eval.errors import InputError
from w2p_eval.names import lookup, resolve, unknown
from w2p_eval.registry import Registry


def _of_kind(kind: str):
    return lambda e: e.meta.get("judge", "identity") == kind  # plugins without the key are identity judges


# every judge declares itself where it is defined (``REGISTER_JUDGES`` in its judges/*.py module, read without
# importing it): meta judge = identity | landmark | attribute, require = "module:attr" of its preflight check
# (files on disk, nothing loaded), spawn = a torch landmark judge whose worker processes are spawned, not forked
_SCAN = {"packages": ("w2p_eval.judges",), "marker": "REGISTER_JUDGES"}
JUDGES = Registry("judge", "w2p_eval.judges", **_SCAN)
IDENTITY_BACKBONES = Registry("identity backbone", "w2p_eval.judges", keep=_of_kind("identity"), **_SCAN)
LANDMARK_BACKENDS = Registry("landmark backend", "w2p_eval.judges", keep=_of_kind("landmark"), **_SCAN)


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
