"""Frozen test lists (w2p_eval.metrics.testlist) and the `w2p-eval testlist` verb: round trip, stable id,
refusal of another dataset and of malformed or edited files, impossible G / N."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.helpers import six_identities
from w2p_eval.cli import cli, main
from w2p_eval.data.manifest import load_info, load_manifest, manifest_hash, split_frame, write_dataset
from w2p_eval.metrics.testlist import build_testlist, load_testlist, write_testlist
from w2p_eval.metrics.testlist import testlist_id as content_id  # a "test*" name would be collected
from w2p_eval.errors import InputError


@pytest.fixture(scope="module")
def six_ids(tmp_path_factory) -> Path:
    """6 identities x 8 pairs (4 faces of 2 copies); seen test = faces 2 and 3 of every identity."""
    return six_identities(tmp_path_factory.mktemp("tl") / "data")


def test_build_write_load_round_trip(six_ids, tmp_path):
    content = build_testlist(six_ids, seed=3, gallery_size=4, n_galleries=5)
    assert content["id"] == content_id(content)
    assert content == build_testlist(six_ids, seed=3, gallery_size=4, n_galleries=5)  # deterministic
    assert content["id"] != build_testlist(six_ids, seed=4, gallery_size=4, n_galleries=5)["id"]
    path = write_testlist(content, tmp_path / "tl.json")
    tl = load_testlist(path, six_ids)
    assert tl.id == content["id"] and tl.manifest_hash == manifest_hash(six_ids)
    assert (tl.split, tl.protocol, tl.judge, tl.gallery_size, tl.ks) == ("test", "seen", "dlib_resnet", 4, [1, 2])
    assert len(tl.galleries) == 5 and all(len(set(g)) == 4 for g in tl.galleries)
    assert sorted(tl.matching) == [2, 5]  # 1:10 impossible with 6 identities: left out by default
    test = split_frame(load_manifest(six_ids), "test", "seen")
    assert tl.pair_ids == test["pair_id"].tolist() and len(tl.pair_ids) == 24
    # tuples by pair id, in any evaluated order
    shuffled = list(np.random.default_rng(0).permutation(tl.pair_ids))
    idx, dropped = tl.matching_indices(5, shuffled)
    assert dropped == 0 and idx.shape == (24, 6)
    ident = dict(zip(test["pair_id"], test["identity"]))
    face = dict(zip(test["pair_id"], test["face_id"]))
    for row in idx.tolist():
        probe, true, *imps = [shuffled[i] for i in row]
        assert ident[true] == ident[probe] and face[true] != face[probe]
        assert len({ident[p] for p in imps} | {ident[probe]}) == 5
    labels = tl.gallery_labels(load_info(six_ids)["identities"])
    assert all(g.dtype == np.int64 and len(g) == 4 for g in labels)


def test_refuses_another_dataset(six_ids, tmp_path, tiny_data):
    path = write_testlist(build_testlist(six_ids, gallery_size=3), tmp_path / "tl.json")
    with pytest.raises(InputError, match=r"was made for dataset manifest \w+, got .* with manifest \w+; make one"):
        load_testlist(path, tiny_data)


def test_refuses_malformed_edited_and_other_version(six_ids, tmp_path):
    content = build_testlist(six_ids, gallery_size=3)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="expected a JSON test list"):
        load_testlist(bad)
    bad.write_text(json.dumps({**content, "version": 99}))
    with pytest.raises(InputError, match="expected test list version 1 .* got 99"):
        load_testlist(bad)
    bad.write_text(json.dumps({**content, "format": "w2p-eval-dataset"}))
    with pytest.raises(InputError, match="expected format 'w2p-eval-testlist'"):
        load_testlist(bad)
    edited = json.loads(json.dumps(content))
    edited["retrieval"]["galleries"][0][0], edited["retrieval"]["galleries"][0][1] = "x", "y"
    bad.write_text(json.dumps(edited))
    with pytest.raises(InputError, match="the file was edited"):
        load_testlist(bad)
    missing = {k: v for k, v in content.items() if k != "pairs"}
    missing["id"] = content_id(missing)
    bad.write_text(json.dumps(missing))
    with pytest.raises(InputError, match=r"expected 'pairs' \(list\)"):
        load_testlist(bad)
    with pytest.raises(InputError, match="got missing"):
        load_testlist(tmp_path / "none.json")


def test_impossible_gallery_size_and_matching(six_ids):
    with pytest.raises(InputError, match="gallery size 7 needs at least 7 test identities, got 6"):
        build_testlist(six_ids, gallery_size=7)
    with pytest.raises(InputError, match="1:10 matching needs at least 10 test identities .* got 6; possible: 1:2 to 1:6"):
        build_testlist(six_ids, matching=[2, 10])


def test_cli_writes_atomically_and_reports(six_ids, tmp_path):
    out = tmp_path / "lists" / "release.json"
    res = CliRunner().invoke(cli, ["testlist", "--data", str(six_ids), "--out", str(out), "--gallery-size", "5",
                                   "--n-galleries", "3", "--matching", "2,5", "--judge-setting", "upsample_to=150"])
    assert res.exit_code == 0, res.output
    tl = load_testlist(out, six_ids)
    assert tl.id in res.output and "3 galleries of 5 identities" in res.output and "1:5 24 tuples" in res.output
    assert tl.judge_settings == {"upsample_to": 150}
    assert [p.name for p in out.parent.iterdir()] == ["release.json"]  # no temp file left


def test_cli_bad_input_is_one_line_exit_2(six_ids, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["testlist", "--data", str(six_ids), "--out", str(tmp_path / "x.json"), "--gallery-size", "100"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gallery size 100 needs at least 100 test identities, got 6" in err[0]
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("field, value", [("matching", [1, 2]), ("skipped", ["x"]), ("skipped", {"2": 5}),
                                          ("genders", {"a": "male"}), ("source", 3)])
def test_edited_same_gender_block_is_one_line(six_ids, tmp_path, field, value):
    """An edited list whose id was recomputed: a wrong type in its same_gender block is one line, not a traceback."""
    content = build_testlist(six_ids, gallery_size=3)
    edited = json.loads(json.dumps(content))
    edited["version"] = max(2, int(edited.get("version", 1)))
    edited.setdefault("same_gender", {})[field] = value
    edited["id"] = content_id({k: v for k, v in edited.items() if k != "id"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(edited))
    with pytest.raises(InputError, match=f"same_gender.{field}"):
        load_testlist(bad)


# -- issue 31: a list whose id was recomputed is still checked for what its tuples mean ---------------------
def labelled_six(root: Path) -> Path:
    """``six_identities`` with gender labels (ids 0, 2, 4 f; 1, 3, 5 m) as `prepare --identity-meta` writes them."""
    from tests.helpers import six_identities as make

    data = make(root)
    info = json.loads((data / "dataset.json").read_text())
    info["identity_meta"] = {"attributes": {"gender": {"source": "test"}},
                             "identities": {n: {"gender": "fm"[k % 2]} for k, n in enumerate(info["identities"])}}
    (data / "dataset.json").write_text(json.dumps(info))
    return data


def edited_list(data: Path, out: Path, edit) -> Path:
    """A real list of ``data`` (1:2 and 1:3, same-gender too) edited by ``edit(content)``, id recomputed."""
    content = build_testlist(data, gallery_size=3, n_galleries=2, matching=[2, 3])
    assert content["same_gender"]["matching"], content["same_gender"]
    content["_data"] = str(data)  # for edits that read the manifest; taken out before the id is computed
    edit(content)
    content.pop("_data", None)
    content["id"] = content_id(content)
    out.write_text(json.dumps(content))
    return out


def _cross_gender(c):
    """Swap one same-gender impostor for a pair of the other gender (a 1:2 same-gender tuple)."""
    df = load_manifest(Path(c["_data"]), check_files=False).set_index("pair_id")
    genders = c["same_gender"]["genders"]
    row = c["same_gender"]["matching"]["2"][0]
    want = genders[df.loc[row[0], "identity"]]
    row[2] = next(p for p in c["pairs"] if genders[df.loc[p, "identity"]] != want)


def _tripled(c):
    c["matching"]["2"] = c["matching"]["2"] * 3


def _own_face(c):
    row = c["matching"]["2"][0]
    row[1] = row[0]


def _twin_impostors(c):
    c["matching"]["3"][0][3] = c["matching"]["3"][0][2]


def _foreign_gender(c):
    c["same_gender"]["genders"]["ghost"] = "f"


@pytest.mark.parametrize("edit, expect", [
    (_cross_gender, "whose frozen gender is not the probe's"), (_tripled, "more than one tuple"),
    (_own_face, "the probe's own face as the true candidate"), (_twin_impostors, "two impostors of one identity"),
    (_foreign_gender, "identities the dataset does not have"),
])
def test_edited_list_with_recomputed_id_is_refused_for_its_meaning(tmp_path, capsys, edit, expect):
    data = labelled_six(tmp_path / "data")
    path = edited_list(data, tmp_path / "l.json", edit)
    load_testlist(path, data)  # the id matches: the file itself loads
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path), "--data", str(data), "--metrics", "matching", "--testlist", str(path),
              "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and expect in err, err
    assert not (tmp_path / "s.sqlite").exists()


def test_a_list_as_drawn_passes_the_meaning_checks(tmp_path):
    from w2p_eval.data.folder import open_dataset
    from w2p_eval.metrics.testlist_meaning import meaning_problem

    data = labelled_six(tmp_path / "data")
    tl = load_testlist(edited_list(data, tmp_path / "l.json", lambda c: None), data)
    ds = open_dataset(data)
    assert meaning_problem(tl, ds.split("test", "seen"), list(ds.identities)) is None
