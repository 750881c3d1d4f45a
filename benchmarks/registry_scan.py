"""What finding the built-in registry entries costs (issue 26): each registry reads the declarations
(``REGISTER_<KIND> = (Entry(...),)``) in its package folders without importing them, once per process. Measured
in one run: each scan cold (the per-process memo cleared), all five together, against the plugin entry-point
lookup every registry already does and against a whole ``w2p-eval evaluate --help`` process.

    python benchmarks/registry_scan.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from w2p_eval.cli.prepare import PREPARE_MODES  # noqa: E402  (after the path: run from a checkout)
from w2p_eval.judges import JUDGES  # noqa: E402
from w2p_eval.metrics.registry import SUITES  # noqa: E402
from w2p_eval.models.registry import MODELS  # noqa: E402
from w2p_eval.models.sources import SOURCE_KINDS  # noqa: E402
from w2p_eval.registry import declared_entries, plugin_entries  # noqa: E402

REGISTRIES = (SUITES, JUDGES, MODELS, SOURCE_KINDS, PREPARE_MODES)


def median_ms(fn, repeats: int) -> float:
    """The median wall time of ``fn()`` in ms, its memo cleared before each call."""
    times = []
    for _ in range(repeats):
        declared_entries.cache_clear()
        plugin_entries.cache_clear()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    print("| registry | files read | entries | scan (ms, median) |")
    print("|---|---|---|---|")
    for r in REGISTRIES:
        files = sum(1 for p in r.packages for _ in (ROOT / p.replace(".", "/")).glob("*.py"))
        ms = median_ms(lambda r=r: declared_entries(r.packages, r.marker), args.repeats)
        print(f"| {r.what} | {files} | {len(declared_entries(r.packages, r.marker))} | {ms:.2f} |")
    scans = median_ms(lambda: [declared_entries(r.packages, r.marker) for r in REGISTRIES], args.repeats)
    plugins = median_ms(lambda: plugin_entries("w2p_eval.suites", ()), args.repeats)
    helps = []
    for _ in range(max(3, args.repeats // 4)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "w2p_eval", "evaluate", "--help"], capture_output=True, check=True,
                       cwd=ROOT)
        helps.append((time.perf_counter() - t) * 1000)
    helped = statistics.median(helps)
    print(f"\nall five scans: {scans:.1f} ms; one plugin entry-point group lookup: {plugins:.1f} ms "
          f"(scans / lookup = {scans / plugins:.2f}); `w2p-eval evaluate --help` process: {helped:.0f} ms "
          f"(all five scans = {100 * scans / helped:.1f} % of it; evaluate --help scans two of them)")


if __name__ == "__main__":
    main()
