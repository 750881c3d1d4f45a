"""`prepare folder`: identity folders of images + same-stem wavs; resampling, mono, short clips, duplicates."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from PIL import Image

from tests.unit.prepare_media import portrait, tone
from w2p_eval.data.audio import load_audio
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.manifest import load_info, load_manifest
from w2p_eval.data.prepare_folder import prepare_folder, recording_of
from w2p_eval.data.splits import check_splits


def _make(src):
    for i, name in enumerate(["carol", "dave", "erin"]):
        d = src / name
        d.mkdir(parents=True)
        for k in range(4):
            Image.fromarray(portrait(96, shift=3 * k + 8 * i)).save(d / f"talk_{k}.png")
            sf.write(d / f"talk_{k}.wav", tone(1.2, 100 + 50 * i), 16000)
        Image.fromarray(portrait(96, shift=30)).save(d / "other.jpg", quality=95)
        sf.write(d / "other.wav", tone(1.5, 100 + 50 * i, sr=44100, channels=2), 44100)  # stereo 44.1 kHz
    Image.fromarray(portrait(96)).save(src / "carol" / "short.png")
    sf.write(src / "carol" / "short.wav", tone(0.3), 16000)  # too short
    Image.fromarray(portrait(96)).save(src / "carol" / "lonely.png")  # no wav
    (src / "carol" / "broken.png").write_bytes(b"not an image")
    sf.write(src / "carol" / "broken.wav", tone(1.0), 16000)
    Image.fromarray(portrait(96, shift=11)).save(src / "dave" / "dup_copy.png")  # same pixels as dave/talk_1
    sf.write(src / "dave" / "dup_copy.wav", tone(1.0, 150), 8000)


def test_folder_mode(tmp_path):
    src = tmp_path / "src"
    _make(src)
    line = prepare_folder(src, tmp_path / "data", seed=0)
    out = tmp_path / "data"
    df = load_manifest(out)
    assert load_info(out)["identities"] == ["carol", "dave", "erin"]
    assert len(df) == 16
    assert "1 wav shorter than 1 s" in line and "1 no same-stem .wav" in line and "1 unreadable image" in line
    # stereo 44.1 kHz -> 16 kHz mono, duration kept
    row = df[df.source == "dave/other.jpg"].iloc[0]
    info = sf.info(str(out / row.audio_path))
    assert (info.samplerate, info.channels) == (16000, 1) and abs(row.audio_duration - 1.5) < 1e-3
    x = load_audio(out / row.audio_path, 0.0, 1.0)
    assert abs(np.argmax(np.abs(np.fft.rfft(x))) - 150) <= 1
    # 8 kHz input resampled
    assert sf.info(str(out / df[df.source == "dave/dup_copy.png"].audio_path.iloc[0])).samplerate == 16000
    # duplicate image shares a face_id and a segment with its original
    dup = df[df.source == "dave/dup_copy.png"].iloc[0]
    orig = df[df.source == "dave/talk_1.png"].iloc[0]
    assert dup.face_id == orig.face_id and dup.segment_id == orig.segment_id
    assert check_splits(df) == []
    # talk_0..3 are one recording -> one segment
    assert df[df.source.str.startswith("erin/talk_")].segment_id.nunique() == 1
    assert load_image_rgb(out / row.image_path).shape == (96, 96, 3)


def test_recording_of():
    assert recording_of("talk_003") == "talk" and recording_of("x-2") == "x" and recording_of("take") == "take"


def test_interrupted_prepare_leaves_no_dataset(tmp_path, monkeypatch):
    """A crash half-way (here: Ctrl-C on the 3rd image) leaves neither DATA nor a partial folder."""
    import pytest

    import w2p_eval.data.prepare_common as common  # the pair writer every mode saves faces through

    src = tmp_path / "src"
    _make(src)
    real_save, calls = common.save_png, []

    def flaky(path, img):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_save(path, img)

    monkeypatch.setattr(common, "save_png", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare_folder(src, tmp_path / "data", seed=0)
    assert not (tmp_path / "data").exists() and not list(tmp_path.glob(".data.partial-*"))
