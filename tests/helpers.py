"""Helpers shared by the test modules (imported with ``from tests.helpers import ...``, never collected).

- :func:`run_cli`: the real ``w2p-eval`` entry point run in this process -> (exit code, stdout, stderr);
- :func:`make_tiny_dataset`, :func:`mean_face_run`, :func:`tiny_run` / :func:`tiny_data_of`: tiny real
  datasets, a fitted mean_face run, and one tiny WAV2PIX run trained once per session;
- :func:`shared_path`, :func:`release_subset`: the real data in ../shared (skipped when absent);
- :func:`snapshot`: every path of a folder with kind, size and mtime (to prove nothing changed);
- :func:`astronaut`, :func:`face_crop`, :func:`grey`, :func:`noise`: pictures with and without a face.

Fixtures stay in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skimage_data

from w2p_eval.data.audio import SAMPLE_RATE, write_wav
from w2p_eval.data.images import save_png
from w2p_eval.data.manifest import write_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("W2P_SHARED_DATA", REPO.parent / "shared" / "data"))
CONFIG_64 = REPO / "baselines" / "wav2pix_64.yaml"
MEAN_FACE = str(REPO / "baselines" / "mean_face.yaml")
# Small but real: the reference architecture at 64 px, 0.3 s of audio, 2 iterations per epoch.
TINY = {"epochs": 1, "batch_size": 6, "audio_seconds": 0.3, "n_samples": 2, "checkpoint_every": 1}


# -- the command line ------------------------------------------------------------------------------
class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_cli(argv, capsys=None) -> CliResult:
    """``w2p-eval ARGV`` in this process -> (exit code, stdout, stderr), a fresh command each time.

    Each command reports only the skips of the datasets it opened; logging is re-bound to the captured
    stderr. Output is read from ``capsys`` when given, else captured here.
    """
    from w2p_eval.cli import main

    logging.getLogger().handlers.clear()  # basicConfig binds the current (captured) stderr
    out, err = io.StringIO(), io.StringIO()
    redirect = contextlib.nullcontext() if capsys is not None else contextlib.ExitStack()
    with redirect as stack:
        if stack is not None:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if capsys is not None:
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
    return CliResult(code, out.getvalue(), err.getvalue())


# -- datasets and runs -----------------------------------------------------------------------------
def make_tiny_dataset(
    out: Path,
    n_identities: int = 3,
    pairs_per_identity: int = 6,
    image_px: int = 64,
    audio_seconds: float = 1.2,
    seed: int = 0,
) -> Path:
    """A small dataset of real files (PNG faces-ish pictures + tone WAVs), both split protocols.

    Identity i has a distinct colour/shape and a distinct pitch, so it is learnable. Pairs are
    grouped two per face_id/segment; the last third of each identity's segments is seen-test;
    the last identity is the unseen-test identity.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "faces").mkdir(exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:image_px, 0:image_px] / image_px
    for i in range(n_identities):
        name = f"id{i:02d}"
        base = np.array([60 + 60 * i, 200 - 50 * i, 90 + 40 * (i % 2)], dtype=np.float32)
        f0 = 110.0 + 60.0 * i
        for k in range(pairs_per_identity):
            face_no = k // 2
            blob = np.exp(-(((xx - 0.5) ** 2) / (0.05 + 0.03 * i) + ((yy - 0.5) ** 2) / 0.08))
            img = base[None, None, :] * (0.4 + 0.6 * blob[..., None]) + rng.normal(0, 4, (image_px, image_px, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            t = np.arange(int(SAMPLE_RATE * audio_seconds)) / SAMPLE_RATE
            wave = 0.5 * np.sin(2 * np.pi * f0 * t + k) + 0.2 * np.sin(2 * np.pi * 2.7 * f0 * t)
            wave += rng.normal(0, 0.01, t.shape)
            pid = f"{name}-{k:03d}"
            save_png(out / "faces" / f"{pid}.png", img)
            write_wav(out / "audio" / f"{pid}.wav", wave.astype(np.float32))
            seen_test = face_no >= (pairs_per_identity // 2) * 2 // 3 and face_no == (pairs_per_identity - 1) // 2
            rows.append(dict(
                pair_id=pid, identity=name,
                split_seen="test" if seen_test else "train",
                split_unseen="test" if i == n_identities - 1 else "train",
                image_path=f"faces/{pid}.png", audio_path=f"audio/{pid}.wav",
                audio_start=0.0, audio_duration=audio_seconds, source=f"tiny-{name}.mp4",
                source_time=float(face_no), face_id=f"{name}-f{face_no}", segment_id=f"{name}-s{face_no}",
            ))
    write_dataset(out, pd.DataFrame(rows), {"kind": "folder", "seed": seed})
    return out


def make_face_dataset(out: Path) -> Path:
    """2 identities x 4 pairs of real face crops (128 px, shifted/mirrored) with 1.2 s tones; 2 test pairs each."""
    (out / "faces").mkdir(parents=True)
    (out / "audio").mkdir()
    rows = []
    for i, name in enumerate(["ann", "bob"]):
        for k in range(4):
            pid = f"{name}-{k}"
            save_png(out / "faces" / f"{pid}.png", face_crop(128, dx=6 * k - 12, dy=3 * i, flip=bool(i)))
            t = np.arange(19200) / 16000.0
            write_wav(out / "audio" / f"{pid}.wav", (0.4 * np.sin(2 * np.pi * (150 + 80 * i) * t)).astype(np.float32))
            rows.append(dict(pair_id=pid, identity=name, split_seen="test" if k >= 2 else "train",
                             split_unseen="test" if i == 1 else "train", image_path=f"faces/{pid}.png",
                             audio_path=f"audio/{pid}.wav", audio_start=0.0, audio_duration=1.2,
                             source=f"{name}.mp4", source_time=float(k), face_id=f"{name}-f{k}",
                             segment_id=f"{name}-s{k}"))
    write_dataset(out, pd.DataFrame(rows), {"kind": "folder", "seed": 0})
    return out


@functools.lru_cache(maxsize=None)
def tiny_run(base: str) -> Path:
    """Train WAV2PIX for 1 epoch (:data:`TINY`) on a private tiny dataset under ``base``; the run folder."""
    from w2p_eval.train.run import run_training

    base = Path(base)
    data = make_tiny_dataset(base / "data")
    run = base / "run"
    run_training(CONFIG_64, data, run, overrides=dict(TINY), device="cpu", seed=3)
    return run


def mean_face_run(root: Path, run_name: str = "run") -> tuple[Path, Path]:
    """A tiny dataset at ``root/data`` and a mean_face run fitted on it through the CLI -> (data, run folder)."""
    data = make_tiny_dataset(root / "data")
    rc, _, err = run_cli(["train", MEAN_FACE, "--data", data, "--out", root / run_name])
    assert rc == 0, err
    return data, root / run_name


def tiny_data_of(run: Path) -> Path:
    """The dataset a :func:`tiny_run` was trained on."""
    return run.parent / "data"


# -- the real data in ../shared --------------------------------------------------------------------
def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data is absent in a fresh clone)")
    return path


def release_subset(src: Path, dst: Path, n_train: int = 60, n_test: int = 30) -> Path:
    """Symlink the first frames (whole 5-copy face groups) of each identity of the WAV2PIX release
    layout: real files, fewer of them."""
    for split, n in (("train", n_train), ("test", n_test)):
        for person in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            frames = sorted(int(m.group(1)) for f in person.glob("cropped_face_frame_*.png")
                            if (m := re.search(r"_(\d+)\.png$", f.name)))[:n]
            out = dst / split / person.name
            out.mkdir(parents=True)
            for k in frames:
                for name in (f"cropped_face_frame_{k}.png", f"preprocessed_frame_{k}.wav"):
                    (out / name).symlink_to(person / name)
    return dst


# -- folders ---------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and mtime."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            snap[str(p.relative_to(root))] = (p.is_dir(), st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return snap


# -- pictures --------------------------------------------------------------------------------------
def astronaut() -> np.ndarray:
    """A real face photograph bundled with scikit-image (uint8 [512, 512, 3])."""
    return skimage_data.astronaut()


def face_crop(size: int, dx: int = 0, dy: int = 0, flip: bool = False) -> np.ndarray:
    """The astronaut's face, cropped (optionally shifted/mirrored) and resized to ``size`` px."""
    img = astronaut()[10 + dy:250 + dy, 110 + dx:350 + dx]
    img = img[:, ::-1] if flip else img
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.BILINEAR))


def grey(size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), 128, np.uint8)


def noise(size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def fewer_training_faces(src: Path, out: Path, per_identity: int) -> Path:
    """The same dataset with only the first ``per_identity`` training faces (all their pairs) per
    identity and every test pair: keeps the slow test short (the full release is in the note)."""
    from w2p_eval.data.manifest import load_info, load_manifest, write_dataset

    df = load_manifest(src)
    train = df[df["split_seen"] == "train"]
    keep = set()
    for _, faces in train.groupby("identity")["face_id"]:
        keep |= set(sorted(set(faces))[:per_identity])
    df = df[(df["split_seen"] == "test") | df["face_id"].isin(keep)]
    for rel in sorted(set(df["image_path"]) | set(df["audio_path"])):  # hard links: a symlinked folder
        (out / rel).parent.mkdir(parents=True, exist_ok=True)            # leads out of the dataset (refused)
        try:
            os.link(src / rel, out / rel)
        except OSError:
            shutil.copy2(src / rel, out / rel)
    write_dataset(out, df, {k: v for k, v in load_info(src).items() if k not in ("identities", "n_pairs")})
    return out


def six_identities(out: Path) -> Path:
    """A tiny dataset of 6 identities x 8 pairs (4 faces of 2 copies, 32 px) whose seen-protocol test split is
    faces 2 and 3 of every identity: 24 test pairs of 12 distinct faces."""
    from w2p_eval.data.manifest import load_info, load_manifest

    out = make_tiny_dataset(out, n_identities=6, pairs_per_identity=8, image_px=32, audio_seconds=1.05)
    df = load_manifest(out, check_files=False)
    face_no = df["face_id"].str.rsplit("-f", n=1).str[1].astype(int)
    df["split_seen"] = np.where(face_no >= 2, "test", "train")
    write_dataset(out, df, {k: v for k, v in load_info(out).items() if k not in ("identities", "n_pairs")})
    return out


def chromium_page_width():
    """scripts/check_report_width.py's ``page_width`` (html, window px) -> (page px, window px), or a skip with the
    reason when Debian's chromium is absent."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from check_report_width import find_chromium, page_width
    finally:
        sys.path.pop(0)
    if find_chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    return page_width
