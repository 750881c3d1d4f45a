"""`prepare voxceleb` on synthetic trees in the exact VoxCeleb layouts (tiny wav/m4a, rendered JPEG faces)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_cli, snapshot
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.identity_meta import identity_genders
from w2p_eval.data.splits import check_splits
from w2p_eval.data.voxceleb_meta import join_meta, read_meta, split_counts, split_of
from w2p_eval.data.voxceleb_synth import make_voxceleb_tree, write_meta


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_voxceleb_tree(tmp_path_factory.mktemp("vox") / "tree", 12, videos=2, utterances=2, faces=3)


def _prepare(tree, out, *extra):
    return run_cli(["prepare", "voxceleb", "--audio", tree["audio"], "--faces", tree["faces"], "--meta", tree["meta"],
                    "--out", out, *extra])


def test_split_rules_on_meta_rows(tmp_path):
    """sf2f: row i -> test when i mod 10 = 8, val when 9; wen: first letter A-E test; official: the Set column."""
    meta = write_meta(tmp_path / "vox1_meta.csv", "vox1", [
        _row(f"{c}name{i}", f"id{10001 + i}", "test" if i == 3 else "dev", i) for i, c in enumerate("AFEZBQCDXYMN")])
    f = read_meta(meta)
    assert [split_of("sf2f", r) for r in f.rows] == ["train"] * 8 + ["test", "val", "train", "train"]
    assert [split_of("wen", r) for r in f.rows][:4] == ["test", "train", "test", "train"]
    assert split_counts("official", f.rows) == {"train": 11, "test": 1}
    assert f.layout == "vox1" and not f.published and len(f.sha256) == 64


def _row(name, vox, set_, i):
    from w2p_eval.data.voxceleb_meta import MetaRow

    return MetaRow(name, vox, name, None, "mf"[i % 2], "Nowhere", set_, "x", i)


def test_prepare_wen_split_pairs_metadata_and_seen_split(tree, tmp_path):
    res = _prepare(tree, tmp_path / "d", "--split", "wen", "--seed", "3")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "d"
    df = pd.read_csv(out / "manifest.csv")
    info = json.loads((out / "dataset.json").read_text())
    assert check_splits(df) == []
    # every pair is a 1 s window of an utterance paired with a face of the same speaker
    assert (df["audio_duration"] == 1.0).all() and (df["face_source"].str.split("/").str[0] == df["identity"]).all()
    by_first = df.groupby("identity")["split_unseen"].first()
    assert all((s == "test") == (n[0] <= "E") for n, s in by_first.items())
    seen = df.groupby("face_id")["split_seen"].nunique()
    assert (seen == 1).all()  # no face straddles the seen split, nor a video (check_splits)
    assert info["split_rule"]["name"] == "wen" and info["split_rule"]["meta"][0]["sha256"]
    assert info["meta_order"] == [r.identity for r in tree["rows"] if r.identity in set(df["identity"])]
    genders, source = identity_genders(info)
    assert set(genders) == set(info["identities"]) and source == "vox1_meta.csv"
    assert info["identity_meta"]["attributes"]["nationality"]["source"] == "vox1_meta.csv"
    again = _prepare(tree, tmp_path / "d2", "--split", "wen", "--seed", "3")
    assert again.returncode == 0
    assert (tmp_path / "d2" / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()


def test_sf2f_needs_the_published_meta_and_gains_val(tree, tmp_path):
    refused = _prepare(tree, tmp_path / "d", "--split", "sf2f")
    assert refused.returncode == 2 and "--allow-other-meta" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()
    ok = _prepare(tree, tmp_path / "d", "--split", "sf2f", "--allow-other-meta")
    assert ok.returncode == 0, ok.stderr
    df = pd.read_csv(tmp_path / "d" / "manifest.csv")
    assert set(df["split_unseen"]) == {"train", "val", "test"} and check_splits(df) == []
    val = PairDataset(tmp_path / "d", "val", "unseen")
    train, test = PairDataset(tmp_path / "d", "train", "unseen"), PairDataset(tmp_path / "d", "test", "unseen")
    assert len(val) and len(train) + len(test) + len(val) == len(df)
    assert not set(val.df["identity"]) & (set(train.df["identity"]) | set(test.df["identity"]))


@pytest.mark.parametrize("layout,audio,meta_layout", [("vggface2", "m4a", "vox2"), ("hq", "wav", "vox2"),
                                                      ("frames", "wav", "vox1")])
def test_every_face_layout(tmp_path, layout, audio, meta_layout):
    t = make_voxceleb_tree(tmp_path / "t", 4, layout=layout, audio=audio, meta_layout=meta_layout, videos=2,
                           utterances=1, faces=2, seed=1)
    if audio == "m4a":  # a corrupt m4a is a counted skip
        next(t["audio"].rglob("*.m4a")).write_bytes(b"\x00\x00\x00\x18ftypM4A garbage")
    hq = ["--faces-layout", "hq"] if layout == "hq" else []  # name-keyed photos are read as vggface1 otherwise
    res = run_cli(["prepare", "voxceleb", "--audio", t["audio"], "--faces", t["faces"], "--meta", t["meta"],
                   "--split", "official", "--out", tmp_path / "d", *hq])
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "d" / "dataset.json").read_text())
    df = pd.read_csv(tmp_path / "d" / "manifest.csv")
    assert info["faces_layout"] == layout and len(info["identities"]) >= 3 and check_splits(df) == []
    assert df["source"].str.endswith(f".{audio}").all()
    if audio == "m4a":
        assert "unreadable audio" in (tmp_path / "d" / "prepare.log").read_text()
    if layout == "frames":  # a video's frames and its audio stay on one side of the seen split
        face_video = df["face_source"].str.split("/").str[2]
        audio_video = df["source"].str.split("/").str[1]
        side = {}
        for ident, fv, av, s in zip(df["identity"], face_video, audio_video, df["split_seen"]):
            for v in (fv, av):
                assert side.setdefault((ident, v), s) == s


def test_bad_items_are_counted_skips(tree, tmp_path):
    t = make_voxceleb_tree(tmp_path / "t", 5, utterances=1, faces=2, seed=2)
    first, second = t["rows"][0], t["rows"][1]
    (t["faces"] / first.identity / "0001.jpg").write_bytes(b"not a jpeg")
    wav = next((t["audio"] / second.vox_id).rglob("*.wav"))
    wav.write_bytes(b"RIFF garbage")
    (t["audio"] / "id99999" / "ytx").mkdir(parents=True)
    (t["audio"] / "id99999" / "ytx" / "00001.wav").write_bytes(wav.read_bytes())
    (t["faces"] / "Nobody_Known").mkdir()
    (t["audio"] / t["rows"][2].vox_id).rename(tmp_path / "moved")  # faces only
    (t["audio"] / t["rows"][2].vox_id).mkdir()  # ... and an empty identity folder
    res = run_cli(["prepare", "voxceleb", "--audio", t["audio"], "--faces", t["faces"], "--meta", t["meta"],
                   "--split", "official", "--out", tmp_path / "d"])
    assert res.returncode == 0, res.stderr
    log = (tmp_path / "d" / "prepare.log").read_text()
    for reason in ("unreadable image", "unreadable audio", "audio id not in the meta files",
                   "face folder not in the meta files", "empty identity folder", "identity with faces but no audio"):
        assert reason in log, reason


def test_bad_input_is_one_line_and_writes_nothing(tree, tmp_path):
    before = snapshot(tree["audio"].parent)
    garbled = tmp_path / "garbled.csv"
    garbled.write_bytes(b"\xff\xfe\x00garbage\x00")
    foreign = tmp_path / "other.csv"
    foreign.write_text("name,gender\nA,m\n")
    nolayout = tmp_path / "nolayout"
    (nolayout / "x").mkdir(parents=True)
    (nolayout / "x" / "notes.txt").write_text("hi")
    cases = [
        (["--meta", tmp_path / "missing.csv"], "missing path"),
        (["--meta", garbled], "UTF-8"),
        (["--meta", foreign], "expected a VoxCeleb meta file"),
        (["--meta", tree["meta"], "--faces", nolayout], "matches none"),
        (["--meta", tree["meta"], "--audio", tmp_path / "nowhere"], "missing path"),
    ]
    for extra, text in cases:
        argv = ["prepare", "voxceleb", "--audio", tree["audio"], "--faces", tree["faces"], "--split", "wen",
                "--out", tmp_path / "d"]
        res = run_cli(argv + [str(x) for x in extra])
        assert res.returncode == 2 and text in res.stderr, (extra, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()
    assert snapshot(tree["audio"].parent) == before


def test_join_keeps_a_repeated_name_apart(tmp_path):
    a = write_meta(tmp_path / "a.csv", "vox1", [_row("Same_Name", "id10001", "dev", 0)])
    b = write_meta(tmp_path / "b.csv", "vox1", [_row("Same_Name", "id10002", "dev", 0),
                                                _row("Other", "id10001", "dev", 1)])
    m = join_meta([read_meta(a), read_meta(b)])
    assert [r.identity for r in m.rows] == ["Same_Name", "Same_Name (id10002)"]
    assert m.skipped == [("b.csv row 1", "VoxCeleb id id10001 listed again")]
    assert np.array_equal(sorted(m.by_vox_id), ["id10001", "id10002"])
