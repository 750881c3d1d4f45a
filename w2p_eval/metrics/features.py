"""The declared feature cache: an identity judge's view of a face set, computed once per (judge, face set).

Every suite scored in a judge's face space (``identity``, ``retrieval``, ``distances``, ``matching``) reads
:class:`JudgedFaces` from one :class:`FeatureCache` (``Context.features``), so the network forward runs
once per face and per judge whatever suites run and however many judges an evaluation uses
(``evaluate --backbone dlib_resnet,faceres``). The cache holds the entries of the latest face set only (one
entry per judge): memory stays bounded by one source's faces times the judges.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class JudgedFaces:
    """One judge's outputs on the M rows of a face set it never trained on.

    ``keep`` bool [N]: which of the face set's N rows are scored (M = keep.sum()); ``fake_emb`` /
    ``real_emb`` float32 [M, D] (the judge's face embeddings of generated / paired real faces);
    ``fake_logits`` / ``real_logits`` float32 [M, C] (C = dataset identities); ``labels`` int64 [M];
    ``pair_ids`` / ``face_ids`` [M] str; ``n_distinct_faces``: distinct real face images among the M.
    ``judge`` is the :class:`~w2p_eval.judges.identity.IdentityJudge` that produced them.
    """

    judge: object
    keep: np.ndarray
    fake_emb: np.ndarray
    real_emb: np.ndarray
    fake_logits: np.ndarray
    real_logits: np.ndarray
    labels: np.ndarray
    pair_ids: list[str]
    face_ids: list[str]
    n_distinct_faces: int


def face_set_id(gs) -> str:
    """A content id of a GeneratedSet: sha1 of its generated pixels and pair ids (hex)."""
    digest = hashlib.sha1(np.ascontiguousarray(gs.fake).tobytes())
    digest.update("\0".join(gs.pair_ids).encode())
    return digest.hexdigest()


def judge_faces(judge, gs) -> JudgedFaces:
    """Run ``judge`` once on the rows of ``gs`` it never trained on (real faces through its disk cache)."""
    scored = set(judge.scored_pair_ids)
    keep = np.array([pid in scored for pid in gs.pair_ids], dtype=bool)
    real_emb, real_logits = judge.real_scores(gs.real[keep])
    fake_emb, fake_logits = judge.score(gs.fake[keep])
    face_ids = gs.face_ids or gs.pair_ids
    return JudgedFaces(
        judge=judge, keep=keep, fake_emb=fake_emb, real_emb=real_emb, fake_logits=fake_logits,
        real_logits=real_logits, labels=np.asarray(gs.labels, np.int64)[keep],
        pair_ids=[p for p, k in zip(gs.pair_ids, keep) if k],
        face_ids=[str(f) for f, k in zip(face_ids, keep) if k],
        n_distinct_faces=len({hashlib.sha1(im.tobytes()).digest() for im in np.ascontiguousarray(gs.real[keep])}))


class FeatureCache:
    """(judge key, face set id) -> :class:`JudgedFaces`, each computed once.

    ``judges`` (backbone name, face size) -> trained judge, shared by every source of the evaluation.
    ``computed`` counts the entries computed (not read from the cache), for tests and logs.
    """

    def __init__(self) -> None:
        self.judges: dict[tuple[str, int], object] = {}
        self._face_set: str | None = None
        self._entries: dict[str, JudgedFaces] = {}
        self.computed = 0

    def judge(self, backbone: str, image_size: int, build: Callable[[], object]):
        """The judge of ``backbone`` for faces of ``image_size`` px: ``build()`` on first use."""
        key = (str(backbone), int(image_size))
        if key not in self.judges:
            self.judges[key] = build()
        return self.judges[key]

    def get(self, judge, gs) -> JudgedFaces:
        """``judge``'s view of ``gs``, computed on first use; a new face set drops the previous one's entries."""
        fid = face_set_id(gs)
        if fid != self._face_set:
            self._face_set, self._entries = fid, {}
        if judge.key not in self._entries:
            self._entries[judge.key] = judge_faces(judge, gs)
            self.computed += 1
        return self._entries[judge.key]

    def __len__(self) -> int:
        return len(self._entries)
