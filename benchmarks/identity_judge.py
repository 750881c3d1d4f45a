"""Identity judge speed: dlib's face descriptor in torch (``dlib_resnet``) vs in dlib-bin
(``dlib_resnet_native``), and HSE FaceRes (``faceres``, a TensorFlow.js graph read into torch), all measured on
the same faces in one run.

    python benchmarks/identity_judge.py [--data DATA] [--work DIR] [--n-faces 256] [--epochs 2] [--threads 2]
                                        [--paths native,torch,torch_2workers,faceres] [--device cuda]

1. Descriptor throughput (faces/s): the same aligned 150 px chips (real release faces at the
   generator's 64 px, upsampled and aligned exactly as the judge does) through dlib-bin's
   ``compute_face_descriptor`` and through the torch network, batches of 64, after one warm-up
   batch each; best of ``--repeats``. Also the whole trunk (alignment + descriptor) per path. ``faceres``:
   the same faces resized to 224 and preprocessed once, the graph's forward in batches of 64 (descriptor), and
   its trunk (resize + preprocessing + forward).
2. Seconds per checkpoint of identity evaluation, end to end (``api.evaluate_checkpoints``, the code of
   ``w2p-eval identity``): generation of the release test split (615 pairs), descriptors of the
   generated faces, the head, all metrics. The judge is trained and the real faces' scores are cached
   first (untimed, on another checkpoint), as when a run's checkpoints are scored one after another.
3. ``--e2e-backbones faceres,dlib_resnet[,faceres_glibc_default]``: only the whole ``w2p-eval identity --ckpt C
   --backbone B`` command per judge, each in a fresh process, interleaved over ``--e2e-rounds`` (issue 28 item 4:
   faceres no slower than dlib_resnet end to end), on two untrained seeded checkpoints; the one-time costs (the
   first run, which trains the judge's head; model load) apart from the per-face cost (trunk faces/s).
   ``faceres_glibc_default``: faceres with ``W2P_KEEP_FREED_MEMORY=0`` (the allocator as before round 4).

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


def fewer_training_faces(src: Path, out: Path, per_identity: int) -> Path:
    """``src`` with only its first ``per_identity`` training faces per identity and every test pair (hard links;
    the test suite's own helper): the benchmark's WAV2PIX run trains faster; the timed test split is unchanged."""
    sys.path.insert(0, str(REPO))  # tests/ as a package, like benchmarks/faceres_device.py
    from tests.helpers import fewer_training_faces as thin

    return out if (out / "manifest.csv").is_file() else thin(src, out, per_identity)


def trained_checkpoints(data: Path, work: Path, epochs: int) -> list[Path]:
    from w2p_eval.models.checkpoint import list_checkpoints
    from w2p_eval.train.run import run_training

    run = work / f"wav2pix_{epochs}ep_{data.name}"
    if len(list_checkpoints(run) if (run / "checkpoints").is_dir() else []) < 2:
        overrides = {"epochs": epochs, "checkpoint_every": 1, "n_samples": 4}
        run_training(REPO / "baselines" / "wav2pix_64.yaml", data, run, overrides=overrides, device="cpu", seed=0)
    return list_checkpoints(run)


DLIB_PATHS = ("native", "torch", "torch_2workers")
BACKBONES = {"native": ("dlib_resnet_native", None), "torch": ("dlib_resnet", None),
             "torch_2workers": ("dlib_resnet", {"workers": 2}), "faceres": ("faceres", None)}


def descriptor_speed(data: Path, n: int, repeats: int, device: str, paths: tuple[str, ...]) -> dict:
    import torch

    from w2p_eval.data.manifest import load_manifest
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8, resize_batch

    df = load_manifest(data).drop_duplicates("face_id")
    df = df.iloc[np.linspace(0, len(df) - 1, min(n, len(df))).astype(int)]
    faces = real_faces_uint8(data, df, 64)
    out = {"n_faces": len(faces)}
    bbs = {p: load_identity_backbone(BACKBONES[p][0], device=device, **(BACKBONES[p][1] or {})) for p in paths}
    if any(p in DLIB_PATHS for p in paths):
        chips = load_identity_backbone("dlib_resnet", device=device).chips(faces)
        for name in ("native", "torch"):
            if name in paths:
                bbs[name].describe_chips(chips[:64])  # warm-up batch
                out[f"descriptor_s_{name}"] = best_of(lambda: bbs[name].describe_chips(chips), repeats)
                out[f"descriptor_faces_per_s_{name}"] = len(chips) / out[f"descriptor_s_{name}"]
    if "faceres" in paths:
        from w2p_eval.judges.faceres import DESCRIPTOR, INPUT_SIZE, preprocess

        net = bbs["faceres"].net
        x = preprocess(torch.from_numpy(resize_batch(faces, INPUT_SIZE)))

        def forward():
            with torch.inference_mode():
                for i in range(0, len(x), 64):
                    net.graph(x[i:i + 64].to(device))[DESCRIPTOR].cpu()
        with torch.inference_mode():
            net.graph(x[:64].to(device))  # warm-up batch
        out["descriptor_s_faceres"] = best_of(forward, repeats)
        out["descriptor_faces_per_s_faceres"] = len(x) / out["descriptor_s_faceres"]
    for name, bb in bbs.items():
        bb.trunk(faces[:8])
        out[f"trunk_faces_per_s_{name}"] = len(faces) / best_of(lambda: bb.trunk(faces), repeats)
    if "native" in paths and "torch" in paths:
        a, b = bbs["native"].describe_chips(chips).numpy(), bbs["torch"].describe_chips(chips).numpy()
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        out.update(worst_cosine=float(cos.min()), max_abs_diff=float(np.abs(a - b).max()))
    if "torch_2workers" in bbs:
        bbs["torch_2workers"].close()
    return out


def per_checkpoint(data: Path, ckpts: list[Path], work: Path, device: str, paths: tuple[str, ...]) -> dict:
    from w2p_eval.api import evaluate_checkpoints as evaluate_identity

    out = {}
    for name in paths:
        backbone, options = BACKBONES[name]
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


E2E_VARIANTS = {"faceres": ("faceres", {}), "dlib_resnet": ("dlib_resnet", {}),
                "faceres_glibc_default": ("faceres", {"W2P_KEEP_FREED_MEMORY": "0"})}


def end_to_end_backbones(data: Path, ckpts: list[Path], work: Path, threads: int, variants: list[str],
                         rounds: int) -> dict:
    """The whole ``identity --ckpt C --backbone B`` command per judge (fresh process each, one cache per judge),
    interleaved: first a run on another checkpoint that trains the judge's head and caches the real faces'
    descriptors (one-time, timed apart), then ``rounds`` rounds of every judge in turn on the timed checkpoint
    (median). In this process, the parts: model load seconds and whole-trunk faces/s on the test split's
    distinct real faces (what a generated face costs the judge)."""
    import subprocess
    import statistics

    from w2p_eval.data.folder import open_dataset
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8

    def command(ckpt: Path, name: str) -> float:
        backbone, extra = E2E_VARIANTS[name]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), **extra}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "w2p_eval", "identity", "--ckpt", str(ckpt), "--data", str(data),
                               "--backbone", backbone, "--cache-dir", str(work / f"cache_e2e_{name}"),
                               "--no-store", "--device", "cpu"], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"identity --backbone {backbone} failed:\n{proc.stderr[-2000:]}")
        return time.perf_counter() - t0

    out = {"e2e_variants": variants, "e2e_rounds": rounds}
    for name in variants:
        out[f"e2e_first_s_{name}"] = command(ckpts[0], name)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name in variants:
            times[name].append(command(ckpts[-1], name))
    ds = open_dataset(data)
    faces = real_faces_uint8(ds, ds.split("test").drop_duplicates("face_id"), 64)
    out["e2e_n_distinct_test_faces"] = len(faces)
    for name in variants:
        out[f"e2e_s_{name}"] = statistics.median(times[name])
        out[f"e2e_all_s_{name}"] = [round(t, 2) for t in times[name]]
        backbone = E2E_VARIANTS[name][0]
        if f"load_s_{backbone}" not in out:
            t0 = time.perf_counter()
            bb = load_identity_backbone(backbone)
            out[f"load_s_{backbone}"] = time.perf_counter() - t0
            bb.trunk(faces)  # warm-up: the batch shapes' first calls (oneDNN primitives, packed filters, heap)
            t0 = time.perf_counter()
            bb.trunk(faces)
            out[f"trunk_faces_per_s_{backbone}"] = len(faces) / (time.perf_counter() - t0)
    return out


def report_e2e(res: dict) -> None:
    print(f"identity --ckpt, whole command per judge (fresh process; median of {res['e2e_rounds']} interleaved "
          f"rounds; first run = judge head training + real faces' descriptors, then cached):")
    for name in res["e2e_variants"]:
        backbone = E2E_VARIANTS[name][0]
        print(f"  {name:22s} {res[f'e2e_s_{name}']:6.1f} s (runs {res[f'e2e_all_s_{name}']}); first run "
              f"{res[f'e2e_first_s_{name}']:6.1f} s; in-process: model load {res[f'load_s_{backbone}']:.2f} s, "
              f"trunk {res[f'trunk_faces_per_s_{backbone}']:.1f} faces/s on "
              f"{res['e2e_n_distinct_test_faces']} distinct test faces")
    if "e2e_s_faceres" in res and "e2e_s_dlib_resnet" in res:
        first = res["e2e_first_s_dlib_resnet"] / res["e2e_first_s_faceres"]
        print(f"  dlib_resnet / faceres seconds: {res['e2e_s_dlib_resnet'] / res['e2e_s_faceres']:.2f}x "
              f"(>= 1: faceres no slower); first runs {first:.2f}x")


def report(res: dict, paths: tuple[str, ...], threads: int, skip_checkpoint: bool) -> None:
    print(f"device {res['device']} ({res.get('gpu', f'{threads} threads, {os.cpu_count()} CPUs')}), torch "
          f"{res['torch']}, load average {res['load_avg_1min_before']:.2f} -> {res['load_avg_1min_after']:.2f}")
    print(f"{res['n_faces']} faces; faces/s of the descriptor alone and of the whole trunk, s per checkpoint:")
    for name in paths:
        line = f"  {name:15s} trunk {res[f'trunk_faces_per_s_{name}']:8.1f} faces/s"
        if f"descriptor_faces_per_s_{name}" in res:
            line += f", descriptor {res[f'descriptor_faces_per_s_{name}']:8.1f} faces/s"
        if not skip_checkpoint:
            line += (f", {res[f's_per_checkpoint_{name}']:.1f} s per checkpoint "
                     f"(first incl. training the judge {res[f'setup_s_{name}']:.1f} s)")
        print(line)
    for key in ("descriptor_speedup", "trunk_speedup", "checkpoint_speedup_torch", "checkpoint_speedup_torch_2workers",
                "faceres_vs_dlib_resnet_descriptor", "faceres_vs_dlib_resnet_checkpoint"):
        if key in res:
            print(f"  {key}: {res[key]:.2f}x")
    if "worst_cosine" in res:
        print(f"same chips dlib-bin vs torch: worst cosine {res['worst_cosine']:.7f}, max abs difference "
              f"{res['max_abs_diff']:.2e}")
    if not skip_checkpoint:
        for metric in res[f"rows_{paths[0]}"]:
            print(f"  {metric:24s} " + "  ".join(f"{p} {res[f'rows_{p}'][metric]:.4f}" for p in paths))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="prepared release dataset (default: prepare one)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the prepared data, run and caches")
    ap.add_argument("--n-faces", type=int, default=256, help="distinct real faces for the descriptor timing")
    ap.add_argument("--epochs", type=int, default=2, help="WAV2PIX epochs of the benchmark run (>= 2 checkpoints)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    ap.add_argument("--skip-checkpoint", action="store_true", help="only the descriptor throughput")
    ap.add_argument("--paths", default=",".join(BACKBONES),
                    help=f"which judges to time, comma-separated among {', '.join(BACKBONES)}")
    ap.add_argument("--train-faces", type=int, default=0,
                    help="keep only the first N training faces per identity (faster set-up on a loaded machine; "
                         "the timed test split is the same)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="also the whole `identity --ckpt` command vs dlib-bin's alignment + descriptor")
    ap.add_argument("--end-to-end-only", action="store_true", help="only that row (untrained checkpoints)")
    ap.add_argument("--e2e-backbones", default="",
                    help=f"only the whole `identity --backbone B` command per judge, among {', '.join(E2E_VARIANTS)} "
                         "(comma-separated; untrained checkpoints)")
    ap.add_argument("--e2e-rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def run_e2e_backbones(args, data: Path, work: Path, res: dict) -> None:
    """`--e2e-backbones`: the whole `identity --backbone B` command per judge, printed (or JSON)."""
    variants = [v for v in args.e2e_backbones.split(",") if v]
    if not variants or any(v not in E2E_VARIANTS for v in variants):
        sys.exit(f"--e2e-backbones: expected names among {', '.join(E2E_VARIANTS)}, got {args.e2e_backbones!r}")
    res.update(end_to_end_backbones(data, untrained_checkpoints(data, work), work, args.threads, variants,
                                    args.e2e_rounds))
    res["load_avg_1min_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"device cpu, {args.threads} threads, {os.cpu_count()} CPUs, torch {res['torch']}, load average "
          f"{res['load_avg_1min_before']:.2f} -> {res['load_avg_1min_after']:.2f}")
    report_e2e(res)


def run_paths(args, data: Path, work: Path, device: str, paths: tuple[str, ...], res: dict) -> None:
    """The descriptor throughput of each judge path, then (unless --skip-checkpoint) per checkpoint and end to end."""
    res.update(descriptor_speed(data, args.n_faces, args.repeats, device, paths))
    print(f"descriptor timings: {json.dumps(res)}", file=sys.stderr)

    def ratio(key: str, a: str, b: str) -> None:
        if a in res and b in res:
            res[key] = res[a] / res[b]
    ratio("descriptor_speedup", "descriptor_faces_per_s_torch", "descriptor_faces_per_s_native")
    ratio("trunk_speedup", "trunk_faces_per_s_torch", "trunk_faces_per_s_native")
    ratio("faceres_vs_dlib_resnet_descriptor", "descriptor_faces_per_s_faceres", "descriptor_faces_per_s_torch")
    if not args.skip_checkpoint:
        ckpts = trained_checkpoints(data, work, args.epochs)
        res.update(per_checkpoint(data, ckpts, work, device, paths))
        for name in ("torch", "torch_2workers"):
            ratio(f"checkpoint_speedup_{name}", "s_per_checkpoint_native", f"s_per_checkpoint_{name}")
        ratio("faceres_vs_dlib_resnet_checkpoint", "s_per_checkpoint_torch", "s_per_checkpoint_faceres")
        dlib_rows = [res[f"rows_{p}"] for p in paths if p in DLIB_PATHS]
        res["dlib_rows_agree_to_4_decimals"] = all(r == dlib_rows[0] for r in dlib_rows)
        if args.end_to_end:
            res.update(end_to_end(data, ckpts, work, args.threads))
    res["load_avg_1min_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(res, indent=2))
        return
    report(res, paths, args.threads, args.skip_checkpoint)


def main() -> None:
    args = parse_args()

    import torch

    from w2p_eval.utils import select_device

    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    paths = tuple(p for p in args.paths.split(",") if p)
    unknown = [p for p in paths if p not in BACKBONES]
    if unknown or not paths:
        sys.exit(f"--paths: expected names among {', '.join(BACKBONES)}, got {args.paths!r}")
    work = args.work or Path(tempfile.mkdtemp(prefix="w2p-bench-identity-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data or prepared_release(work)
    if args.train_faces > 0:
        data = fewer_training_faces(data, work / f"{data.name}_{args.train_faces}faces", args.train_faces)
    res = {"device": device, "threads": args.threads, "cpu_count": os.cpu_count(),
           "load_avg_1min_before": os.getloadavg()[0], "torch": torch.__version__}
    if device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name(0)
    if args.e2e_backbones:
        run_e2e_backbones(args, data, work, res)
        return
    if args.end_to_end_only:
        res.update(end_to_end(data, untrained_checkpoints(data, work), work, args.threads))
        print(json.dumps(res, indent=2) if args.json else
              f"identity --ckpt, whole command ({res['e2e_n_faces']} test faces, caches warm): {res['e2e_command_s']:.1f} s; "
              f"dlib-bin alignment + descriptor on as many faces: {res['e2e_native_trunk_s']:.1f} s -> "
              f"{res['e2e_speedup']:.2f}x (target 2.5x)")
        return
    run_paths(args, data, work, device, paths, res)

if __name__ == "__main__":
    main()
