"""`prepare voxceleb`: VoxCeleb1/2 speakers paired with VGGFace1, VGGFace2, HQ-VoxCeleb or video-frame faces, on
the field's identity splits (:mod:`w2p_eval.data.voxceleb_meta`).

Audio ``AUDIO/<VoxCeleb id>/<YouTube id>/<utterance>.wav`` (VoxCeleb1) or ``.m4a`` (VoxCeleb2, decoded to 16 kHz
mono by the ffmpeg of imageio-ffmpeg). Faces (:data:`FACE_LAYOUTS`, recognised from the folder or named):

- ``vggface1``: ``<VGGFace1 name>/<n>.jpg``; ``vggface2``: ``<n00xxxx>/<n>.jpg`` (the VGGFace2 id);
  both detected (OpenCV Haar, as ``prepare videos``) and cropped square with a margin;
- ``hq``: HQ-VoxCeleb ``<name>/<n>.jpg``, already aligned: centre square, resized only;
- ``frames``: VoxCeleb's ``<name>/1.6/<YouTube id>/<frame>.jpg``, detected and cropped like ``prepare videos``.

A name-keyed folder of images is recognised as ``vggface1``; pass ``--faces-layout hq`` for aligned faces.

Pairing is by identity, as the field does: up to ``max_utterances`` utterances and ``max_faces`` faces per
identity (a seeded choice when there are more), every whole 1 s window of an utterance is one pair, its face
drawn round-robin from a seeded order of the identity's faces. ``split_unseen`` is the rule's split
(train / val / test, identities disjoint); ``split_seen`` moves whole YouTube videos of an identity's audio and
a share of its faces (frames: the same videos, frames and audio in one draw) to test together, test windows
paired with test faces only, so no face and no video straddles the split (an identity with one video or one face stays in train). Identities with
audio but no usable face (or the reverse), ids and names that no meta file lists, and identities the rule does
not place are counted and listed in prepare.log.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image
from tqdm import tqdm

from w2p_eval.data.audio import SAMPLE_RATE, load_audio
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.prepare_common import (IMAGE_SUFFIXES, PairWriter, echo_summary, out_option, require_dir,
                                          seed_option, test_fraction_option)
from w2p_eval.data.prepare_videos import best_face, crop_square, extract_audio
from w2p_eval.data.splits import _n_test
from w2p_eval.data.voxceleb_meta import (RULE_TEXT, SPLIT_RULES, Meta, MetaRow, check_published, identity_meta_entry,
                                         join_meta, read_meta, split_counts, split_of)
from w2p_eval.errors import InputError
from w2p_eval.registry import Entry
from w2p_eval.utils import cap_workers

log = logging.getLogger(__name__)

FACE_LAYOUTS = ("vggface1", "vggface2", "hq", "frames")
AUDIO_SUFFIXES = (".wav", ".m4a")
WINDOW = 1.0  # seconds per pair
FRAMES_DIR = "1.6"
_VGGFACE2_ID = re.compile(r"^n\d{6}$")


@dataclass(frozen=True)
class VoxParams:
    """The `prepare voxceleb` settings; stored in dataset.json's ``params``."""
    max_utterances: int = 10
    max_faces: int = 10
    image_size: int = 128
    min_confidence: float = 4.0
    margin: float = 0.2
    test_fraction: float = 0.2

    def check(self) -> None:
        for name, value, ok in [("--max-utterances", self.max_utterances, self.max_utterances >= 1),
                                ("--max-faces", self.max_faces, self.max_faces >= 1),
                                ("--image-size", self.image_size, 16 <= self.image_size <= 1024),
                                ("--margin", self.margin, self.margin >= 0),
                                ("--test-fraction", self.test_fraction, 0 < self.test_fraction < 1)]:
            if not ok:
                raise InputError(f"expected a valid {name} (positive; image size 16-1024; test fraction in (0, 1)), "
                                 f"got {value}")


@dataclass(frozen=True)
class Item:
    """One source file: its path, its path relative to its root, and its group (the YouTube id of an utterance
    or a frame; the file itself for a photo)."""

    path: Path
    rel: str
    group: str


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def find_audio(root: Path, meta: Meta, writer: PairWriter) -> dict[str, list[Item]]:
    """{identity: utterances (sorted)} from ``root/<VoxCeleb id>/<YouTube id>/<utterance>.wav|.m4a``; folders of
    ids no meta file lists and empty identity folders are counted skips."""
    out: dict[str, list[Item]] = {}
    for d in _subdirs(root):
        row = meta.by_vox_id.get(d.name)
        if row is None:
            writer.skip(f"audio/{d.name}", "audio id not in the meta files")
            continue
        items = [Item(f, f"{d.name}/{v.name}/{f.name}", v.name) for v in _subdirs(d)
                 for f in _files(v, AUDIO_SUFFIXES)]
        if not items:
            writer.skip(f"audio/{d.name}", "empty identity folder (no <YouTube id>/<utterance>.wav|.m4a)")
            continue
        out[row.identity] = items
    if not out and not writer.skips.counts:
        raise InputError(f"expected VoxCeleb audio <VoxCeleb id>/<YouTube id>/<utterance>.wav|.m4a under --audio, "
                         f"got none ({root})")
    return out


def detect_layout(root: Path) -> str:
    """The faces layout of ``root`` (see :data:`FACE_LAYOUTS`); InputError when it matches none."""
    dirs = _subdirs(root)[:200]
    if dirs and sum(bool(_VGGFACE2_ID.match(d.name)) for d in dirs) * 2 >= len(dirs):
        return "vggface2"
    if any((d / FRAMES_DIR).is_dir() for d in dirs):
        return "frames"
    if any(_files(d, IMAGE_SUFFIXES) for d in dirs):
        return "vggface1"
    raise InputError(f"expected faces in one of the layouts <VGGFace1 name>/<n>.jpg, <n00xxxx>/<n>.jpg (VGGFace2), "
                     f"<name>/<n>.jpg (HQ-VoxCeleb) or <name>/{FRAMES_DIR}/<YouTube id>/<frame>.jpg under --faces, "
                     f"got a folder that matches none ({root})")


def _face_row(meta: Meta, layout: str, name: str) -> MetaRow | None:
    if layout == "vggface2":
        return meta.by_vggface2.get(name)
    return meta.by_vggface1.get(name) or meta.by_identity.get(name)


def find_faces(root: Path, layout: str, meta: Meta, writer: PairWriter) -> dict[str, list[Item]]:
    """{identity: face images (sorted)} of ``layout``; unknown names and empty folders are counted skips."""
    out: dict[str, list[Item]] = {}
    for d in _subdirs(root):
        row = _face_row(meta, layout, d.name)
        if row is None:
            writer.skip(f"faces/{d.name}", "face folder not in the meta files")
            continue
        if layout == "frames":
            base = d / FRAMES_DIR
            videos = _subdirs(base) if base.is_dir() else []
            items = [Item(f, f"{d.name}/{FRAMES_DIR}/{v.name}/{f.name}", v.name) for v in videos
                     for f in _files(v, IMAGE_SUFFIXES)]
        else:
            items = [Item(f, f"{d.name}/{f.name}", f"{d.name}/{f.name}") for f in _files(d, IMAGE_SUFFIXES)]
        if not items:
            writer.skip(f"faces/{d.name}", f"empty identity folder (no images in the {layout} layout)")
            continue
        out[row.identity] = items
    if not out:
        raise InputError(f"expected face images in the {layout} layout under --faces, got none ({root})")
    return out


def _choose(items: list, n: int, rng: np.random.Generator) -> list:
    """At most ``n`` of ``items`` (a seeded choice, kept in order)."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def _test_groups(groups: list[str], fraction: float, rng: np.random.Generator) -> set[str]:
    groups = sorted(set(groups))
    n = _n_test(len(groups), fraction)
    return {groups[i] for i in rng.choice(len(groups), size=n, replace=False)} if n else set()


def prepare_voxceleb(audio, faces, meta_paths, split: str, out, *, faces_layout: str | None = None, seed: int = 0,
                     max_utterances: int = 10, max_faces: int = 10, image_size: int = 128,
                     min_confidence: float = 4.0, margin: float = 0.2, test_fraction: float = 0.2,
                     allow_other_meta: bool = False, workers: int = 2) -> str:
    """Build a dataset at ``out`` from VoxCeleb audio, a faces folder and the meta files; returns the summary."""
    params = VoxParams(max_utterances, max_faces, image_size, min_confidence, margin, test_fraction)
    params.check()
    if split not in SPLIT_RULES:
        raise InputError(f"expected --split one of {', '.join(SPLIT_RULES)}, got {split!r}")
    if faces_layout is not None and faces_layout not in FACE_LAYOUTS:
        raise InputError(f"expected --faces-layout one of {', '.join(FACE_LAYOUTS)}, got {faces_layout!r}")
    if not meta_paths:
        raise InputError("expected at least one --meta file (vox1_meta.csv, full_vox2_meta.csv)")
    files = [read_meta(p) for p in meta_paths]
    check_published(files, split, allow_other_meta)
    meta = join_meta(files)
    audio_root = require_dir(audio, "a VoxCeleb audio folder <VoxCeleb id>/<YouTube id>/<utterance>.wav|.m4a")
    faces_root = require_dir(faces, "a faces folder")
    layout = faces_layout or detect_layout(faces_root)
    writer = PairWriter(out, what="items")
    for item, reason in meta.skipped:
        writer.skip(item, reason)
    utterances = find_audio(audio_root, meta, writer)
    images = find_faces(faces_root, layout, meta, writer)
    both = [r for r in meta.rows if r.identity in utterances and r.identity in images]
    for r in meta.rows:
        if (r.identity in utterances) != (r.identity in images):
            writer.skip(f"{r.identity} ({r.vox_id})", "identity with audio but no face folder"
                        if r.identity in utterances else "identity with faces but no audio folder")
    splits = {}
    for r in both:
        s = split_of(split, r)
        if s is None:
            writer.skip(f"{r.identity} ({r.vox_id})", f"identity outside the {split} split rule")
        else:
            splits[r.identity] = s
    rows = [r for r in both if r.identity in splits]
    if not rows:
        raise InputError(f"expected identities with both audio and faces in the meta files, got none "
                         f"({writer.skips.summary()})")
    run = _Run(writer, params, layout, seed, imageio_ffmpeg.get_ffmpeg_exe())
    with writer.staging(), ThreadPoolExecutor(cap_workers(workers)) as pool:
        # identities decoded and written in parallel threads (ffmpeg, PIL, OpenCV and soundfile release the GIL);
        # rows and skips are added here in meta order, so the output is the same whatever the thread timing
        done = pool.map(lambda r: run.identity(r, utterances[r.identity], images[r.identity]), rows)
        for r, result in tqdm(zip(rows, done), total=len(rows), desc="identities", unit="identity", disable=None):
            run.commit(r, result)
        kept = [r for r in rows if r.identity in run.identities]
        info = {"kind": "voxceleb", "seed": seed, "faces_layout": layout,
                "split_rule": {"name": split, "text": RULE_TEXT[split], "meta": [f.record() for f in files],
                               "allow_other_meta": bool(allow_other_meta), "counts": split_counts(split, kept)},
                "meta_order": [r.identity for r in kept], "n_utterances": run.n_utterances,
                "identity_meta": identity_meta_entry(kept, files),
                "params": {**asdict(params), "window_seconds": WINDOW}}
        return writer.finish(info, test_fraction, keep_seen=True,
                             unseen={r.identity: splits[r.identity] for r in kept})


@dataclass
class _Identity:
    """What one identity's thread made: skips (item, reason) in source order, faces (face id, manifest path, source
    path, seen side), utterances (source item, audio stem, manifest path, 1 s windows, seen side)."""

    skips: list[tuple[str, str]]
    faces: list[tuple[str, str, str, str]]
    utterances: list[tuple[Item, str, str, int, str]]


class _Run:
    """One `prepare voxceleb` run: the writer, the settings, the decoders. :meth:`identity` runs in a worker
    thread (decode, crop, write files); :meth:`commit` adds its rows in the calling thread."""

    def __init__(self, writer: PairWriter, params: VoxParams, layout: str, seed: int, ffmpeg: str):
        self.writer, self.params, self.layout, self.seed, self.ffmpeg = writer, params, layout, seed, ffmpeg
        self._local = threading.local()  # one Haar cascade per thread (OpenCV's is not thread-safe)
        self.identities: set[str] = set()
        self.n_utterances = 0

    def _rng(self, r: MetaRow, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(r.vox_id.encode()), k])

    def read_utterance(self, item: Item) -> np.ndarray | str:
        """float32 [T] mono 16 kHz, or the skip reason."""
        try:
            m4a = item.path.suffix.lower() == ".m4a"
            wave = extract_audio(item.path, self.ffmpeg) if m4a else load_audio(item.path)
        except (ValueError, OSError, InputError):
            return "unreadable audio"
        if len(wave) + 16 < WINDOW * SAMPLE_RATE:
            return f"audio shorter than {WINDOW:g} s"
        return wave

    def read_face(self, item: Item) -> np.ndarray | str:
        """uint8 [S, S, 3] RGB face crop, or the skip reason."""
        try:
            rgb = load_image_rgb(item.path)
        except InputError:
            return "unreadable image"
        p = self.params
        if self.layout == "hq":  # already aligned: the centre square, resized
            h, w = rgb.shape[:2]
            s = min(h, w)
            crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
            return np.asarray(Image.fromarray(crop).resize((p.image_size, p.image_size), Image.BILINEAR))
        if not hasattr(self._local, "cascade"):
            self._local.cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                                                     "haarcascade_frontalface_default.xml"))
        found = best_face(self._local.cascade, rgb)
        if found is None:
            return "no face found"
        if found[1] < p.min_confidence:
            return f"face confidence below {p.min_confidence:g}"
        return crop_square(rgb, found[0], p.margin, p.image_size)

    @staticmethod
    def _decoded(read, items: list[Item], prefix: str, skips: list) -> list[tuple[Item, np.ndarray]]:
        """[(item, array)] of the items ``read`` decodes; the others' reasons appended to ``skips``."""
        out = []
        for item in items:
            got = read(item)
            if isinstance(got, str):
                skips.append((f"{prefix}/{item.rel}", got))
            else:
                out.append((item, got))
        return out

    def identity(self, r: MetaRow, utterances: list[Item], faces: list[Item]) -> _Identity:
        """One identity's faces and utterances decoded and written (seen split decided here, see the module doc)."""
        p, w = self.params, self.writer
        out = _Identity([], [], [])
        utts = _choose(utterances, p.max_utterances, self._rng(r, 1))
        imgs = _choose(faces, p.max_faces, self._rng(r, 2))
        test_videos = _test_groups([u.group for u in utts], p.test_fraction, self._rng(r, 3))
        test_faces = _test_groups([f.group for f in imgs], p.test_fraction, self._rng(r, 4))
        if self.layout == "frames":  # frames come from the videos: one draw for both, so no video straddles
            test_videos = test_faces = _test_groups([x.group for x in utts + imgs], p.test_fraction, self._rng(r, 3))
        got_faces = self._decoded(self.read_face, imgs, "faces", out.skips)
        if not got_faces:
            out.skips.append((f"{r.identity} ({r.vox_id})", "identity without a usable face"))
            return out
        got_utts = self._decoded(self.read_utterance, utts, "audio", out.skips)
        if not got_utts:
            out.skips.append((f"{r.identity} ({r.vox_id})", "identity without a usable utterance"))
            return out
        side = {f.rel: "test" if f.group in test_faces else "train" for f, _ in got_faces}
        usides = {u.rel: "test" if u.group in test_videos else "train" for u, _ in got_utts}
        if {"train", "test"} - set(side.values()) or {"train", "test"} - set(usides.values()):
            side = dict.fromkeys(side, "train")  # one video or one face: the identity stays in seen-train
            usides = dict.fromkeys(usides, "train")
        for f, rgb in got_faces:
            fid = f"{r.vox_id}-{_stem(f.rel)}"
            out.faces.append((fid, w.save_face(fid, rgb), f.rel, side[f.rel]))
        for u, wave in got_utts:
            stem = f"{r.vox_id}-{_stem(u.rel.split('/', 1)[1])}"
            n_windows = max(1, int((len(wave) + 16) // (WINDOW * SAMPLE_RATE)))
            out.utterances.append((u, stem, w.save_audio(stem, wave), n_windows, usides[u.rel]))
        return out

    def commit(self, r: MetaRow, got: _Identity) -> None:
        """The identity's skips and pairs: each 1 s window paired round-robin with a seeded order of its side's
        faces."""
        for item, reason in got.skips:
            self.writer.skip(item, reason)
        if not got.faces or not got.utterances:
            return
        pools: dict[str, list[tuple[str, str, str]]] = {}
        for fid, image_path, face_rel, s in got.faces:
            pools.setdefault(s, []).append((fid, image_path, face_rel))
        order = {s: [pool[i] for i in self._rng(r, 5 + k).permutation(len(pool))]
                 for k, (s, pool) in enumerate(sorted(pools.items()))}
        used = dict.fromkeys(order, 0)
        for u, stem, audio_path, n_windows, s in got.utterances:
            self.n_utterances += 1
            for k in range(n_windows):
                fid, image_path, face_rel = order[s][used[s] % len(order[s])]
                used[s] += 1
                self.writer.add(
                    pair_id=f"{stem}-w{k:03d}", identity=r.identity, image_path=image_path, audio_path=audio_path,
                    audio_start=k * WINDOW, audio_duration=WINDOW, source=u.rel, source_time=float("nan"),
                    face_id=fid, segment_id=f"{r.vox_id}/{u.group}", split_seen=s, vox_id=r.vox_id,
                    face_source=face_rel)
        self.identities.add(r.identity)


def _stem(rel: str) -> str:
    """A file-name-safe, unique stem of a relative path (``yt/00001.wav`` -> ``yt_00001``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(Path(rel).with_suffix(""))).strip("_") or "x"


# `w2p-eval prepare voxceleb` (its options only parse; the work is above)
@click.command("voxceleb")
@click.option("--audio", required=True, metavar="ROOT", type=click.Path(),
              help="VoxCeleb audio: ROOT/<VoxCeleb id>/<YouTube id>/<utterance>.wav (VoxCeleb1) or .m4a (VoxCeleb2).")
@click.option("--faces", required=True, metavar="ROOT", type=click.Path(),
              help="Faces: <VGGFace1 name>/<n>.jpg, <n00xxxx>/<n>.jpg (VGGFace2), <name>/<n>.jpg (HQ-VoxCeleb) or "
                   "<name>/1.6/<YouTube id>/<frame>.jpg (VoxCeleb frames).")
@click.option("--meta", "meta", required=True, multiple=True, metavar="CSV", type=click.Path(),
              help="VoxCeleb meta file (vox1_meta.csv, full_vox2_meta.csv); repeatable. Joins ids and names, gives "
                   "gender and nationality.")
@click.option("--split", "split", required=True, type=click.Choice(["official", "wen", "sf2f"]),
              help="Identity split: official (the Set column), wen (names F-Z train, A-E test), sf2f (row i of each "
                   "meta file: test when i mod 10 = 8, val when 9, else train).")
@click.option("--faces-layout", default=None, type=click.Choice(["vggface1", "vggface2", "hq", "frames"]),
              help="Faces layout (default: recognised from the folder; name-keyed photos read as vggface1, pass hq "
                   "for HQ-VoxCeleb's aligned faces).")
@out_option
@seed_option
@click.option("--max-utterances", default=10, show_default=True, metavar="N", type=click.IntRange(1),
              help="Utterances per identity (a seeded choice when there are more); each 1 s window is one pair.")
@click.option("--max-faces", default=10, show_default=True, metavar="N", type=click.IntRange(1),
              help="Faces per identity (a seeded choice when there are more).")
@click.option("--image-size", default=128, show_default=True, metavar="PX", type=click.IntRange(16, 1024),
              help="Side of the saved square face crops.")
@click.option("--allow-other-meta", is_flag=True,
              help="Accept meta files whose sha256 is not the published one with --split sf2f (row order = split).")
@test_fraction_option
@click.option("--workers", default=2, show_default=True, metavar="N", type=click.IntRange(1),
              help="Decoding threads (ffmpeg, face detection).")
def command(audio, faces, meta, split, faces_layout, out, seed, max_utterances, max_faces, image_size,
            allow_other_meta, test_fraction, workers):
    """VoxCeleb1/2 speakers + VGGFace / HQ-VoxCeleb / frame faces on the field's identity splits."""
    echo_summary(out, prepare_voxceleb(audio, faces, list(meta), split, out, faces_layout=faces_layout, seed=seed,
                                       max_utterances=max_utterances, max_faces=max_faces, image_size=image_size,
                                       test_fraction=test_fraction, allow_other_meta=allow_other_meta,
                                       workers=workers))


REGISTER_PREPARE_MODES = (Entry("voxceleb", "command", "VoxCeleb speakers + VGGFace / HQ-VoxCeleb / frame faces, the "
                                "field's splits (docs/voxceleb.md).", order=50),)
