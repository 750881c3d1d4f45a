"""w2p-eval: train WAV2PIX and honest baselines, and score them the way papers do.

``w2p_eval.evaluate_faces(faces, pair_ids, data=...)`` scores any model's faces from Python (see
:mod:`w2p_eval.api`); it is imported on first use so that ``import w2p_eval`` and ``w2p-eval --help`` stay light.
"""

__version__ = "0.1.0"
__all__ = ["evaluate_faces", "test_pairs"]


def __getattr__(name: str):
    if name in __all__:
        from w2p_eval import api  # lazy: `import w2p_eval` (and --help) stay light

        return getattr(api, name)
    raise AttributeError(f"module 'w2p_eval' has no attribute {name!r}")
