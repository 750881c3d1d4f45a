"""`prepare wav2pix-release` on a release-style folder: JPEG-in-.png, BGR->RGB, 5 copies -> 1 face, pickles."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from tests.unit.prepare_media import make_release, portrait
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.manifest import load_manifest
from w2p_eval.data.prepare_release import prepare_release, safe_load_path_list
from w2p_eval.data.splits import check_splits
from w2p_eval.errors import InputError


def test_release_layout(tmp_path):
    src = make_release(tmp_path / "rel")
    line = prepare_release(src, tmp_path / "data", seed=0)
    df = load_manifest(tmp_path / "data")
    assert len(df) == 2 * 2 * 4 * 5 and df.face_id.nunique() == 16 and (df.groupby("face_id").size() == 5).all()
    assert line.startswith("80 pairs, 16 faces, 2 identities")
    assert (df.split_seen == df.authors_split).all()  # the authors' split is kept
    assert check_splits(df) == []
    assert len(list((tmp_path / "data" / "faces").iterdir())) == 16  # each face written once
    # colours back to RGB: the stored image equals the original portrait (JPEG tolerance)
    row = df[df.pair_id == "train-alice-000100"].iloc[0]
    got = load_image_rgb(tmp_path / "data" / row.image_path).astype(float)
    want = portrait(200, shift=0).astype(float)
    assert np.abs(got - want).mean() < 6 and np.abs(got - want[..., ::-1]).mean() > 10
    with open(tmp_path / "data" / row.image_path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_single_split_release_uses_tail_with_guard(tmp_path):
    src = make_release(tmp_path / "rel", faces_per_split=10, splits=("test",))
    line = prepare_release(src, tmp_path / "data", seed=0, test_fraction=0.2, guard=1)
    df = load_manifest(tmp_path / "data")
    assert check_splits(df) == []
    # per identity: 2 test faces, 1 guard face dropped, 7 train faces
    counts = df.groupby(["identity", "split_seen"]).face_id.nunique()
    assert counts["alice"]["test"] == 2 and counts["alice"]["train"] == 7
    assert "10 guard face" in line
    assert len(list((tmp_path / "data" / "audio").iterdir())) == len(df)


def _pickles(src, tmp_path, audio_first=False):
    lists = tmp_path / "lists"
    lists.mkdir()
    for split in ("train", "test"):
        faces = sorted(str(p) for p in (src / split).rglob("*.png"))
        audios = [p.replace("cropped_face_frame_", "preprocessed_frame_").replace(".png", ".wav") for p in faces]
        # paths as on the authors' machine: only the trailing split/identity/file exists here
        faces = [f.replace(str(src), "/home/authors/dataset") for f in faces]
        audios = [a.replace(str(src), "/home/authors/dataset") for a in audios]
        with open(lists / f"{split}_faces.pkl", "wb") as fh:
            pickle.dump(faces, fh, protocol=2)
        with open(lists / f"{split}_audios.pkl", "wb") as fh:
            pickle.dump(audios, fh, protocol=2)
    return lists


def test_pickled_path_lists(tmp_path):
    src = make_release(tmp_path / "rel")
    lists = _pickles(src, tmp_path)
    # the pickles live in their own folder beside the data (paths resolve by trailing components)
    (lists / "dataset").symlink_to(src)
    line = prepare_release(lists, tmp_path / "data", seed=0)
    assert line.startswith("80 pairs, 16 faces, 2 identities")
    df = load_manifest(tmp_path / "data")
    assert (df.split_seen == df.authors_split).all() and df.face_id.nunique() == 16
    # a single pickle file as SRC means its folder; files that no longer exist are counted skips
    import shutil

    shutil.rmtree(src / "train" / "bob")
    line = prepare_release(lists / "train_faces.pkl", tmp_path / "data2", seed=0)
    assert line.startswith("60 pairs") and "20 no audio file for the image" in line


def test_restricted_unpickler_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "train_faces.pkl"
    bad.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(InputError, match="unsafe or unreadable pickle"):
        safe_load_path_list(bad)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "d.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputError, match="list of path strings"):
        safe_load_path_list(tmp_path / "d.pkl")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(["a/b.png", b"c/d.png"], protocol=0))
    assert safe_load_path_list(tmp_path / "ok.pkl") == ["a/b.png", "c/d.png"]
