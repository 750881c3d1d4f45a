"""`prepare` on the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.helpers import shared_path
from w2p_eval.data.dataset import PairDataset
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.manifest import load_info, load_manifest
from w2p_eval.data.prepare_release import prepare_release
from w2p_eval.data.prepare_videos import prepare_videos
from w2p_eval.data.splits import check_splits

pytestmark = pytest.mark.integration

SAME_SPEAKER = {"id2_vcd_swwp2s.mpg": "s2", "pwij3p.mpg": "s2"}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    src = shared_path("grid_videos")
    tmp = tmp_path_factory.mktemp("grid")
    mapping = tmp / "mapping.csv"
    names = sorted(p.name for p in src.glob("*.mpg"))
    mapping.write_text("file,identity\n" + "".join(f"{n},{SAME_SPEAKER.get(n, n[:-4])}\n" for n in names))
    out = tmp / "data"
    line = prepare_videos(src, out, seed=0, mapping=mapping)
    return src, out, line


def test_grid_videos_yield_pairs_with_sound_splits(grid):
    _, out, line = grid
    df = load_manifest(out)
    assert len(df) >= 25 and df.identity.nunique() == 10
    assert set(df[df.identity == "s2"].source) == {"id2_vcd_swwp2s.mpg", "pwij3p.mpg"}
    assert check_splits(df) == []  # incl. no overlapping audio between seen train and test
    seen_test_ids = set(df[df.split_seen == "test"].identity)
    assert seen_test_ids and seen_test_ids <= set(df[df.split_seen == "train"].identity)
    unseen_test = set(df[df.split_unseen == "test"].identity)
    assert unseen_test and not unseen_test & set(df[df.split_unseen == "train"].identity)
    assert load_info(out)["seconds_of_video"] == pytest.approx(11 * 2.98, abs=0.5)
    ds = PairDataset(out, split="test", protocol="seen", image_size=64)
    item = ds[0]
    assert item["audio"].shape == (1, 16000) and item["image"].shape == (3, 64, 64)
    for path in df.image_path.unique():
        skin = _skin(load_image_rgb(out / path))
        assert skin[:, 0].mean() > skin[:, 2].mean(), path  # RGB order: skin red above blue


def test_grid_flat_folder_identity_from_stem(grid, tmp_path):
    src, _, _ = grid
    prepare_videos(src, tmp_path / "data", seed=0, k=1)
    assert len(load_info(tmp_path / "data")["identities"]) == 11


def _release_subset(src, dst, per_split=30):
    for split_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        for ident in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            d = dst / split_dir.name / ident.name
            d.mkdir(parents=True)
            for png in sorted(ident.glob("cropped_face_frame_*.png"))[:per_split]:
                shutil.copy(png, d / png.name)
                wav = ident / png.name.replace("cropped_face_frame_", "preprocessed_frame_").replace(".png", ".wav")
                if wav.exists():
                    shutil.copy(wav, d / wav.name)
    return dst


def _skin(img: np.ndarray) -> np.ndarray:
    """Pixels of the central face region (cheeks, nose, forehead) as float [N, 3]."""
    h, w = img.shape[:2]
    return img[int(0.35 * h): int(0.7 * h), int(0.3 * w): int(0.7 * w)].reshape(-1, 3).astype(float)


def test_release_import_fixes_colours_and_groups_copies(tmp_path):
    src = _release_subset(shared_path("wav2pix_release"), tmp_path / "subset")
    line = prepare_release(src, tmp_path / "data", seed=0)
    df = load_manifest(tmp_path / "data")
    assert df.identity.nunique() == 2 and "no items skipped" in line
    assert check_splits(df) == []
    assert (df.groupby("face_id").size() <= 5).all() and df.face_id.nunique() <= len(df) / 4
    reds, blues, raw_reds, raw_blues = [], [], [], []
    for path, source in df.drop_duplicates("face_id")[["image_path", "source"]].values:
        skin = _skin(load_image_rgb(tmp_path / "data" / path))
        raw = _skin(load_image_rgb(src / source))  # as stored: BGR
        reds.append(skin[:, 0].mean()), blues.append(skin[:, 2].mean())
        raw_reds.append(raw[:, 0].mean()), raw_blues.append(raw[:, 2].mean())
    assert np.mean(reds) > np.mean(blues) + 10  # skin is red-dominant after import
    assert np.mean(raw_blues) > np.mean(raw_reds)  # ... and was blue-dominant as stored


@pytest.mark.slow
def test_full_release_import(tmp_path):
    line = prepare_release(shared_path("wav2pix_release"), tmp_path / "data", seed=0)
    df = load_manifest(tmp_path / "data")
    assert len(df) == 2615 and df.face_id.nunique() == 523, line
    assert (df.groupby("face_id").size() == 5).all()
    assert (df.split_seen == df.authors_split).all() and check_splits(df) == []
