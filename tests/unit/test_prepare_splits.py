"""Split protocols: seen keeps segments/faces whole, unseen is identity-disjoint; seeded; checked."""

from __future__ import annotations

import pandas as pd
import pytest

from w2p_eval.data.splits import assign_splits, check_splits, unseen_test_identities
from w2p_eval.errors import InputError


def _frame(n_ids=5, segs=5, faces=2, copies=3):
    rows = []
    for i in range(n_ids):
        for s in range(segs):
            for f in range(faces):
                for c in range(copies):
                    rows.append(dict(identity=f"id{i}", segment_id=f"id{i}-s{s}", face_id=f"id{i}-s{s}-f{f}",
                                     pair_id=f"id{i}-s{s}-f{f}-c{c}"))
    return pd.DataFrame(rows)


def test_seen_split_moves_whole_segments_and_keeps_every_speaker():
    df = assign_splits(_frame(), seed=3, test_fraction=0.2)
    assert check_splits(df) == []
    per_id = df.groupby("identity")["split_seen"].agg(set)
    assert all(s == {"train", "test"} for s in per_id)  # same speakers in both
    # 1 of 5 segments per identity is test: 6 of 30 pairs
    assert (df.groupby("identity")["split_seen"].apply(lambda s: (s == "test").sum()) == 6).all()


def test_unseen_split_is_identity_disjoint_and_at_least_one():
    df = assign_splits(_frame(n_ids=5), seed=0, test_fraction=0.2)
    test_ids = set(df.loc[df.split_unseen == "test", "identity"])
    train_ids = set(df.loc[df.split_unseen == "train", "identity"])
    assert len(test_ids) == 1 and not (test_ids & train_ids) and len(train_ids) == 4
    assert len(unseen_test_identities(["a", "b"], seed=0, test_fraction=0.01)) == 1
    assert len(unseen_test_identities(["a", "b", "c"], seed=0, test_fraction=0.99)) == 2  # keeps one for training


def test_splits_are_deterministic_per_seed_and_vary_with_it():
    a = assign_splits(_frame(n_ids=10), seed=1)
    b = assign_splits(_frame(n_ids=10), seed=1)
    pd.testing.assert_frame_equal(a, b)
    choices = {tuple(assign_splits(_frame(n_ids=10), seed=s).query("split_unseen == 'test'").identity.unique())
               for s in range(6)}
    assert len(choices) > 1


def test_single_segment_identity_stays_in_train_and_keep_seen():
    df = _frame(n_ids=2, segs=1)
    out = assign_splits(df, seed=0)
    assert set(out.split_seen) == {"train"}
    df["split_seen"] = ["test" if "id1" in x else "train" for x in df.identity]
    kept = assign_splits(df, seed=0, keep_seen=True)
    assert list(kept.split_seen) == list(df.split_seen)


def test_check_splits_finds_each_violation():
    df = assign_splits(_frame(), seed=0)
    bad = df.copy()
    i = bad.index[bad.split_seen == "test"][0]
    same_face = bad.index[(bad.face_id == bad.at[i, "face_id"]) & (bad.index != i)][0]
    bad.loc[same_face, "split_seen"] = "train"
    problems = check_splits(bad)
    assert any("face_id" in p for p in problems) and any("segment_id" in p for p in problems)
    bad = df.copy()
    bad.loc[bad.index[0], "split_unseen"] = "test" if bad.at[bad.index[0], "split_unseen"] == "train" else "train"
    assert any("unseen" in p for p in check_splits(bad))
    # overlapping audio intervals of one source across the seen split
    t = pd.DataFrame(dict(identity=["a", "a"], face_id=["f1", "f2"], segment_id=["s1", "s2"],
                          split_seen=["train", "test"], split_unseen=["train", "test"], source=["v.mp4"] * 2,
                          source_audio_start=[0.0, 0.5], audio_duration=[1.0, 1.0]))
    assert any("overlapping audio" in p for p in check_splits(t))
    t["source_audio_start"] = [0.0, 1.0]
    assert not any("overlapping" in p for p in check_splits(t))


def test_bad_test_fraction_is_input_error():
    with pytest.raises(InputError, match="test-fraction"):
        assign_splits(_frame(), seed=0, test_fraction=1.0)
