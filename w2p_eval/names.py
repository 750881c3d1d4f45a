"""Names looked up in tables: the one "did you mean" hint and the one lazy "module:attr" resolver.

Every registry (verbs, models, trainers, identity backbones, landmark backends, metric suites,
config keys, option choices) answers an unknown name the same way::

    unknown model 'wav2pixx' (did you mean wav2pix?); available: wav2pix, l1_regression, ...

:func:`did_you_mean` builds the hint, :func:`unknown` the whole message, :func:`lookup` resolves a
known name's "module:attr" string (importing the module only then). Light on purpose: the CLI
uses it while `w2p-eval --help` must not import anything heavy.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Iterable

from w2p_eval.errors import InputError


def closest(name, choices: Iterable[str], *, fold_case: bool = False) -> str | None:
    """The choice most like ``name`` (difflib, cutoff 0.6), or None; ``fold_case`` retries in lower case."""
    choices = list(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    if not close and fold_case:
        close = difflib.get_close_matches(str(name).lower(), choices, n=1)
    return close[0] if close else None


def did_you_mean(name, choices: Iterable[str], *, fold_case: bool = False) -> str:
    """``" (did you mean X?)"`` for the closest choice, or ``""`` when nothing is close."""
    close = closest(name, choices, fold_case=fold_case)
    return f" (did you mean {close}?)" if close else ""


def unknown(what: str, name, choices: Iterable[str]) -> str:
    """The one-line message for an unknown name: ``unknown <what> 'x' (did you mean y?); available: a, b``."""
    choices = list(choices)
    return f"unknown {what} {name!r}{did_you_mean(name, choices)}; available: {', '.join(choices)}"


def resolve(spec: str):
    """``"package.module:attr"`` -> that attribute (the module imported now, not before)."""
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def lookup(table: dict[str, str], name: str, what: str):
    """``table[name]`` resolved from its "module:attr" string; an unknown name -> InputError (:func:`unknown`)."""
    if name not in table:
        raise InputError(unknown(what, name, table))
    return resolve(table[name])
