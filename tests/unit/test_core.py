"""Core contracts: manifest round trip, PairDataset items, checkpoints, CLI error convention."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from w2p_eval.data.audio import load_audio, preprocess_wave, write_wav
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.manifest import identities, load_manifest, manifest_hash
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint


def test_manifest_round_trip(tiny_data):
    df = load_manifest(tiny_data)
    assert identities(tiny_data) == ["id00", "id01", "id02"]
    assert len(df) == 18 and set(df.split_seen) == {"train", "test"}
    assert manifest_hash(tiny_data) == manifest_hash(tiny_data)


def test_pair_dataset_item_shapes(tiny_data):
    ds = PairDataset(tiny_data, split="train", image_size=32, audio_seconds=1.0)
    item = ds[0]
    assert item["audio"].shape == (1, 16000) and item["audio"].dtype == torch.float32
    assert item["image"].shape == (3, 32, 32)
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["label"].dtype == torch.long
    unseen = PairDataset(tiny_data, split="test", protocol="unseen")
    assert set(unseen.df.identity) == {"id02"}


def test_too_long_audio_request_is_one_line_error(tiny_data):
    with pytest.raises(InputError, match="at least 2.00 s"):
        PairDataset(tiny_data, audio_seconds=2.0)


def test_preprocess_wave_known_answer():
    x = np.array([0.0, 0.5, -1.0, 0.25], dtype=np.float32)
    y = preprocess_wave(x, 6)
    np.testing.assert_allclose(y, [0.0, 0.5, -1.0 - 0.475, 0.25 + 0.95, -0.2375, 0.0], rtol=1e-6)
    assert not np.isnan(preprocess_wave(np.zeros(10, np.float32), 10)).any()


def test_load_audio_resamples_and_mixes_down(tmp_path):
    import soundfile as sf

    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 44100)
    x = load_audio(tmp_path / "s.wav", duration=1.0)
    assert x.shape == (16000,) and x.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) - 440) <= 1
    write_wav(tmp_path / "short.wav", np.zeros(3000, np.float32))
    with pytest.raises(InputError, match="expected at least 1.00 s"):
        load_audio(tmp_path / "short.wav", duration=1.0)


def test_checkpoint_round_trip_and_refuses_pickled_code(tmp_path):
    state = {"g": {"w": torch.randn(3, 4)}}
    path = save_checkpoint(
        tmp_path / "checkpoints" / "epoch_0002.pt", model="wav2pix", epoch=2, config={"lr": 1e-4},
        identities=["a", "b"], image_size=64, audio_seconds=1.0, state=state,
    )
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["state"]["g"]["w"], state["g"]["w"]) and ckpt["epoch"] == 2
    assert list_checkpoints(tmp_path) == [path]
    evil = tmp_path / "evil.pt"
    torch.save({"format": "w2p-eval-checkpoint", "hook": print}, evil)
    with pytest.raises(InputError, match="refusing to load"):
        load_checkpoint(evil)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="expected a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_cli_help_and_bad_verb_are_one_line():
    out = subprocess.run([sys.executable, "-m", "w2p_eval", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "identity" in out.stdout and "landmarks" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "w2p_eval", "identiy"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "did you mean identity" in bad.stderr


def test_cli_help_imports_nothing_heavy():
    """`w2p-eval --help` must answer in well under 1 s: it may not import torch, numpy, pandas, cv2 or dlib."""
    code = ("import sys\nfrom w2p_eval.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'pandas', 'cv2', 'dlib', 'matplotlib', 'sklearn')"
            " if m in sys.modules)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stderr, out.stderr
    for verb in ("prepare", "train", "identity", "landmarks", "report", "demo"):
        assert verb in out.stdout


def df_full_test_bad(full, bad: set) -> int:
    """How many of the ``bad`` pair ids are in the seen-protocol test split of manifest rows ``full``."""
    return int(((full["split_seen"] == "test") & full["pair_id"].isin(bad)).sum())


def test_unreadable_pairs_are_skipped_counted_and_reported(tmp_path):
    """A corrupt image, a missing wav and a too-short wav are dropped from every load, counted, and the
    command still succeeds and names them in one note at the end."""
    from tests.helpers import make_tiny_dataset
    from w2p_eval.data.manifest import skipped_report

    data = make_tiny_dataset(tmp_path / "data")
    full = load_manifest(data, check_files=False)
    (data / "faces" / "id00-000.png").write_bytes(b"not a png")
    (data / "audio" / "id01-001.wav").unlink()
    write_wav(data / "audio" / "id02-002.wav", np.zeros(4000, np.float32))  # 0.25 s, the row needs 1.2 s
    df = load_manifest(data)
    assert len(df) == len(full) - 3
    assert not {"id00-000", "id01-001", "id02-002"} & set(df["pair_id"])
    line = [x for x in skipped_report() if str(data.resolve()) in x]
    assert len(line) == 1 and "skipped 3 pairs" in line[0]
    assert "audio missing: 1" in line[0] and "audio too short: 1" in line[0] and "image unreadable: 1" in line[0]
    ds = PairDataset(data, split="train", protocol="seen")
    assert len(ds) == int((df["split_seen"] == "train").sum())
    ds[0]  # loads
    res = subprocess.run([sys.executable, "-m", "w2p_eval", "landmarks", "--real", "--data", str(data), "--no-store"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # a command checks (and reports) only the pairs it reads: here the test split's
    bad_test = int(df_full_test_bad(full, {"id00-000", "id01-001", "id02-002"}))
    notes = [x for x in res.stderr.splitlines() if x.startswith(f"w2p-eval: note: skipped {bad_test} pair")]
    assert (len(notes) == 1 if bad_test else not notes) and "Traceback" not in res.stderr
