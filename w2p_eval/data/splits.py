"""Split protocols, stored in the manifest (never reshuffled at load time).

- ``split_seen``: the same speakers in train and test; test takes whole source segments
  (``segment_id``), so a face (``face_id``) and the audio around it never straddle the split.
- ``split_unseen``: identity-disjoint; a seeded choice of test identities (at least one).

Both are seeded with local generators: same manifest + seed -> same splits.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np

from w2p_eval.errors import InputError

log = logging.getLogger(__name__)

SPLIT_VALUES = ("train", "test")


def _n_test(n: int, fraction: float) -> int:
    """round(fraction * n), at least 1 and at most n - 1 (when n >= 2); 0 when n < 2."""
    if n < 2:
        return 0
    return int(min(n - 1, max(1, round(fraction * n))))


def _stable(name: str) -> int:
    return zlib.crc32(name.encode())


def unseen_test_identities(identities, seed: int, test_fraction: float = 0.2) -> list[str]:
    """Seeded choice of the unseen-protocol test identities (sorted; at least one)."""
    ids = sorted(set(identities))
    if not ids:
        return []
    n = _n_test(len(ids), test_fraction) if len(ids) > 1 else 1
    rng = np.random.default_rng([seed, 1])
    return sorted(ids[i] for i in rng.choice(len(ids), size=n, replace=False))


def assign_splits(df, seed: int, test_fraction: float = 0.2, keep_seen: bool = False):
    """Return a copy of ``df`` with ``split_seen`` and ``split_unseen`` columns.

    ``df`` needs ``identity``, ``face_id`` and ``segment_id``. Seen: per identity, a seeded
    ``test_fraction`` of its segments (at least one when it has two or more; an identity with a
    single segment stays in train). Unseen: ``unseen_test_identities``. ``keep_seen=True`` keeps
    an existing valid ``split_seen`` column (e.g. the authors' split of the WAV2PIX release).
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"expected --test-fraction strictly between 0 and 1, got {test_fraction}")
    df = df.copy()
    for col in ("identity", "face_id", "segment_id"):
        if col not in df.columns:
            raise ValueError(f"assign_splits needs column {col!r}")
    if len(df) == 0:
        df["split_seen"], df["split_unseen"] = [], []
        return df
    keep = keep_seen and "split_seen" in df.columns and set(df["split_seen"]) <= set(SPLIT_VALUES)
    if not keep:
        seen = {}
        for name, rows in df.groupby("identity", sort=True):
            segments = sorted(set(rows["segment_id"]))
            rng = np.random.default_rng([seed, 2, _stable(str(name))])
            n = _n_test(len(segments), test_fraction)
            test = set(segments[i] for i in rng.choice(len(segments), size=n, replace=False)) if n else set()
            if not test:
                log.info("identity %s has one source segment: all of it goes to seen-train", name)
            seen.update({seg: ("test" if seg in test else "train") for seg in segments})
        df["split_seen"] = df["segment_id"].map(seen)
    test_ids = set(unseen_test_identities(df["identity"], seed, test_fraction))
    if len(test_ids) == df["identity"].nunique():
        log.warning("only one identity: the unseen protocol has no training identities")
    df["split_unseen"] = np.where(df["identity"].isin(test_ids), "test", "train")
    return df


def _straddling(df, key: str, col: str) -> list[str]:
    counts = df.groupby(key)[col].nunique()
    return sorted(map(str, counts[counts > 1].index))


def check_splits(df) -> list[str]:
    """Every violation of the split contract in a manifest (empty list when it is sound).

    Checks: unseen train/val/test identities disjoint and test non-empty; seen-protocol face_id and
    segment_id never in both splits; when ``source_audio_start`` exists, no seen-train audio
    interval overlaps a seen-test interval of the same source.
    """
    problems = []
    test_ids = set(df.loc[df["split_unseen"] == "test", "identity"])
    shared = df.groupby("identity")["split_unseen"].nunique()
    if (shared > 1).any():  # train, val (where a protocol has one) and test are identity-disjoint
        problems.append(f"unseen: identities in more than one split: {sorted(map(str, shared[shared > 1].index))}")
    if len(df) and not test_ids:
        problems.append("unseen: no test identity")
    for key in ("face_id", "segment_id"):
        bad = _straddling(df, key, "split_seen")
        if bad:
            problems.append(f"seen: {key} in both splits: {bad[:5]}")
    if "source_audio_start" in df.columns:
        known = df[df["source_audio_start"].notna()]
        for source, rows in known.groupby("source"):
            spans = {
                split: sorted(zip(r["source_audio_start"], r["source_audio_start"] + r["audio_duration"]))
                for split, r in rows.groupby("split_seen")
            }
            for a0, a1 in spans.get("train", []):
                for b0, b1 in spans.get("test", []):
                    if a0 < b1 - 1e-6 and b0 < a1 - 1e-6:
                        problems.append(f"seen: overlapping audio in {source}: train {a0:.2f}-{a1:.2f} s, test {b0:.2f}-{b1:.2f} s")
                        break
    return problems
