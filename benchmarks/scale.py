"""How evaluation cost grows with the dataset: seconds and peak memory against the number of identities N.

    python benchmarks/scale.py --identities 100 300 [1000] [--pairs 20] [--work scratch/scale] [--plot PNG]

For each N: ``prepare demo --identities N --pairs P``; fit one baseline checkpoint (mean_face); a **cold**
``evaluate`` of it with every suite (fresh cache and store: judge training, real-face landmarks and the
validation record are built) and a **warm** one (a new source name, the caches present). Each command runs in
its own process under cProfile; its peak RSS is ``VmHWM`` of that process (``getrusage`` would report the
parent's peak, kept across exec), and the time is split by the cumulative time of the functions that do
each part:

  data        the dataset object (manifest, dataset.json, structural and content checks)
  generation  the generator pass (faces of the test split)
  judge       identity judge: training or cache load, and scoring fake/real faces
  landmarks   landmark detection (generated and real faces)
  protocols   retrieval / distances / matching over the embeddings
  intervals   bootstrap intervals (every ``ci_dict``; per-identity ones included)
  store       results-store writes
  imports     the longest import chain (torch, scipy, dlib ... loaded on first use)

The parts overlap where one calls another (intervals inside protocols and judge suites), so they are shares
of the command, not a partition. Results go to ``--json`` (default WORK/scale.json); ``--plot`` draws seconds
and peak RSS against N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs one CLI command under cProfile in its own process; prints one JSON line with seconds, RSS and parts.
RUNNER = r"""
import cProfile, json, os, sys, time
from w2p_eval.cli import main
prof = cProfile.Profile()
t0 = time.perf_counter()
code = 0
prof.enable()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
prof.disable()
wall = time.perf_counter() - t0
prof.dump_stats(os.environ["SCALE_PROFILE"])
print("SCALE " + json.dumps({"seconds": round(wall, 2), "exit": code,
                             "peak_rss_mb": round(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024, 1)}),
      file=sys.stderr)
"""
# part -> (file, function) whose cumulative time is the part's (summed; nested calls of one part not counted twice
# because each listed function is a distinct entry point)
PARTS = {
    "data": [("w2p_eval/data/folder.py", "__init__"), ("w2p_eval/data/folder.py", "readable")],
    "generation": [("w2p_eval/models/generation.py", "_run_generator")],
    "judge": [("w2p_eval/judges/identity.py", "identity_classifier"), ("w2p_eval/judges/identity.py", "score"),
              ("w2p_eval/judges/identity.py", "real_scores")],
    "landmarks": [("w2p_eval/judges/landmarks.py", "score_images")],
    "protocols": [("w2p_eval/metrics/protocols_suite.py", "score")],
    "intervals": [("w2p_eval/metrics/base.py", "ci_dict"), ("w2p_eval/metrics/stats.py", "bootstrap_ci_many")],
    "store": [("w2p_eval/results.py", "write")],
    "imports": [("<frozen importlib._bootstrap>", "_find_and_load")],
}


def parts_of(profile: Path) -> dict:
    """Seconds per part (see PARTS) from a cProfile dump (cumulative times; ``imports`` = top-level imports)."""
    import pstats

    stats = pstats.Stats(str(profile)).stats
    out = {}
    for part, keys in PARTS.items():
        total = 0.0
        for (fname, _, func), (_, _, _, ct, callers) in stats.items():
            if any(fname.endswith(f) and func == fn for f, fn in keys):
                if part == "imports":  # only imports not made from inside another import
                    total = max(total, ct)
                else:
                    total += ct
        out[part] = round(total, 2)
    return out


def run(argv: list[str], env: dict, profile: Path | None = None) -> dict:
    """One command in a fresh process -> its JSON line (seconds, exit, parts, peak_rss_mb); ``profile``: where
    to keep its cProfile stats."""
    env = {**env, "SCALE_PROFILE": str(profile or Path(env["W2P_CACHE"]).parent / "last.prof")}
    proc = subprocess.run([sys.executable, "-c", RUNNER, *map(str, argv)], capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("SCALE ")]
    if not line:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(line[-1][6:])
    out["parts"] = parts_of(Path(env["SCALE_PROFILE"]))
    if out["exit"] not in (0, None):
        raise SystemExit(f"{argv[0]} exited {out['exit']}:\n{proc.stderr[-3000:]}")
    return out


def one_size(n: int, pairs: int, work: Path, env: dict) -> dict:
    root = work / f"n{n}"
    data, cache, store = root / "data", root / "cache", root / "r.sqlite"
    row: dict = {"identities": n, "pairs_per_identity": pairs}
    if not (data / "dataset.json").is_file():
        t0 = time.perf_counter()
        row["prepare"] = run(["prepare", "demo", "--out", data, "--identities", n, "--pairs", pairs], env)
        row["prepare"]["seconds_outer"] = round(time.perf_counter() - t0, 2)
    import pandas as pd

    df = pd.read_csv(data / "manifest.csv")
    row["n_pairs"], row["n_test_pairs"] = len(df), int((df["split_seen"] == "test").sum())
    ckpt = root / "mean_face"
    if not ckpt.exists():
        row["fit_baseline"] = run(["train", REPO / "baselines" / "mean_face.yaml", "--data", data, "--out", ckpt], env)
    suites = "identity,landmarks,speaker,retrieval,distances,matching"
    common = ["--data", data, "--store", store, "--cache-dir", cache, "--metrics", suites]
    import shutil

    shutil.rmtree(cache, ignore_errors=True)  # cold: no judge, landmarks or validation record yet
    store.unlink(missing_ok=True)
    row["evaluate_cold"] = run(["evaluate", ckpt, *common], env, root / "cold.prof")
    warm = root / "mean_face_warm"
    if not warm.exists():
        shutil.copytree(ckpt, warm)
    row["evaluate_warm"] = run(["evaluate", warm, *common, "--force"], env, root / "warm.prof")
    return row


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["identities"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("evaluate_cold", "evaluate (cold)"), ("evaluate_warm", "evaluate (warm)")):
        ax1.plot(ns, [r[key]["seconds"] for r in rows], "o-", label=label)
        ax2.plot(ns, [r[key]["peak_rss_mb"] for r in rows], "o-", label=label)
    for part in ("judge", "landmarks", "intervals", "data"):
        ax1.plot(ns, [r["evaluate_cold"]["parts"][part] for r in rows], ".--", label=f"cold: {part}")
    ax1.set(xlabel="identities N (20 pairs each)", ylabel="seconds", title="time")
    ax2.set(xlabel="identities N (20 pairs each)", ylabel="peak RSS (MB)", title="memory")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=REPO / "scratch" / "scale")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--plot-only", action="store_true", help="draw --plot from --json without running anything")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "W2P_CACHE": str(args.work / "cache")}
    out = args.json or args.work / "scale.json"
    rows = json.loads(out.read_text()) if out.is_file() else []
    for n in [] if args.plot_only else args.identities:
        rows = [r for r in rows if r["identities"] != n] + [one_size(n, args.pairs, args.work, env)]
        rows.sort(key=lambda r: r["identities"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
        r = rows[[x["identities"] for x in rows].index(n)]
        print(f"N={n}: {r['n_pairs']} pairs ({r['n_test_pairs']} test); evaluate cold {r['evaluate_cold']['seconds']} s "
              f"{r['evaluate_cold']['peak_rss_mb']} MB {r['evaluate_cold']['parts']}; warm {r['evaluate_warm']['seconds']} s "
              f"{r['evaluate_warm']['peak_rss_mb']} MB {r['evaluate_warm']['parts']}", flush=True)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
