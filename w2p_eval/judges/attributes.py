"""Attribute judges (gender, age, ethnicity of a face) and the gender of each identity of a dataset.

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

from w2p_eval.data.identity_meta import identity_genders as labelled_genders
from w2p_eval.data.manifest import load_info
from w2p_eval.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_JUDGE = "faceres"
GENDERS = ("f", "m")


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
                     cache_dir: str | os.PathLike | None = None) -> Genders:
    """The gender of every identity of the dataset at ``data_dir`` (see the module docstring).

    Identities without a label go to the attribute judge (``judge``; None = labels only). InputError (one line)
    when some identity has no label and no judge is available, saying how to add labels.
    """
    info = load_info(data_dir)
    names = list(info["identities"])
    labelled = labelled_genders(info, str(Path(data_dir) / "dataset.json"))
    of, source_of = {}, {}
    if labelled is not None:
        for n, g in labelled[0].items():
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
                  cache_dir=None) -> dict[str, str]:
    """{identity: "f"|"m"}: the judge's majority gender over each identity's real training faces."""
    raise InputError(f"expected gender labels in {Path(data_dir) / 'dataset.json'} (`prepare ... --identity-meta "
                     f"CSV`) for {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}, and no attribute judge "
                     f"{judge!r} is available to guess them")


def majority(probs_male: np.ndarray) -> str:
    """float [F] P(male) of one identity's faces -> "m" when the mean is >= 0.5, else "f"."""
    return "m" if float(np.mean(probs_male)) >= 0.5 else "f"
