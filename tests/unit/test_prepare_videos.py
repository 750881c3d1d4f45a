"""`prepare videos` on real MP4 files made with ffmpeg: audio, Haar faces, crops, segments, skips."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.prepare_media import make_video
from w2p_eval.data.audio import load_audio
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.manifest import load_info, load_manifest, manifest_hash
from w2p_eval.data.prepare_videos import prepare_videos, segment_bounds
from w2p_eval.data.splits import check_splits


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    src = tmp_path_factory.mktemp("videos") / "src"
    make_video(src / "anna" / "talk1.mp4", 3.0, f0=140)
    make_video(src / "anna" / "talk2.mp4", 3.0, f0=140)
    make_video(src / "ben" / "talk1.mp4", 3.0, f0=230)
    make_video(src / "ben" / "silent.mp4", 2.0, audio=False)
    make_video(src / "ben" / "empty_room.mp4", 2.0, face=False)
    (src / "ben" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    return src


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "data"
    line = prepare_videos(videos, out, seed=0, k=5)
    return out, line


def test_pairs_faces_and_skips(prepared):
    out, line = prepared
    df = load_manifest(out)
    assert len(df) == 3 * 3 * 5 and df.face_id.nunique() == 9
    assert sorted(load_info(out)["identities"]) == ["anna", "ben"]
    assert "1 no audio track" in line and "1 unreadable video" in line and "2 no face found" in line
    log = (out / "prepare.log").read_text()
    assert "ben/silent.mp4\tno audio track" in log and "ben/broken.mp4\tunreadable video" in log
    assert load_info(out)["skipped"] == {"no audio track": 1, "unreadable video": 1, "no face found": 2}
    assert not list(out.parent.glob(".data.partial-*"))


def test_face_crops_are_rgb_and_sized(prepared):
    out, _ = prepared
    img = load_image_rgb(out / load_manifest(out).image_path[0])
    assert img.shape == (128, 128, 3)
    # the astronaut's face: skin has more red than blue (a BGR mix-up would flip this)
    centre = img[40:90, 40:90].reshape(-1, 3).astype(float)
    assert centre[:, 0].mean() > centre[:, 2].mean() + 10


def test_audio_is_16k_mono_within_segment_windows(prepared):
    import soundfile as sf

    out, _ = prepared
    df = load_manifest(out)
    info = sf.info(str(out / df.audio_path[0]))
    assert info.samplerate == 16000 and info.channels == 1
    x = load_audio(out / df.audio_path[0], float(df.audio_start[0]), 1.0)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) - 140) <= 2  # anna's tone survives 44.1 kHz stereo AAC -> 16 kHz mono
    assert (df.source_audio_start >= 0).all() and (df.source_audio_start + df.audio_duration <= 3.0 + 1e-3).all()
    # audio windows never cross the segment border (1.5 s of a 3 s clip)
    first = df[df.segment_id.str.endswith("seg0")]
    assert (first.source_audio_start + first.audio_duration <= 1.5 + 0.03).all()
    ds = PairDataset(out, split="train")
    assert ds[0]["audio"].shape == (1, 16000)


def test_splits_are_sound_and_seeded(prepared, videos, tmp_path):
    out, _ = prepared
    df = load_manifest(out)
    assert check_splits(df) == []
    assert set(df[df.identity == "anna"].split_seen) == {"train", "test"}
    prepare_videos(videos, tmp_path / "again", seed=0, k=5)
    assert manifest_hash(tmp_path / "again") == manifest_hash(out)
    prepare_videos(videos, tmp_path / "seed1", seed=1, k=5)
    assert list(load_manifest(tmp_path / "seed1").audio_start) != list(df.audio_start)


def test_flat_folder_takes_identity_from_stem_and_mapping_overrides(videos, tmp_path):
    import shutil

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(videos / "anna" / "talk1.mp4", flat / "s1.mp4")
    shutil.copy(videos / "ben" / "talk1.mp4", flat / "s2.mp4")
    shutil.copy(videos / "anna" / "talk2.mp4", flat / "s1b.mp4")
    prepare_videos(flat, tmp_path / "by_stem", seed=0, k=1)
    assert load_info(tmp_path / "by_stem")["identities"] == ["s1", "s1b", "s2"]
    (tmp_path / "map.csv").write_text("file,identity\ns1.mp4,anna\ns1b.mp4,anna\n")
    line = prepare_videos(flat, tmp_path / "mapped", seed=0, k=1, mapping=tmp_path / "map.csv")
    assert load_info(tmp_path / "mapped")["identities"] == ["anna"]
    assert "1 video not listed in --mapping" in line


def test_segment_bounds():
    assert segment_bounds(2.98, 10.0, 1.0) == [(0.0, 1.49), (1.49, 2.98)]
    assert len(segment_bounds(60.0, 10.0, 1.0)) == 6
    assert segment_bounds(1.5, 10.0, 1.0) == [(0.0, 1.5)]
