"""Issue 23 beside the hostile-input table: what a refusal cannot show there (a re-run onto a command's own
single-file output is accepted, API arrays are refused or converted with a note, oversized faces are counted
skips, captions are escaped, a store on a read-only mount is an environment failure)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.helpers import astronaut, run_cli, snapshot
from w2p_eval.errors import InputError


# -- single-file outputs -----------------------------------------------------------------------------
def test_a_single_file_output_is_rewritten_only_when_the_verb_wrote_it(tmp_path):
    from w2p_eval.outdir import claim_file, json_of_format, text_starting_with

    ours = tmp_path / "cmp.json"
    ours.write_text(json.dumps({"format": "w2p-eval-compare", "metrics": []}))
    assert claim_file(ours, "compare", ours=json_of_format("w2p-eval-compare")) == ours
    assert claim_file(tmp_path / "new.json", "compare", ours=json_of_format("w2p-eval-compare"))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "w2p-eval-testlist"}))
    with pytest.raises(InputError, match="which it did not write"):
        claim_file(other, "compare", ours=json_of_format("w2p-eval-compare"))
    with pytest.raises(InputError, match="an input of this command"):
        claim_file(ours, "compare", ours=json_of_format("w2p-eval-compare"), inputs=[tmp_path / "." / "cmp.json"])
    csv = tmp_path / "per.csv"
    csv.write_text("image,detected\nx,True\n")
    assert claim_file(csv, "landmarks", ours=text_starting_with("image,detected"))
    with pytest.raises(InputError):
        claim_file(csv, "landmarks", ours=text_starting_with("image,detected,note"))


def test_landmarks_per_image_csv_can_be_rewritten_by_landmarks(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(astronaut()[::2, ::2]).save(folder / "a.png")
    per_image = tmp_path / "per_image.csv"
    argv = ["landmarks", "--images", str(folder), "--per-image", str(per_image)]
    assert run_cli(argv, capsys).returncode == 0
    first = per_image.read_text()
    from w2p_eval.metrics.landmarks import PER_IMAGE_HEADER

    assert first.splitlines()[0] == PER_IMAGE_HEADER
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert per_image.read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "per_image.csv"]  # no temp file left


# -- ownership markers -------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["/etc/passwd", "../x", "a/../../x", "link/f.txt", "", 3])
def test_a_marker_naming_anything_outside_its_folder_is_not_trusted(tmp_path, entry):
    from w2p_eval.outdir import claim, read_marker

    out = tmp_path / "R"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (out / ".w2p-eval.json").write_text(json.dumps({"command": "report", "files": ["report.md", entry]}))
    assert read_marker(out) is None
    with pytest.raises(InputError, match="not trusted"):
        claim(out, "report")
    (out / ".w2p-eval.json").write_text(json.dumps({"command": "report", "files": ["report.md", "tables/a.csv"]}))
    assert read_marker(out)["files"] == ["report.md", "tables/a.csv"]


# -- images ------------------------------------------------------------------------------------------
def test_oversized_faces_are_skipped_from_their_header_and_counted(tmp_path, caplog):
    from w2p_eval.models.sources import FACE_MAX_SIDE, read_faces

    folder = tmp_path / "faces"
    folder.mkdir()
    small = [folder / f"p{k}.png" for k in range(3)]
    for f in small:
        Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(f)
    big = folder / "big.png"
    Image.new("RGB", (FACE_MAX_SIDE + 1, FACE_MAX_SIDE + 1)).save(big)
    with caplog.at_level(logging.WARNING):
        faces, keep = read_faces([small[0], big, None, small[1], small[2]], folder)
    assert faces.shape == (3, 64, 64, 3) and keep.tolist() == [True, False, False, True, True]
    assert f"larger than {FACE_MAX_SIDE} px" in caplog.text


def test_the_pixel_limit_is_read_before_decoding(tmp_path):
    from w2p_eval.data.images import MAX_IMAGE_PIXELS, ImageTooLarge, load_image_rgb, open_image

    path = tmp_path / "wide.png"
    Image.new("1", (MAX_IMAGE_PIXELS // 1000 + 1, 1000)).save(path)  # 1 bit per pixel: a few kB on disk
    with pytest.raises(ImageTooLarge):
        open_image(path)
    with pytest.raises(InputError, match="at most"):
        load_image_rgb(path)


# -- the Python API ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs(tiny_data):
    import w2p_eval

    return tiny_data, w2p_eval.test_pairs(tiny_data)["pair_id"].tolist()


@pytest.mark.parametrize("faces, match", [
    (lambda n: np.full((n, 64, 64, 3), 200.0, np.float32), r"in \[0, 1\].*0-255"),
    (lambda n: np.full((n, 64, 64, 3), -0.5, np.float32), r"\[-1, 1\]"),
    (lambda n: np.full((n, 64, 64, 3), np.nan, np.float32), "NaN"),
    (lambda n: np.full((n, 64, 64, 3), 300, np.int64), "0-255"),
    (lambda n: np.ones((n, 64, 64, 3), bool), "dtype bool"),
])
def test_api_refuses_faces_outside_the_accepted_ranges(pairs, faces, match):
    import w2p_eval

    data, ids = pairs
    with pytest.raises(InputError, match=match):
        w2p_eval.evaluate_faces(faces(len(ids)), ids, data=data, metrics=("identity",))


def test_api_converts_integer_faces_with_a_note(caplog):
    from w2p_eval.models.faces_io import as_uint8_faces

    ints = np.arange(4 * 8 * 8 * 3, dtype=np.int64).reshape(4, 8, 8, 3) % 256
    with caplog.at_level(logging.WARNING):
        out = as_uint8_faces(ints)
    assert out.dtype == np.uint8 and np.array_equal(out, ints.astype(np.uint8))
    assert "read as 0-255" in caplog.text
    floats = np.full((2, 3, 8, 8), 1.0 + 0.4 / 255, np.float32)  # rounding noise above 1 is kept, as white
    assert (as_uint8_faces(floats) == 255).all()


# -- report text -------------------------------------------------------------------------------------
def test_figure_and_table_captions_are_escaped_in_report_md(tmp_path):
    from w2p_eval.report import render as R

    png = tmp_path / "f.png"
    Image.new("RGB", (4, 4)).save(png)
    md = R.render_markdown("t", [R.figure(png, "run <script>x</script>\nnext | [a](b)")], tmp_path)
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\nnext" not in md and "\\[a\\]" in md


# -- the store on a read-only mount ------------------------------------------------------------------
def _bind_ro(src, dst) -> bool:
    try:
        subprocess.run(["mount", "--bind", str(src), str(dst)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    if subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(dst)], capture_output=True)
        return False
    return True


def test_a_store_on_a_read_only_mount_is_an_environment_failure(tmp_path, tiny_data, capsys):
    from w2p_eval.results import ResultsStore

    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    ResultsStore(src / "r.sqlite").write([{
        "data_hash": "d", "run": "r", "model": "m", "checkpoint": "c", "checkpoint_hash": "h", "epoch": 0,
        "metric": "identity_top1_fake", "split": "test", "protocol": "seen", "seed": 0, "value": 0.5, "n": 6,
        "evaluator": "e", "evaluator_version": "1", "config_hash": "x", "extra": {}}])
    if os.geteuid() != 0 or not _bind_ro(src, ro):
        pytest.skip("needs a read-only bind mount (root and mount permission)")
    try:
        before = snapshot(src)
        code, out, err = run_cli(["results", "--store", str(ro / "r.sqlite")], capsys)  # reading works
        assert code == 0 and "identity_top1_fake" in out
        code, _, err = run_cli(["landmarks", "--real", "--data", str(tiny_data), "--store", str(ro / "r.sqlite"),
                                "--image-size", "16", "--cache-dir", str(tmp_path / "cache")], capsys)
        assert code == 1 and err.count("\n") == 1 and "read-only filesystem" in err, err
        assert snapshot(src) == before
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
