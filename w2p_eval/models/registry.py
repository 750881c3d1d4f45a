"""Models and baselines by name, as lazy "module:attr" strings (nothing heavy imported at start).

:data:`MODELS` is the one registry of generators: each entry's target is a FaceGenerator subclass (with
``.from_checkpoint``), ``meta["trainer"]`` the "module:attr" of the function that trains it (the YAML's
``model:`` key picks the entry; :func:`w2p_eval.train.registry.get_trainer`), ``meta["baseline"]`` whether it
is a baseline. Each generator is declared in its own module (``REGISTER_MODELS = (Entry("<name>",
"<Class>", "<help>", {"trainer": ..., "baseline": True}, order=N),)``), found there without importing it; no
list here changes. Plugins add generators through the ``w2p_eval.baselines`` entry-point group (the object's
``registry_meta = {"trainer": "pkg:train"}``).
"""

from __future__ import annotations

import os

from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import load_checkpoint
from w2p_eval.names import lookup
from w2p_eval.registry import Registry

# every generator declares itself where it is defined (``REGISTER_MODELS`` in its models/*.py module), read
# without importing it
MODELS = Registry("model", "w2p_eval.baselines", packages=("w2p_eval.models",), marker="REGISTER_MODELS")


def load_generator(ckpt_or_path, device: str = "cpu"):
    """A checkpoint dict or path -> the FaceGenerator it holds, in eval mode on ``device``."""
    ckpt = ckpt_or_path if isinstance(ckpt_or_path, dict) else load_checkpoint(os.fspath(ckpt_or_path))
    cls = lookup(MODELS, ckpt["model"], "model")
    try:
        gen = cls.from_checkpoint(ckpt, device=device)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        raise InputError(f"expected the weights of a {ckpt['model']} model in checkpoint {ckpt.get('path')}, "
                         f"got unusable state ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})") from None
    return gen.to(device).eval()
