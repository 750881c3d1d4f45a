"""torch, numpy and pandas imported on first use, for the modules on the CLI's light paths.

Two light paths: `w2p-eval --help`, `w2p-eval results` and the option checks import :mod:`w2p_eval.utils`,
:mod:`w2p_eval.validate`, :mod:`w2p_eval.text`, :mod:`w2p_eval.results` and :mod:`w2p_eval.cache`, which must not
import torch, numpy or pandas at their top (tests/unit/test_core.py proves --help imports none of them); landmark
worker processes read images through :mod:`w2p_eval.data.images` without torch. Those modules use
:data:`torch` below and call :func:`numpy` / :func:`pandas` where they need the library.

And `w2p-eval compare --store` (issue 26: stored sources compared without opening a checkpoint or a judge) runs
no network at all, so importing torch (about 2 s, most of the command) is pure cost: the modules on that path
(the evaluation core, the suites, the sources, the judges' front modules) say ``from w2p_eval.lazy import torch``
(and ``F`` for ``torch.nn.functional``): a :class:`LazyModule` that imports torch on its first attribute use.
Modules that define ``nn.Module`` classes use torch when they are imported, so they are reached through the
registries' lazy "module:attr" targets, not imported by the modules on that path (tests/unit/test_evaluation_core.py
proves `compare --store` imports no torch). Everywhere else imports sit at the top of a module.
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """Stands for the module ``name`` and imports it on the first attribute read (``torch.zeros``,
    ``isinstance(x, torch.Tensor)``); after that its attributes are copied here, so reads are plain lookups."""

    PROBES = frozenset({"__wrapped__", "__signature__", "__test__"})  # what inspect / doctest / pytest ask of globals

    def __getattr__(self, attr: str):
        if attr in self.PROBES:  # introspection loads nothing
            raise AttributeError(attr)
        module = importlib.import_module(self.__name__)
        self.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return getattr(module, attr)


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


def numpy():
    """The numpy module (imported now, on first use)."""
    return importlib.import_module("numpy")


def pandas():
    """The pandas module (imported now, on first use)."""
    return importlib.import_module("pandas")
