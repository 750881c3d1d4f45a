"""Peak memory of a fully stored re-run: `evaluate` of K WAV2PIX 128 px checkpoints that the store already holds.

    python benchmarks/skip_rss.py [--k 3] [--work scratch/skip_rss] [--old-tree /path/to/older/checkout]

Setup (untimed): a small demo dataset, K untrained seeded WAV2PIX 128 px checkpoints written like training
writes them (generator + discriminator weights and their Adam states, ~217 MB each), and one `evaluate
--metrics identity` that stores their rows. Measured: the same `evaluate` again in a fresh process (every
source skipped), its peak RSS (``VmHWM`` of that process; ``getrusage`` would report the parent's peak, kept
across exec), the peak of its anonymous part (``RssAnon`` sampled every 5 ms: what the process itself
allocated, without the shared-library pages of torch and dlib) and its seconds. Target: peak RSS < 600 MB. With
``--old-tree`` the older code re-runs the same command on the same store, for the ratio.
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
RUNNER = r"""
import json, sys, threading, time
def status(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) / 1024
anon = [0.0]
def sample():  # the anonymous (private) part of RSS, sampled every 5 ms; shared-library pages are RssFile
    while True:
        anon[0] = max(anon[0], status("RssAnon"))
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
from w2p_eval.cli import main
t0 = time.perf_counter()
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
time.sleep(0.02)
print("RSS " + json.dumps({"seconds": round(time.perf_counter() - t0, 2), "exit": code,
                           "peak_rss_mb": round(status("VmHWM"), 1), "peak_anon_mb": round(anon[0], 1),
                           "rss_file_mb_at_end": round(status("RssFile"), 1)}), file=sys.stderr)
"""


def run(tree: Path, argv: list, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, *map(str, argv)], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(tree)}, cwd=tree)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("RSS ")]
    if not line or json.loads(line[-1][4:])["exit"] not in (0, None):
        raise SystemExit(f"command failed in {tree}:\n{proc.stderr[-3000:]}")
    return {**json.loads(line[-1][4:]), "stdout": proc.stdout.strip().splitlines()[-1:]}


def make_checkpoints(data: Path, run_dir: Path, k: int) -> list[Path]:
    """K untrained WAV2PIX 128 px checkpoints with the weights and optimiser states a training run saves."""
    import torch

    from w2p_eval.data.manifest import identities, manifest_hash
    from w2p_eval.models.checkpoint import checkpoint_path, save_checkpoint
    from w2p_eval.models.wav2pix import Discriminator, Wav2Pix

    names = identities(data)
    out = []
    for epoch in range(1, k + 1):
        path = checkpoint_path(run_dir, epoch)
        if not path.is_file():
            torch.manual_seed(epoch)
            g, d = Wav2Pix(names, 128, 1.0), Discriminator(128)
            opts = {}
            for name, net in (("generator", g), ("discriminator", d)):
                opt = torch.optim.Adam(net.parameters(), lr=1e-4)
                for p in net.parameters():
                    p.grad = torch.zeros_like(p)
                opt.step()
                opts[name] = opt.state_dict()
            save_checkpoint(path, model="wav2pix", epoch=epoch,
                            config={"model": "wav2pix", "image_size": 128, "audio_seconds": 1.0, "seed": epoch},
                            identities=names, image_size=128, audio_seconds=1.0,
                            state={"generator": g.state_dict(), "discriminator": d.state_dict()}, optim=opts,
                            data_hash=manifest_hash(data))
        out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--work", type=Path, default=REPO / "scratch" / "skip_rss")
    ap.add_argument("--old-tree", type=Path, default=None)
    args = ap.parse_args()
    work = args.work
    env = {**os.environ, "W2P_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "2"}
    data = work / "data"
    if not (data / "dataset.json").is_file():
        run(REPO, ["prepare", "demo", "--out", data, "--identities", 4, "--pairs", 12], env)
    ckpts = make_checkpoints(data, work / "wav2pix_128", args.k)
    sizes = [round(p.stat().st_size / 2**20) for p in ckpts]
    argv = ["evaluate", work / "wav2pix_128", "--data", data, "--store", work / "r.sqlite", "--metrics", "identity",
            "--cache-dir", work / "cache"]
    t0 = time.perf_counter()
    run(REPO, argv, env)  # stores the rows (untimed setup)
    setup = time.perf_counter() - t0
    res = {"k": args.k, "checkpoint_mb": sizes, "setup_s": round(setup, 1), "this_tree": run(REPO, argv, env)}
    if args.old_tree:
        res["old_tree"] = run(args.old_tree, argv, env)
    print(json.dumps(res, indent=1))
    mine = res["this_tree"]
    def say(r: dict) -> str:
        return f"peak RSS {r['peak_rss_mb']} MB (anonymous {r['peak_anon_mb']} MB), {r['seconds']} s"

    print(f"skipped re-run of {args.k} stored WAV2PIX 128 px checkpoints ({sizes} MB): {say(mine)} (target < 600 MB)"
          + (f"; older tree {say(res['old_tree'])}" if args.old_tree else ""))


if __name__ == "__main__":
    main()
