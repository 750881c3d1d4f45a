"""torch, numpy and pandas imported on first use, for the few modules on the CLI's light start-up path.

`w2p-eval --help`, `w2p-eval results` and the option checks import :mod:`w2p_eval.utils`, :mod:`w2p_eval.validate`,
:mod:`w2p_eval.text`, :mod:`w2p_eval.results` and :mod:`w2p_eval.cache`, which must not import torch, numpy or
pandas at their top (tests/unit/test_core.py proves --help imports none of them); landmark worker processes read
images through :mod:`w2p_eval.data.images` without torch. Those modules call these three functions where they need
the library, so the deferred imports live in one place with their reason (everywhere else imports sit at the
top of a module: docs/architecture.md).
"""

from __future__ import annotations


def torch():
    """The torch module (imported now, on first use)."""
    import torch as module  # lazy: see the module docstring (the CLI's light start-up path)

    return module


def numpy():
    """The numpy module (imported now, on first use)."""
    import numpy as module  # lazy: see the module docstring (the CLI's light start-up path)

    return module


def pandas():
    """The pandas module (imported now, on first use)."""
    import pandas as module  # lazy: see the module docstring (the CLI's light start-up path)

    return module
