"""Bad input to `w2p-eval prepare`: one line on stderr and exit code 2, or a counted skip; never a traceback."""

from __future__ import annotations

import pickle
import subprocess
import sys

import soundfile as sf
from PIL import Image

from tests.helpers import run_cli
from tests.unit.prepare_media import portrait, tone


def prepare(capsys, *argv: str) -> tuple[int, str, str]:
    """``w2p-eval prepare ARGV`` in this process -> (exit code, stdout, stderr)."""
    return run_cli(["prepare", *argv], capsys)


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w2p-eval: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def _bad_cases(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no videos here")
    (tmp_path / "a_file.mp4").write_bytes(b"x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("do not overwrite")
    (tmp_path / "badmap.csv").write_text("video,speaker\na.mp4,s1\n")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "train_faces.pkl").write_bytes(pickle.dumps([Evil()]))
    (tmp_path / "dict").mkdir()
    (tmp_path / "dict" / "train_faces.pkl").write_bytes(pickle.dumps({"faces": []}))
    (tmp_path / "unequal").mkdir()
    (tmp_path / "unequal" / "train_faces.pkl").write_bytes(pickle.dumps(["train/a/cropped_face_frame_1.png"]))
    (tmp_path / "unequal" / "train_audios.pkl").write_bytes(pickle.dumps([]))
    short = tmp_path / "short" / "amy"
    short.mkdir(parents=True)
    Image.fromarray(portrait(64)).save(short / "a.png")
    sf.write(short / "a.wav", tone(0.2), 16000)
    v = tmp_path / "vids"
    v.mkdir()
    (v / "x.mp4").write_bytes(b"x")
    out = tmp_path / "out"
    return [
        (["videos", tmp_path / "missing", "--out", out], ["missing path"]),
        (["videos", tmp_path / "a_file.mp4", "--out", out], ["got a file"]),
        (["videos", tmp_path / "empty", "--out", out], ["empty folder"]),
        (["videos", tmp_path / "notes", "--out", out], ["expected video files"]),
        (["videos", v, "--out", out, "--mapping", tmp_path / "nomap.csv"], ["--mapping"]),
        (["videos", v, "--out", out, "--mapping", tmp_path / "badmap.csv"], ["file,identity", "video"]),
        (["videos", v, "--out", out, "--k", "0"], ["--k"]),
        (["videos", v, "--out", tmp_path / "taken"], ["new or empty folder"]),
        (["videos", v, "--out", out], ["usable", "unreadable video"]),  # every video broken -> no pairs
        (["wav2pix-release", tmp_path / "notes", "--out", out], ["cropped_face_frame_N.png"]),
        (["wav2pix-release", tmp_path / "evil", "--out", out], ["unsafe or unreadable pickle"]),
        (["wav2pix-release", tmp_path / "dict", "--out", out], ["list of path strings", "dict"]),
        (["wav2pix-release", tmp_path / "unequal", "--out", out], ["equal length"]),
        (["wav2pix-release", tmp_path / "a_file.mp4", "--out", out], ["pickle"]),
        (["folder", tmp_path / "notes", "--out", out], ["<identity>/<stem>.png|jpg"]),
        (["folder", tmp_path / "short", "--out", out], ["wav shorter than 1 s"]),
        (["demo", "--out", out, "--identities", "1"], ["--identities"]),
        (["demo", "--out", out, "--test-fraction", "1.5"], ["--test-fraction"]),
        (["demo", "--out", out, "--seed", "abc"], ["--seed"]),
        (["vidoes", tmp_path, "--out", out], ["vidoes"]),
        (["videos", tmp_path / "notes"], ["--out"]),
    ]


def test_bad_inputs_are_one_line_exit_2(tmp_path, capsys):
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 10
    for argv, needles in cases:
        code, out, err = prepare(capsys, *argv)
        assert_one_line_error(code, err, *needles)
        assert "code ran" not in out
        assert not (tmp_path / "out").exists(), argv  # nothing half-written
    assert (tmp_path / "taken" / "keep.txt").read_text() == "do not overwrite"
    assert not list(tmp_path.glob(".out.partial-*"))


def test_per_item_failures_are_counted_skips(tmp_path, capsys):
    src = tmp_path / "src" / "amy"
    src.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(portrait(64, shift=k)).save(src / f"ok{k}.png")
        sf.write(src / f"ok{k}.wav", tone(1.0), 16000)
    (src / "corrupt.png").write_bytes(b"\x89PNG broken")
    sf.write(src / "corrupt.wav", tone(1.0), 16000)
    (src / "bad_audio.png").write_bytes((src / "ok0.png").read_bytes())
    (src / "bad_audio.wav").write_bytes(b"RIFF....WAVEjunk")
    code, out, err = prepare(capsys, "folder", tmp_path / "src", "--out", tmp_path / "data")
    assert code == 0 and "Traceback" not in err
    assert "3 pairs" in out and "skipped 2 items" in out
    assert "1 unreadable image" in out and "1 unreadable audio" in out
    log = (tmp_path / "data" / "prepare.log").read_text()
    assert "amy/corrupt.png\tunreadable image" in log and "amy/bad_audio.wav\tunreadable audio" in log


def test_console_script_one_line_error(tmp_path):
    """The installed entry point itself (a real process): one stderr line, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", "prepare", "folder", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "missing path" in proc.stderr and proc.stdout == ""
