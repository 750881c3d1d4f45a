"""Preflight (issue 31): everything an evaluation needs is checked before any face is generated.

:func:`check_requirements` reads a whole plan (the suites, the identity judges and their options, the landmark
backend, the sources) and asks each judge's own small ``require()`` (next to the judge, in ``judges/*.py``)
whether its files are on disk, without loading any network. The first file missing is one
:class:`~w2p_eval.errors.MissingWeightsError` line (the file, where it was looked for, how to get it; exit 2);
with several judges nothing is computed until all of them are available. The dataset's identity metadata is
checked when the dataset is opened (``data/folder.read_info``), so a bad one never reaches a run.

Called once, by :meth:`w2p_eval.evaluation.Evaluation.check`, which every verb that scores (evaluate, identity,
landmarks, compare, demo, ablate-audio) and the Python API go through before any face is generated.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from w2p_eval.data.identity_meta import identity_meta
from w2p_eval.judges import require_identity_backbone
from w2p_eval.judges import faceres, landmarks, voice


def _applies(suite: Any, items: Sequence) -> bool:
    return not items or any(suite.applies(item.model, item.kind) for item in items)


def _speaker_weights(suite: Any, items: Sequence) -> list:
    """The voice-encoder weights each speaker-scored checkpoint names (``config.speaker_weights``; None = the
    packaged file), each once; [None] without items. A speaker_retrieval checkpoint is a small linear head, and
    the item keeps it loaded for its scoring anyway."""
    found = [(item.checkpoint().get("config") or {}).get("speaker_weights")
             for item in items if suite.applies(item.model, item.kind)] if items else [None]
    return list(dict.fromkeys(found))


def requirements(suites: Sequence[Any], opts: Any,
                 items: Sequence = ()) -> list[tuple[str, Callable[[], object]]]:
    """The plan's checks in order, ``[(what, check())]``: each identity judge once (the judged suites), the
    landmark backend, the voice encoder (speaker ID of a speaker_retrieval checkpoint), the attribute judge.
    ``suites``: MetricSuite objects; ``items``: the sources (a suite that applies to none of them needs nothing)."""
    wanted = [s for s in suites if _applies(s, items)]
    checks: list[tuple[str, Callable[[], object]]] = []
    if any(getattr(s, "judged", False) for s in wanted):
        for judge in opts.judges:
            options = opts.for_judge(judge).backbone_options or {}
            checks.append((f"identity judge {judge}",
                           lambda judge=judge, options=options: require_identity_backbone(judge, **options)))
    names = {s.name for s in wanted}
    if names & {"landmarks", "geometry"}:
        for backend in landmarks.parse_backends(opts.backend):  # --backend dlib,facemesh: each landmark judge
            checks.append((f"landmark backend {backend}", lambda backend=backend: landmarks.require(backend)))
    if "speaker" in names:
        for weights in _speaker_weights([s for s in wanted if s.name == "speaker"][0], items):
            checks.append(("speaker voice encoder", lambda weights=weights: voice.require(weights)))
    if "attributes" in names:
        checks.append(("attribute judge", faceres.require))
    return checks


def check_requirements(suites: Sequence[Any], opts: Any, items: Sequence = ()) -> None:
    """Raise (InputError / MissingWeightsError, one line) unless every file the plan needs is on disk and the
    dataset's identity metadata is of the shape ``prepare`` writes. Loads no network and generates nothing."""
    identity_meta(opts.data_dir.info if hasattr(opts.data_dir, "info") else {}, "dataset.json")
    for _, check in requirements(suites, opts, items):
        check()
