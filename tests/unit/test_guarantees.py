"""Issue 14, one test per guarantee, on real files: output-folder ownership, one writer per folder, stale
staging folders, manifest path containment, skip-and-count of bad content, escaping, collision-free
file names, environment errors, umask, worker cap."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from tests.helpers import MEAN_FACE, REPO, make_tiny_dataset, mean_face_run, run_cli, snapshot
from w2p_eval.results import ResultsStore


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny dataset, a mean_face run on it and a results store with one row whose names are hostile."""
    root = tmp_path_factory.mktemp("guarantees")
    data, _ = mean_face_run(root, "mean_face")
    store = root / "store" / "results.sqlite"
    ResultsStore(store).write([{
        "data_hash": "d", "run": "mean_face", "model": "=cmd|' /C calc'!A0", "checkpoint": "c",
        "checkpoint_hash": "h", "epoch": 0, "metric": "identity_top1_fake", "split": "test", "protocol": "seen",
        "seed": 0, "value": 0.5, "n": 6, "evaluator": "@SUM(1+1)", "evaluator_version": "1", "config_hash": "x",
        "extra": {"per_identity": {"<script>alert(1)</script>": 0.5, "a|b\nc": 0.25, "-2+3": 1.0}}}])
    return {"data": data, "run": root / "mean_face", "store": store}


def report_argv(fitted, out) -> list[str]:
    return ["report", str(fitted["run"]), "--store", str(fitted["store"]), "--out", str(out), "--no-samples"]


# -- output folders --------------------------------------------------------------------------------
def test_report_never_deletes_foreign_files_or_the_store_and_owns_its_reruns(fitted, tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("my own notes, not a w2p-eval report")
    (out / "thesis.tex").write_text("keep")
    store = out / "results.sqlite"
    shutil.copy(fitted["store"], store)
    before = snapshot(out)
    code, _, err = run_cli(["report", str(fitted["run"]), "--store", str(store), "--out", str(out), "--no-samples"],
                           capsys)
    assert code == 2 and err.count("\n") == 1 and "choose another --out" in err
    assert snapshot(out) == before  # store, notes and thesis untouched

    mine = tmp_path / "mine"
    assert run_cli(report_argv(fitted, mine), capsys)[0] == 0
    (mine / "my_notes.txt").write_text("added by the user after the report")
    stale = mine / "tables" / "old_table.csv"  # a file an earlier report wrote but this one does not
    stale.write_text("x")
    marker = (mine / ".w2p-eval.json").read_text().replace('"files": [', '"files": [\n    "tables/old_table.csv",')
    (mine / ".w2p-eval.json").write_text(marker)
    assert run_cli(report_argv(fitted, mine), capsys)[0] == 0
    assert (mine / "my_notes.txt").read_text() == "added by the user after the report"
    assert not stale.exists() and (mine / "report.md").is_file()
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*old*"))


def test_report_out_dot(fitted, tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run_cli(report_argv(fitted, "."), capsys)[0] == 0
    assert (here / "report.html").is_file() and (here / "tables").is_dir()
    assert run_cli(report_argv(fitted, "."), capsys)[0] == 0  # its own folder: re-run in place
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2\n")
    monkeypatch.chdir(foreign)
    code, _, err = run_cli(report_argv(fitted, "."), capsys)
    assert code == 2 and "Traceback" not in err and sorted(p.name for p in foreign.iterdir()) == ["data.csv"]


def test_one_writer_per_run_folder_and_a_dead_writer_holds_nothing(fitted, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from w2p_eval.outdir import FolderLock
        with FolderLock({str(run / '.w2p-eval.lock')!r}, "run"):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["train", MEAN_FACE, "--data", str(fitted["data"]), "--out", str(run)], capsys)
        assert code == 2 and f"pid {holder.pid}" in err and err.count("\n") == 1
        assert not (run / "checkpoints").exists()
    finally:
        holder.kill()  # kill -9: the kernel drops the flock with the process
        holder.wait()
    code, out, err = run_cli(["train", MEAN_FACE, "--data", str(fitted["data"]), "--out", str(run)], capsys)
    assert code == 0, err
    assert (run / "checkpoints" / "epoch_0000.pt").is_file() and not (run / ".w2p-eval.lock").exists()


def test_stale_partial_folders_of_dead_prepares_are_removed(fitted, tmp_path, capsys):
    src = tmp_path / "src" / "alice"
    src.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((64, 64, 3), 40 * k, np.uint8)).save(src / f"t{k}.png")
        sf.write(src / f"t{k}.wav", np.sin(np.arange(20000) / 9).astype(np.float32) * 0.3, 16000)
    stale = tmp_path / ".data.partial-dead1234"
    (stale / "faces").mkdir(parents=True)
    (stale / "faces" / "x.png").write_bytes(b"\x00" * 1000)
    unrelated = tmp_path / ".other.partial-keep"
    unrelated.mkdir()
    code, _, err = run_cli(["prepare", "folder", str(tmp_path / "src"), "--out", str(tmp_path / "data")], capsys)
    assert code == 0, err
    assert not stale.exists() and unrelated.is_dir()
    assert (tmp_path / "data" / "manifest.csv").is_file() and not (tmp_path / ".data.lock").exists()


# -- paths -----------------------------------------------------------------------------------------
def test_manifest_paths_cannot_leave_the_dataset(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(data / "faces" / "id00-000.png", outside / "x.png")
    (data / "faces" / "link.png").symlink_to(outside / "x.png")
    df = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    df.loc[0, "image_path"] = "../outside/x.png"
    df.loc[1, "image_path"] = str(outside / "x.png")
    df.loc[2, "image_path"] = "faces/link.png"
    df.loc[3, "audio_path"] = "../../../../etc/passwd"
    df.loc[4, "audio_path"] = "audio/../../outside/x.wav"
    df.to_csv(data / "manifest.csv", index=False)
    from w2p_eval.data.manifest import load_manifest, skipped_report

    kept = load_manifest(data)
    assert set(df.pair_id[:5]).isdisjoint(kept.pair_id) and len(kept) == len(df) - 5
    assert any("5 manifest rows" in line and "path outside the dataset: 5" in line for line in skipped_report())
    code, _, err = run_cli(["train", MEAN_FACE, "--data", str(data), "--out", str(tmp_path / "run")], capsys)
    assert code == 0
    notes = [ln for ln in err.splitlines() if ln.startswith("w2p-eval: note:")]
    assert len(notes) == 1 and "path outside the dataset: 5" in notes[0]


# -- skip-and-count of content errors --------------------------------------------------------------
def test_bad_content_is_skipped_and_counted_not_fatal(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data")
    df = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    train_rows = df.index[df.split_seen == "train"].tolist()
    # a truncated JPEG stored as .png (the release's own format)
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 99, np.uint8)).save(buf, format="JPEG")
    (data / df.image_path[train_rows[0]]).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    # a PNG whose chunks and CRCs are valid but whose pixel stream is garbage
    png = data / df.image_path[train_rows[1]]
    _garbage_idat(png)
    # one NaN sample in a float wav
    wave = np.sin(np.arange(19200) / 7).astype(np.float32) * 0.4
    wave[500] = np.nan
    sf.write(data / df.audio_path[train_rows[2]], wave, 16000, subtype="FLOAT")
    df.loc[train_rows[3], "audio_start"] = "-0.5"
    df.to_csv(data / "manifest.csv", index=False)
    code, out, err = run_cli(["train", MEAN_FACE, "--data", str(data), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    notes = [ln for ln in err.splitlines() if ln.startswith("w2p-eval: note:")]
    assert any("bad audio offsets: 1" in n for n in notes)
    assert any("image unreadable: 2" in n and "audio not finite: 1" in n for n in notes)


def _garbage_idat(path: Path) -> None:
    """Rewrite the IDAT chunk with random bytes and a correct CRC (the checksum passes, decoding fails)."""
    import struct
    import zlib

    raw = path.read_bytes()
    out, pos = [raw[:8]], 8
    while pos < len(raw):
        n = struct.unpack(">I", raw[pos:pos + 4])[0]
        kind = raw[pos + 4:pos + 8]
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IDAT":
            body = np.random.default_rng(0).bytes(len(body))
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
        pos += 12 + n
    path.write_bytes(b"".join(out))


def test_nan_audio_is_named_as_bad_data(tmp_path):
    from w2p_eval.data.audio import load_audio
    from w2p_eval.errors import InputError

    wav = tmp_path / "x.wav"
    wave = np.zeros(16000, np.float32)
    wave[10] = np.inf
    sf.write(wav, wave, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="bad data"):
        load_audio(wav, 0.0, 1.0)


def test_16_bit_grey_png_keeps_its_brightness(tmp_path):
    from w2p_eval.data.images import load_image_rgb

    grey = np.full((8, 8), 32768, np.uint16)  # mid grey in 16 bits
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = load_image_rgb(tmp_path / "g.png")
    assert img.shape == (8, 8, 3) and 120 <= int(img.mean()) <= 135


# -- escaping and names ----------------------------------------------------------------------------
def test_csv_and_markdown_cells_are_escaped(fitted, tmp_path, capsys):
    out = tmp_path / "rep"
    assert run_cli(report_argv(fitted, out), capsys)[0] == 0
    per_id = (out / "tables" / "per_identity.md").read_text()
    assert "<script>" not in per_id and "&lt;script&gt;" in per_id
    for line in per_id.splitlines():  # every row has the header's number of cells (pipes escaped)
        assert line.replace("\\|", "").count("|") == per_id.splitlines()[0].count("|")
    report_md = (out / "report.md").read_text()
    assert "<script>" not in report_md
    cells = [c for f in (out / "tables").glob("*.csv") for row in pd.read_csv(f, dtype=str).itertuples()
             for c in row[1:] if isinstance(c, str)]
    assert cells and not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    assert not [c for c in cells if c.startswith("-") and not c[1:2].isdigit()]
    code, csv_text, _ = run_cli(["results", "--store", str(fitted["store"]), "--format", "csv"], capsys)
    assert code == 0 and ",'=cmd|' /C calc'!A0," in csv_text.replace('"', "") and ",'@SUM(1+1)" in csv_text


def test_csv_cell_rules():
    from w2p_eval.text import md_cell
    from w2p_eval.utils import csv_cell

    assert csv_cell("=1+1") == "'=1+1" and csv_cell("+x") == "'+x" and csv_cell("@a") == "'@a"
    assert csv_cell("\tx") == "'\tx" and csv_cell("\rx") == "'\rx" and csv_cell("-2+3") == "'-2+3"
    assert csv_cell("-0.5") == "-0.5" and csv_cell("-12.5 ± 1.0") == "-12.5 ± 1.0" and csv_cell(-3) == -3
    assert md_cell("a|b\nc<i>") == "a\\|b c&lt;i&gt;"


def test_generated_file_names_are_collision_free_and_length_safe(fitted, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(fitted["data"], data)
    df = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    test_rows = df.index[df.split_seen == "test"].tolist()
    assert len(test_rows) >= 3
    ids = ["x y", "x_y", "x/y"] + ["p" * 300] * 0
    for row, pid in zip(test_rows, ids):
        df.loc[row, "pair_id"] = pid
    extra = df.loc[test_rows[0]].copy()
    extra["pair_id"] = "é" * 300  # 600 bytes in UTF-8: far beyond NAME_MAX
    df = pd.concat([df, extra.to_frame().T], ignore_index=True)
    df.to_csv(data / "manifest.csv", index=False)
    ckpt = fitted["run"] / "checkpoints" / "epoch_0000.pt"
    code, out, err = run_cli(["generate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp_path / "g")],
                             capsys)
    assert code == 0, err
    man = pd.read_csv(tmp_path / "g" / "manifest.csv", dtype=str, keep_default_na=False)
    assert set(ids + ["é" * 300]) <= set(man.pair_id)
    assert man.image_path.is_unique and all(len(Path(p).name) <= 82 for p in man.image_path)
    assert all((tmp_path / "g" / p).is_file() for p in man.image_path)


# -- environment -----------------------------------------------------------------------------------
def test_disk_full_is_one_line_exit_1_and_leaves_nothing_half_written(fitted, tmp_path):
    """RLIMIT_FSIZE makes every write past 20 kB fail with EFBIG, as a full disk fails with ENOSPC."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        from w2p_eval.cli import main
        main(["train", {MEAN_FACE!r}, "--data", {str(fitted['data'])!r}, "--out", {str(tmp_path / 'run')!r}])
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w2p-eval: error: ") and "Traceback" not in proc.stderr
    ck = tmp_path / "run" / "checkpoints"
    assert not ck.exists() or not list(ck.iterdir())  # no partial checkpoint, no temp file


def test_store_locations_that_cannot_work_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for store in (blocker / "results.sqlite", Path("/proc/w2p/results.sqlite"), tmp_path):
        code, _, err = run_cli(["results", "--store", str(store)], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_files_follow_the_umask(tmp_path):
    from w2p_eval.utils import atomic_write_text, make_temp_dir

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        folder = make_temp_dir(".x.partial-", tmp_path)
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        assert folder.stat().st_mode & 0o777 == 0o755
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_workers_are_capped_to_the_cpus():
    from w2p_eval.utils import cap_workers

    assert cap_workers(1000) == len(os.sched_getaffinity(0))
    assert cap_workers(1) == 1
