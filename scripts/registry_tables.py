"""The docs' tables of registered names, generated from the registries (w2p_eval/registry.py).

    python scripts/registry_tables.py          # rewrite the tables in docs/architecture.md
    python scripts/registry_tables.py --check  # exit 1 when a table is out of date (the unit test runs this)

A table sits between ``<!-- names: KIND -->`` and ``<!-- /names -->``; KIND is one of :data:`REGISTRIES`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from w2p_eval.cli.prepare import PREPARE_MODES  # noqa: E402  (after the path: run from a checkout)
from w2p_eval.judges import IDENTITY_BACKBONES, JUDGES  # noqa: E402
from w2p_eval.metrics.registry import SUITES  # noqa: E402
from w2p_eval.models.registry import MODELS  # noqa: E402
from w2p_eval.models.sources import SOURCE_KINDS  # noqa: E402

REGISTRIES = {"suites": SUITES, "judges": JUDGES, "identity-judges": IDENTITY_BACKBONES, "models": MODELS,
              "sources": SOURCE_KINDS, "prepare": PREPARE_MODES}
BLOCK = re.compile(r"(<!-- names: ([a-z-]+) -->\n)(.*?)(<!-- /names -->)", re.S)
DOC = ROOT / "docs" / "architecture.md"


def render(text: str) -> str:
    """``text`` with every names block holding its registry's current table."""
    def one(m: re.Match) -> str:
        meta = {"judges": "judge", "models": "baseline"}.get(m.group(2))
        return f"{m.group(1)}{REGISTRIES[m.group(2)].markdown(meta=meta)}\n{m.group(4)}"

    return BLOCK.sub(one, text)


def main() -> int:
    text = DOC.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print(f"{DOC}: a table of names is out of date; run python scripts/registry_tables.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
