"""The values and nodes the TensorFlow.js graph ops work on (see :mod:`w2p_eval.judges.tfjs_ops`).

:class:`Val`: a tensor plus ``nchw`` - True when a rank-4 tensor that TF sees as NHWC is held as NCHW.
:class:`Node`: one GraphDef node with its attributes read the way model.json writes them (base64 strings,
lists of ints, flags) and its constant operands.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from w2p_eval.errors import InputError


@dataclass
class Val:
    """One tensor of the graph: ``t`` as held, ``nchw`` when ``t`` is a rank-4 NHWC value stored as NCHW."""

    t: torch.Tensor
    nchw: bool = False

    def nhwc(self) -> torch.Tensor:
        """The tensor in TF's own layout."""
        return self.t.permute(0, 2, 3, 1) if self.nchw else self.t

    def as_nchw(self) -> torch.Tensor:
        """A rank-4 NHWC value as NCHW (for conv/pool ops)."""
        if self.nchw:
            return self.t
        if self.t.dim() != 4:
            raise InputError(f"expected a rank-4 NHWC tensor for a conv/pool op, got shape {tuple(self.t.shape)}")
        return self.t.permute(0, 3, 1, 2)


@dataclass
class Node:
    """One GraphDef node: name, op, inputs (names), attr (JSON as in model.json) and its constant operands.

    ``consts`` holds the numpy value of every input that is a Const node (None otherwise); ``param`` registers
    a tensor made from a constant on the module (so ``.to(device)`` moves it) and returns a getter."""

    name: str
    op: str
    inputs: list[str]
    attr: dict
    consts: list[np.ndarray | None]
    param: Callable[[str, np.ndarray], Callable[[], torch.Tensor]] = field(repr=False, default=None)

    def const(self, i: int, what: str) -> np.ndarray:
        if i >= len(self.consts) or self.consts[i] is None:
            raise InputError(f"expected {what} (input {i}) of {self.op} node '{self.name}' to be a constant "
                             f"in the model file, got {'nothing' if i >= len(self.consts) else self.inputs[i]}")
        return self.consts[i]

    def ints(self, key: str, default=None) -> list[int]:
        value = self.attr.get(key, {}).get("list", {}).get("i")
        return [int(v) for v in value] if value else default

    def string(self, key: str, default: str = "") -> str:
        value = self.attr.get(key, {}).get("s")
        return base64.b64decode(value).decode() if value else default

    def strings(self, key: str) -> list[str]:
        return [base64.b64decode(v).decode() for v in self.attr.get(key, {}).get("list", {}).get("s", [])]

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self.attr.get(key, {}).get("b", default))

    def number(self, key: str, default: float = 0.0) -> float:
        return float(self.attr.get(key, {}).get("f", default))

    def integer(self, key: str, default: int = 0) -> int:
        return int(self.attr.get(key, {}).get("i", default))

    def refuse(self, what: str) -> InputError:
        return InputError(f"unsupported {what} in {self.op} node '{self.name}' of the TensorFlow.js model")
