"""Do torch's CPU threads oversubscribe when another process competes for the cores?

Times the WAV2PIX training iteration `w2p-eval train` runs (GanStep, 64 px, batch 16 as in the demo) with
torch intra-op threads = every core vs fewer, alone and beside K CPU-bound competitor processes (a busy
Python loop each), all in one run, so the ratios are measured under the same conditions.

Usage:  python benchmarks/threads_contention.py [--threads 2 1] [--competitors 0 1] [--iters 6] [--batch-size 16]
Prints one line per (competitors, threads): seconds per iteration, and the machine's load average.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import time_loop  # noqa: E402


def _busy() -> None:
    while True:
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({cores, max(1, cores - 1)}, reverse=True))
    ap.add_argument("--competitors", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    print(f"{cores} cores available; load average at start {os.getloadavg()}", flush=True)
    for k in args.competitors:
        procs = [mp.Process(target=_busy, daemon=True) for _ in range(k)]
        for p in procs:
            p.start()
        try:
            time.sleep(0.5 if k else 0)
            for t in args.threads:
                torch.set_num_threads(t)
                dt = time_loop("efficient", args.size, args.batch_size, "cpu", args.iters, 1, n_ids=8)
                print(f"competitors {k}  torch threads {t}: {dt:6.2f} s/iteration "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
