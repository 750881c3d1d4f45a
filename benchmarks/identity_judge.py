"""Identity judge speed: dlib's face descriptor in torch (``dlib_resnet``) vs in dlib-bin
(``dlib_resnet_native``), both measured on the same faces in one run.

    python benchmarks/identity_judge.py [--data DATA] [--work DIR] [--n-faces 256] [--epochs 2] [--threads 2]

1. Descriptor throughput (faces/s): the same aligned 150 px chips (real release faces at the
   generator's 64 px, upsampled and aligned exactly as the judge does) through dlib-bin's
   ``compute_face_descriptor`` and through the torch network, batches of 64, after one warm-up
   batch each; best of ``--repeats``. Also the whole trunk (alignment + descriptor) per path.
2. Seconds per checkpoint of identity evaluation, end to end (``evaluate_identity``, the code of
   ``w2p-eval identity``): generation of the release test split (615 pairs), descriptors of the
   generated faces, the head, all metrics. The judge is trained and the real faces' scores are cached
   first (untimed, on another checkpoint), as when a run's checkpoints are scored one after another.
3. End to end (``--end-to-end``): the whole ``w2p-eval identity --ckpt CKPT --no-store`` command in a fresh
   process (imports, the dataset object, generation, descriptors, head, metrics, intervals; judge and
   real-face scores cached by a first, untimed command on another checkpoint) against dlib-bin's alignment +
   descriptor (``dlib_resnet_native``'s trunk) called directly on as many faces (the test split's real faces at
   64 px, the size the generator draws). Target: the command >= 2.5x faster.

Data: the WAV2PIX release from ../shared/data (prepared into ``--work`` unless ``--data`` is given);
the checkpoints are a WAV2PIX 64 px run of ``--epochs`` epochs trained here (setup, untimed). Prints
the 1-minute load average (the machine may be shared), the device, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("W2P_SHARED_DATA", REPO.parent / "shared" / "data"))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def prepared_release(work: Path) -> Path:
    from w2p_eval.data.prepare_release import prepare_release

    data = work / "release"
    if not (data / "manifest.csv").is_file():
        src = SHARED / "wav2pix_release"
        if not src.is_dir():
            sys.exit(f"benchmark needs {src} (or --data)")
        prepare_release(src, data, seed=0)
    return data


def trained_checkpoints(data: Path, work: Path, epochs: int) -> list[Path]:
    from w2p_eval.models.checkpoint import list_checkpoints
    from w2p_eval.train.run import run_training

    run = work / f"wav2pix_{epochs}ep"
    if len(list_checkpoints(run) if run.is_dir() else []) < 2:
        overrides = {"epochs": epochs, "checkpoint_every": 1, "n_samples": 4}
        run_training(REPO / "baselines" / "wav2pix_64.yaml", data, run, overrides=overrides, device="cpu", seed=0)
    return list_checkpoints(run)


def descriptor_speed(data: Path, n: int, repeats: int, device: str) -> dict:
    from w2p_eval.data.manifest import load_manifest
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8

    df = load_manifest(data).drop_duplicates("face_id")
    df = df.iloc[np.linspace(0, len(df) - 1, min(n, len(df))).astype(int)]
    faces = real_faces_uint8(data, df, 64)
    torch_bb = load_identity_backbone("dlib_resnet", device=device)
    torch_bb2 = load_identity_backbone("dlib_resnet", device=device, workers=2)
    native = load_identity_backbone("dlib_resnet_native")
    chips = torch_bb.chips(faces)
    out = {"n_faces": len(faces)}
    for name, fn in (("native", lambda: native.describe_chips(chips)), ("torch", lambda: torch_bb.describe_chips(chips))):
        (native if name == "native" else torch_bb).describe_chips(chips[:64])  # warm-up batch
        out[f"descriptor_s_{name}"] = best_of(fn, repeats)
        out[f"descriptor_faces_per_s_{name}"] = len(chips) / out[f"descriptor_s_{name}"]
    for name, bb in (("native", native), ("torch", torch_bb), ("torch_2workers", torch_bb2)):
        bb.trunk(faces[:8])
        out[f"trunk_faces_per_s_{name}"] = len(faces) / best_of(lambda: bb.trunk(faces), repeats)
    a, b = native.describe_chips(chips).numpy(), torch_bb.describe_chips(chips).numpy()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    out.update(worst_cosine=float(cos.min()), max_abs_diff=float(np.abs(a - b).max()))
    torch_bb2.close()
    return out


def per_checkpoint(data: Path, ckpts: list[Path], work: Path, device: str) -> dict:
    from w2p_eval.metrics.identity import evaluate_identity

    out = {}
    setups = (("native", "dlib_resnet_native", None), ("torch", "dlib_resnet", None),
              ("torch_2workers", "dlib_resnet", {"workers": 2}))
    for name, backbone, options in setups:
        cache = work / "cache"  # the same judge cache for every run of one backbone
        t0 = time.perf_counter()
        evaluate_identity([ckpts[0]], data, backbone=backbone, cache_dir=cache, device=device,
                          backbone_options=options)
        out[f"setup_s_{name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = evaluate_identity([ckpts[-1]], data, backbone=backbone, cache_dir=cache, device=device,
                                 backbone_options=options)
        out[f"s_per_checkpoint_{name}"] = time.perf_counter() - t0
        out[f"rows_{name}"] = {r["metric"]: round(r["value"], 4) for r in rows}
    return out


def untrained_checkpoints(data: Path, work: Path) -> list[Path]:
    """Two untrained, seeded WAV2PIX 64 px checkpoints (same cost to score as trained ones; no training)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from evaluate import make_checkpoint

    run = work / "wav2pix_untrained" / "checkpoints"
    return [p if p.is_file() else make_checkpoint(data, p, seed=i)
            for i, p in enumerate((run / "epoch_0000.pt", run / "epoch_0001.pt"))]


def end_to_end(data: Path, ckpts: list[Path], work: Path, threads: int) -> dict:
    """Seconds of the whole `identity --ckpt` command (fresh process, caches warm) vs dlib-bin's trunk on as
    many faces, called directly."""
    import subprocess

    from w2p_eval.data.folder import open_dataset
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    cache = work / "cache_e2e"

    def command(ckpt: Path) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "w2p_eval", "identity", "--ckpt", str(ckpt), "--data", str(data),
                               "--cache-dir", str(cache), "--no-store", "--device", "cpu"],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"identity command failed:\n{proc.stderr[-2000:]}")
        return time.perf_counter() - t0

    command(ckpts[0])  # trains and caches the judge and the real faces' scores (untimed)
    seconds = min(command(ckpts[-1]) for _ in range(2))
    ds = open_dataset(data)
    faces = real_faces_uint8(ds, ds.split("test"), 64)
    native = load_identity_backbone("dlib_resnet_native")
    native.trunk(faces[:8])
    t0 = time.perf_counter()
    native.trunk(faces)
    t_native = time.perf_counter() - t0
    return {"e2e_n_faces": len(faces), "e2e_command_s": seconds, "e2e_native_trunk_s": t_native,
            "e2e_speedup": t_native / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="prepared release dataset (default: prepare one)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the prepared data, run and caches")
    ap.add_argument("--n-faces", type=int, default=256, help="distinct real faces for the descriptor timing")
    ap.add_argument("--epochs", type=int, default=2, help="WAV2PIX epochs of the benchmark run (>= 2 checkpoints)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    ap.add_argument("--skip-checkpoint", action="store_true", help="only the descriptor throughput")
    ap.add_argument("--end-to-end", action="store_true",
                    help="also the whole `identity --ckpt` command vs dlib-bin's alignment + descriptor")
    ap.add_argument("--end-to-end-only", action="store_true", help="only that row (untrained checkpoints)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from w2p_eval.utils import select_device

    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="w2p-bench-identity-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data or prepared_release(work)
    res = {"device": device, "threads": args.threads, "cpu_count": os.cpu_count(),
           "load_avg_1min_before": os.getloadavg()[0], "torch": torch.__version__}
    if device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name(0)
    if args.end_to_end_only:
        res.update(end_to_end(data, untrained_checkpoints(data, work), work, args.threads))
        print(json.dumps(res, indent=2) if args.json else
              f"identity --ckpt, whole command ({res['e2e_n_faces']} test faces, caches warm): {res['e2e_command_s']:.1f} s; "
              f"dlib-bin alignment + descriptor on as many faces: {res['e2e_native_trunk_s']:.1f} s -> "
              f"{res['e2e_speedup']:.2f}x (target 2.5x)")
        return
    res.update(descriptor_speed(data, args.n_faces, args.repeats, device))
    res["descriptor_speedup"] = res["descriptor_faces_per_s_torch"] / res["descriptor_faces_per_s_native"]
    res["trunk_speedup"] = res["trunk_faces_per_s_torch"] / res["trunk_faces_per_s_native"]
    if not args.skip_checkpoint:
        ckpts = trained_checkpoints(data, work, args.epochs)
        res.update(per_checkpoint(data, ckpts, work, device))
        for name in ("torch", "torch_2workers"):
            res[f"checkpoint_speedup_{name}"] = res["s_per_checkpoint_native"] / res[f"s_per_checkpoint_{name}"]
        res["rows_agree_to_4_decimals"] = res["rows_native"] == res["rows_torch"] == res["rows_torch_2workers"]
        if args.end_to_end:
            res.update(end_to_end(data, ckpts, work, args.threads))
    res["load_avg_1min_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"device {device} ({res.get('gpu', f'{args.threads} threads, {os.cpu_count()} CPUs')}), torch {res['torch']}, "
          f"load average {res['load_avg_1min_before']:.2f} -> {res['load_avg_1min_after']:.2f}")
    print(f"descriptor, {res['n_faces']} aligned chips: dlib-bin {res['descriptor_faces_per_s_native']:.1f} faces/s, "
          f"torch {res['descriptor_faces_per_s_torch']:.1f} faces/s -> {res['descriptor_speedup']:.1f}x")
    print(f"trunk (alignment + descriptor): dlib-bin {res['trunk_faces_per_s_native']:.1f} faces/s, torch "
          f"{res['trunk_faces_per_s_torch']:.1f} (2 workers {res['trunk_faces_per_s_torch_2workers']:.1f}) faces/s "
          f"-> {res['trunk_speedup']:.1f}x")
    print(f"same chips: worst cosine {res['worst_cosine']:.7f}, max abs difference {res['max_abs_diff']:.2e}")
    if not args.skip_checkpoint:
        print(f"identity evaluation per checkpoint (615 test pairs, judge cached): dlib-bin "
              f"{res['s_per_checkpoint_native']:.1f} s, torch {res['s_per_checkpoint_torch']:.1f} s "
              f"({res['checkpoint_speedup_torch']:.1f}x), torch + 2 alignment workers "
              f"{res['s_per_checkpoint_torch_2workers']:.1f} s ({res['checkpoint_speedup_torch_2workers']:.1f}x)")
        print(f"first checkpoint incl. training the judge: dlib-bin {res['setup_s_native']:.1f} s, torch "
              f"{res['setup_s_torch']:.1f} s")
        print(f"identity rows equal to 4 decimals across the paths: {res['rows_agree_to_4_decimals']}")
        if args.end_to_end:
            print(f"identity --ckpt, whole command ({res['e2e_n_faces']} test faces): {res['e2e_command_s']:.1f} s; "
                  f"dlib-bin alignment + descriptor on as many faces: {res['e2e_native_trunk_s']:.1f} s -> "
                  f"{res['e2e_speedup']:.2f}x (target 2.5x)")
        for metric, value in res["rows_native"].items():
            print(f"  {metric:24s} dlib-bin {value:.4f}  torch {res['rows_torch'][metric]:.4f}  "
                  f"torch+2w {res['rows_torch_2workers'][metric]:.4f}")


if __name__ == "__main__":
    main()
