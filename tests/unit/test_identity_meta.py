"""`prepare --identity-meta`: per-identity labels (gender, age, ...) in dataset.json, checked like any input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.helpers import run_cli
from w2p_eval.data.identity_meta import identity_genders, identity_meta
from w2p_eval.data.manifest import load_info
from w2p_eval.errors import InputError


def _src(root, names=("alice", "bob")):
    for i, name in enumerate(names):
        d = root / name
        d.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((64, 64, 3), 30 * k + 60 * i, np.uint8)).save(d / f"t{k}.png")
            sf.write(d / f"t{k}.wav", np.sin(np.arange(20000) / (9 + i)).astype(np.float32) * 0.3, 16000)
    return root


def _csv(path, text):
    path.write_text(text)
    return path


def test_prepare_folder_writes_checked_labels(tmp_path, capsys):
    src = _src(tmp_path / "src")
    meta = _csv(tmp_path / "meta.csv", "identity,gender,age,ethnicity,gender_source\n"
                                       "alice,Female,31,,by eye\nbob,m,40.5,x,\n")
    code, out, err = run_cli(["prepare", "folder", src, "--out", tmp_path / "data", "--identity-meta", meta], capsys)
    assert code == 0, err
    assert "identity meta: gender 2/2 (f 1, m 1), age 2/2, ethnicity 1/2" in out
    info = load_info(tmp_path / "data")
    got = identity_meta(info)
    assert got["identities"] == {"alice": {"gender": "f", "age": 31.0}, "bob": {"gender": "m", "age": 40.5,
                                                                            "ethnicity": "x"}}
    assert got["attributes"]["gender"]["source"] == "by eye; meta.csv"
    assert identity_genders(info) == ({"alice": "f", "bob": "m"}, "by eye; meta.csv")


def test_dataset_without_labels_has_none(tiny_data):
    info = load_info(tiny_data)
    assert identity_meta(info) is None and identity_genders(info) is None


@pytest.mark.parametrize("text, expect", [
    ("identity,gender\nalice,x\nbob,m\n", "expected gender f or m at row 2"),
    ("identity,age\nalice,old\nbob,3\n", "expected age as a number of years at row 2"),
    ("identity,age\nalice,nan\nbob,3\n", "(plain decimal digits"),
    ("identity,age\nalice,131\nbob,3\n", "expected age in [0, 130] years at row 2"),
    ("identity,age\nalice,3_5\nbob,3\n", "(plain decimal digits"),
    ("identity,age\nalice,-0\nbob,3\n", "(plain decimal digits"),
    ("identity,age\nalice,1e1\nbob,3\n", "(plain decimal digits"),
    ("identity,Gender,gender\nalice,f,f\nbob,m,m\n", "distinct, non-empty column names (case does not count)"),
    ("identity,GENDER\nalice,femme\nbob,m\n", "expected gender f or m"),
    ("identity,gender\nalice,f\nbob,m\ncarol,f\n", "got unknown 'carol'"),
    ("identity,gender\nalice,f\n", "metadata for only some identities is refused"),
    ("identity,gender\nalice,f\nalice,m\nbob,m\n", "expected each identity once"),
    ("name,gender\nalice,f\n", "expected a column 'identity'"),
    ("identity\nalice\n", "expected at least one attribute column"),
    ("", "got an empty file"),
    ("identity,gender\nalice,f,extra\n", "expected 2 cells in row 2"),
])
def test_bad_labels_are_one_line_exit_2_and_nothing_written(tmp_path, capsys, text, expect):
    src = _src(tmp_path / "src")
    meta = _csv(tmp_path / "meta.csv", text)
    code, out, err = run_cli(["prepare", "folder", src, "--out", tmp_path / "data", "--identity-meta", meta], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("w2p-eval: error: ") and expect in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_missing_csv_is_refused_before_any_work(tmp_path, capsys):
    code, _, err = run_cli(["prepare", "folder", _src(tmp_path / "src"), "--out", tmp_path / "data",
                            "--identity-meta", tmp_path / "none.csv"], capsys)
    assert code == 2 and "expected --identity-meta to be a CSV file" in err and err.count("\n") == 1


def test_hand_edited_labels_in_dataset_json_are_refused(tiny_data, tmp_path):
    info = json.loads((tiny_data / "dataset.json").read_text())
    info["identity_meta"] = {"attributes": {"gender": {"source": "x"}},
                             "identities": {n: {"gender": "q"} for n in info["identities"]}}
    with pytest.raises(InputError, match="expected gender f or m"):
        identity_meta(info)
    info["identity_meta"]["identities"] = {info["identities"][0]: {"gender": "f"}}
    with pytest.raises(InputError, match="metadata for only some identities"):
        identity_meta(info)


def test_hand_edited_spelled_out_gender_is_read_as_f_or_m(tiny_data):
    """dataset.json edited by hand with "Male"/"female": checked as f/m, and used as f/m (not the raw text)."""
    info = json.loads((tiny_data / "dataset.json").read_text())
    spelled = ["Male", "female"]
    info["identity_meta"] = {"attributes": {"gender": {"source": "by hand"}},
                             "identities": {n: {"gender": spelled[i % 2]} for i, n in enumerate(info["identities"])}}
    genders, source = identity_genders(info)
    assert set(genders.values()) <= {"f", "m"} and source == "by hand"
    assert genders[info["identities"][0]] == "m" and genders[info["identities"][1]] == "f"


def test_column_names_and_values_are_read_case_insensitively(tmp_path, capsys):
    """A `Gender` / `AGE` / `Identity` header is the gender / age / identity column (not free text), and
    documented spellings in any case are f / m."""
    from w2p_eval.data.identity_meta import read_identity_meta_csv

    meta = read_identity_meta_csv(_csv(tmp_path / "m.csv", "Identity,Gender,AGE,Ethnicity\nalice,FEMALE,35,x\n"
                                                           "bob,Man,40.5,y\n"))
    assert set(meta["attributes"]) == {"gender", "age", "ethnicity"}
    assert meta["identities"] == {"alice": {"gender": "f", "age": 35.0, "ethnicity": "x"},
                                  "bob": {"gender": "m", "age": 40.5, "ethnicity": "y"}}


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_directory_or_fifo_is_named_as_such(tmp_path, capsys, kind):
    path = tmp_path / "meta"
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    code, _, err = run_cli(["prepare", "folder", _src(tmp_path / "src"), "--out", tmp_path / "data",
                            "--identity-meta", path], capsys)
    assert code == 2 and err.count("\n") == 1
    assert ("got a directory" if kind == "directory" else "got a FIFO") in err, err


@pytest.mark.parametrize("meta, expect", [
    ("junk", "expected identity_meta as `prepare --identity-meta` writes it"),
    ({"attributes": {"Gender": {"source": "x"}}, "identities": {}}, "got attribute 'Gender'"),
    ({"attributes": {"gender": "x"}, "identities": {}}, "got attribute 'gender'"),
    ({"attributes": {"age": {"source": "x"}}, "identities": {"id00": {"age": "35"}}}, "to be a number"),
    ({"attributes": {"age": {"source": "x"}}, "identities": {"id00": {"height": 3}}}, "use the declared attributes"),
])
def test_dataset_json_identity_meta_not_of_prepares_shape_is_refused_by_every_verb(tiny_data, tmp_path, capsys,
                                                                                   meta, expect):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    info = json.loads((data / "dataset.json").read_text())
    (data / "dataset.json").write_text(json.dumps({**info, "identity_meta": meta}))
    for argv in (["testlist", "--data", data, "--out", tmp_path / "t.json"],
                 ["landmarks", "--real", "--data", data, "--store", tmp_path / "s.sqlite"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and expect in err, err
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "s.sqlite").exists()
