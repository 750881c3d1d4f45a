"""Seconds of `prepare videos` wall time per minute of source video, on the GRID clips.

    python benchmarks/prepare.py [--src ../shared/data/grid_videos] [--repeats 3] [--threads 1]

Runs the whole pipeline (ffmpeg decode + 16 kHz audio, Haar detection once per second, crops,
k=5 audio crops, splits, writing the dataset) into temporary folders and prints one line per run
and a summary line: median seconds per minute of video. OpenCV threads are limited by --threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(REPO.parent / "shared" / "data" / "grid_videos"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    src = Path(args.src)
    if not src.is_dir():
        sys.exit(f"GRID videos not found at {src} (pass --src)")

    import cv2

    from w2p_eval.data.manifest import load_info
    from w2p_eval.data.prepare_videos import prepare_videos

    cv2.setNumThreads(args.threads)
    per_minute = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            line = prepare_videos(src, Path(tmp) / "data", seed=r)
            elapsed = time.perf_counter() - started
            minutes = load_info(Path(tmp) / "data")["seconds_of_video"] / 60.0
        per_minute.append(elapsed / minutes)
        print(f"run {r}: {elapsed:.2f} s for {minutes * 60:.1f} s of video -> {elapsed / minutes:.2f} s per minute ({line})")
    print(f"prepare videos: {statistics.median(per_minute):.2f} s per minute of video "
          f"(median of {args.repeats}, {os.cpu_count()} CPUs visible, cv2 threads {args.threads})")


if __name__ == "__main__":
    main()
