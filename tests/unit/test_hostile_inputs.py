"""Hostile inputs through the real CLI (issue 14): one line on stderr, the documented exit code, no
traceback, and nothing outside the command's own outputs changed.

Each case builds its inputs from real files in its own folder (a copy of the tiny dataset, one tiny
mean_face checkpoint made once for the module, edited copies of both), runs ``w2p_eval.cli.main`` in
this process and compares a snapshot (path, size, mtime) of the case folder before and after.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from tests.helpers import MEAN_FACE, REPO, astronaut, mean_face_run, run_cli, snapshot

WAV2PIX = str(REPO / "baselines" / "wav2pix_64.yaml")


# -- shared inputs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny dataset and one mean_face checkpoint trained on it (once per module)."""
    data, run = mean_face_run(tmp_path_factory.mktemp("hostile_base"))
    return {"data": data, "ckpt": run / "checkpoints" / "epoch_0000.pt"}


def copy_data(base, case: Path) -> Path:
    dst = case / "data"
    shutil.copytree(base["data"], dst)
    return dst


def edit_json(path: Path, fn) -> None:
    info = json.loads(path.read_text())
    path.write_text(json.dumps(fn(info)))


def edit_manifest(data: Path, fn) -> None:
    import pandas as pd

    df = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    fn(df)
    df.to_csv(data / "manifest.csv", index=False)


def edit_ckpt(base, case: Path, fn, name: str = "epoch_0000.pt") -> Path:
    ck = torch.load(base["ckpt"], weights_only=True)
    ck = fn(ck) or ck
    path = case / "ck" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, path)
    return path


# -- the cases: name -> setup(base, case folder) -> argv --------------------------------------------
def gen(data, ckpt, case):
    return ["generate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(case / "gen_out")]


def data_case(edit):
    def setup(base, case):
        data = copy_data(base, case)
        edit(data)
        return gen(data, base["ckpt"], case)
    return setup


def info_case(fn):
    return data_case(lambda d: edit_json(d / "dataset.json", fn))


def ckpt_case(fn, name="epoch_0000.pt"):
    def setup(base, case):
        return gen(base["data"], edit_ckpt(base, case, fn, name), case)
    return setup


def train_case(*extra, config=MEAN_FACE):
    def setup(base, case):
        return ["train", config, "--data", str(base["data"]), "--out", str(case / "run"), *extra]
    return setup


def _set(ck, key, value):
    ck[key] = value


def _del(ck, key):
    del ck[key]


def _nan_mean(ck):
    state = ck["state"]
    name = next(iter(state))
    key = next(iter(state[name]))
    state[name][key] = state[name][key].clone().fill_(math.nan)


def _shape_mean(ck):
    state = ck["state"]
    name = next(iter(state))
    key = next(iter(state[name]))
    state[name][key] = torch.zeros(3, 5, 5)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/w2p_pwned",))


def evil_ckpt(base, case):
    path = case / "evil.pt"
    torch.save({"format": "w2p-eval-checkpoint", "payload": Evil()}, path)
    return gen(base["data"], path, case)


def not_zip(base, case):
    path = case / "x.pt"
    path.write_bytes(b"not a checkpoint at all")
    return gen(base["data"], path, case)


def final_only_run(base, case):
    (case / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(base["ckpt"], case / "run" / "checkpoints" / "epoch_final.pt")
    return gen(base["data"], case / "run", case)


def foreign_folder(case) -> Path:
    out = case / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("do not touch")
    return out


def yaml_file(case, text) -> str:
    path = case / "cfg.yaml"
    path.write_text(text)
    return str(path)


def unrelated_sqlite(case) -> Path:
    path = case / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (t TEXT)")
    con.execute("INSERT INTO notes VALUES ('mine')")
    con.commit()
    con.close()
    return path


def held_lock(lock_path: Path):
    """Hold ``lock_path`` the way a live writer does (the fd stays open for the test's duration)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"pid 99999 on elsewhere\n")
    HELD.append(fd)


HELD: list[int] = []
BIG = str(2**64)

CASES = {
    # dataset.json
    "info-is-list": info_case(lambda i: [i]),
    "info-no-identities": info_case(lambda i: {k: v for k, v in i.items() if k != "identities"}),
    "info-identities-string": info_case(lambda i: {**i, "identities": "id00"}),
    "info-identities-one-short": info_case(lambda i: {**i, "identities": i["identities"][:-1]}),
    "info-identities-empty-name": info_case(lambda i: {**i, "identities": i["identities"] + [""]}),
    "info-identities-duplicate": info_case(lambda i: {**i, "identities": i["identities"] + ["id00"]}),
    "info-version-99": info_case(lambda i: {**i, "version": 99}),
    "info-no-version": info_case(lambda i: {k: v for k, v in i.items() if k != "version"}),
    "info-wrong-format": info_case(lambda i: {**i, "format": "something-else"}),
    "info-not-json": data_case(lambda d: (d / "dataset.json").write_text("{not json")),
    "info-binary": data_case(lambda d: (d / "dataset.json").write_bytes(b"\xff\xfe\x00garbage")),
    "info-missing": data_case(lambda d: (d / "dataset.json").unlink()),
    # manifest
    "manifest-empty-identity": data_case(lambda d: edit_manifest(d, lambda df: df.loc.__setitem__((0, "identity"), ""))),
    "manifest-unknown-identity": data_case(lambda d: edit_manifest(d, lambda df: df.loc.__setitem__((0, "identity"), "ghost"))),
    "manifest-missing-column": data_case(lambda d: edit_manifest(d, lambda df: df.drop(columns=["audio_path"], inplace=True))),
    "manifest-garbage": data_case(lambda d: (d / "manifest.csv").write_bytes(b"\x00\x01\x02" * 50)),
    "manifest-bad-split": data_case(lambda d: edit_manifest(d, lambda df: df.loc.__setitem__((0, "split_seen"), "validation"))),
    "manifest-duplicate-pair": data_case(lambda d: edit_manifest(d, lambda df: df.loc.__setitem__((1, "pair_id"), df.loc[0, "pair_id"]))),
    "manifest-all-absolute": data_case(lambda d: edit_manifest(d, lambda df: df.__setitem__("image_path", "/etc/passwd"))),
    "manifest-all-traversal": data_case(lambda d: edit_manifest(d, lambda df: df.__setitem__("audio_path", "../../../../etc/passwd"))),
    "manifest-all-duration-abc": data_case(lambda d: edit_manifest(d, lambda df: df.__setitem__("audio_duration", "abc"))),
    "manifest-all-start-inf": data_case(lambda d: edit_manifest(d, lambda df: df.__setitem__("audio_start", "inf"))),
    "manifest-all-start-negative": data_case(lambda d: edit_manifest(d, lambda df: df.__setitem__("audio_start", "-1"))),
    "data-folder-missing": lambda b, c: gen(c / "nowhere", b["ckpt"], c),
    # checkpoints
    "ckpt-epoch-abc": ckpt_case(lambda ck: _set(ck, "epoch", "abc")),
    "ckpt-epoch-negative": ckpt_case(lambda ck: _set(ck, "epoch", -3)),
    "ckpt-no-identities": ckpt_case(lambda ck: _del(ck, "identities")),
    "ckpt-identities-string": ckpt_case(lambda ck: _set(ck, "identities", "id00")),
    "ckpt-state-list": ckpt_case(lambda ck: _set(ck, "state", [1, 2])),
    "ckpt-audio-seconds-negative": ckpt_case(lambda ck: _set(ck, "audio_seconds", -1.0)),
    "ckpt-audio-seconds-nan": ckpt_case(lambda ck: _set(ck, "audio_seconds", math.nan)),
    "ckpt-version-99": ckpt_case(lambda ck: _set(ck, "version", 99)),
    "ckpt-image-size-96": ckpt_case(lambda ck: _set(ck, "image_size", 96)),
    "ckpt-nan-mean-face": ckpt_case(_nan_mean),
    "ckpt-wrong-shape-mean-face": ckpt_case(_shape_mean),
    "ckpt-unknown-model": ckpt_case(lambda ck: _set(ck, "model", "stylegan9")),
    "ckpt-wrong-format": ckpt_case(lambda ck: _set(ck, "format", "other")),
    "ckpt-other-identities": ckpt_case(lambda ck: _set(ck, "identities", ["a", "b", "c"])),
    "ckpt-pickled-code": evil_ckpt,
    "ckpt-not-zip": not_zip,
    "ckpt-missing": lambda b, c: gen(b["data"], c / "missing.pt", c),
    "ckpt-run-with-epoch-final": final_only_run,
    # training configs and --set values
    "set-num-workers-negative": train_case("--set", "num_workers=-1", config=WAV2PIX),
    "set-lr-g-negative": train_case("--set", "lr_g=-1", config=WAV2PIX),
    "set-lr-g-nan": train_case("--set", "lr_g=.nan", config=WAV2PIX),
    "set-betas-foo": train_case("--set", "betas=foo", config=WAV2PIX),
    "set-betas-out-of-range": train_case("--set", "betas=[2,3]", config=WAV2PIX),
    "set-betas-three": train_case("--set", "betas=[0.5,0.9,0.9]", config=WAV2PIX),
    "set-threads-negative": train_case("--set", "threads=-1", config=WAV2PIX),
    "set-threads-abc": train_case("--set", "threads=abc", config=WAV2PIX),
    "set-epochs-zero": train_case("--set", "epochs=0", config=WAV2PIX),
    "set-real-label-2": train_case("--set", "real_label=2", config=WAV2PIX),
    "set-model-mean-face-on-wav2pix": train_case("--set", "model=mean_face", config=WAV2PIX),
    "set-unknown-key": train_case("--set", "lr_gg=1e-4", config=WAV2PIX),
    "set-no-equals": train_case("--set", "lr_g", config=WAV2PIX),
    "set-seed-huge": train_case("--set", f"seed={BIG}"),
    "set-image-size-96-baseline": train_case("--set", "image_size=96"),
    "train-seed-huge": train_case("--seed", BIG),
    "train-seed-negative": train_case("--seed", "-1"),
    "train-seed-abc": train_case("--seed", "abc"),
    "train-threads-cli-zero": train_case("--threads", "0"),
    "train-device-cuda": train_case("--device", "cuda"),
    "train-device-cuda-7": train_case("--device", "cuda:7"),
    "train-device-nonsense": train_case("--device", "nonsense"),
    "train-device-meta": train_case("--device", "meta"),
    "config-python-tag": lambda b, c: ["train", yaml_file(c, "model: !!python/object/apply:os.system ['true']\n"),
                                       "--data", str(b["data"]), "--out", str(c / "run")],
    "config-list": lambda b, c: ["train", yaml_file(c, "- 1\n- 2\n"), "--data", str(b["data"]), "--out", str(c / "run")],
    "config-no-model": lambda b, c: ["train", yaml_file(c, "seed: 1\n"), "--data", str(b["data"]), "--out", str(c / "run")],
    "config-unknown-model": lambda b, c: ["train", yaml_file(c, "model: gan9000\n"), "--data", str(b["data"]),
                                          "--out", str(c / "run")],
    "config-missing": lambda b, c: ["train", str(c / "none.yaml"), "--data", str(b["data"]), "--out", str(c / "run")],
    # output folders and locations
    "train-out-foreign-folder": lambda b, c: ["train", MEAN_FACE, "--data", str(b["data"]),
                                              "--out", str(foreign_folder(c))],
    "train-out-under-file": lambda b, c: ["train", MEAN_FACE, "--data", str(b["data"]),
                                          "--out", str(Path(yaml_file(c, "x")) / "sub")],
    "train-locked-run": lambda b, c: (held_lock(c / "run" / ".w2p-eval.lock"),
                                      ["train", MEAN_FACE, "--data", str(b["data"]), "--out", str(c / "run")])[1],
    "generate-out-under-file": lambda b, c: ["generate", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]),
                                             "--out", str(Path(yaml_file(c, "x")) / "sub")],
    "generate-out-foreign-folder": lambda b, c: ["generate", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]),
                                                 "--out", str(foreign_folder(c))],
    "generate-seed-huge": lambda b, c: gen(b["data"], b["ckpt"], c) + ["--seed", BIG],
    "generate-device-meta": lambda b, c: gen(b["data"], b["ckpt"], c) + ["--device", "meta"],
    "prepare-out-nonempty": lambda b, c: ["prepare", "demo", "--out", str(foreign_folder(c))],
    "prepare-out-under-file": lambda b, c: ["prepare", "demo", "--out", str(Path(yaml_file(c, "x")) / "sub")],
    "prepare-concurrent": lambda b, c: (held_lock(c / ".demo.lock"), ["prepare", "demo", "--out", str(c / "demo")])[1],
    "prepare-seed-huge": lambda b, c: ["prepare", "demo", "--out", str(c / "demo"), "--seed", BIG],
    "prepare-folder-src-missing": lambda b, c: ["prepare", "folder", str(c / "none"), "--out", str(c / "d")],
    # results store
    "results-unrelated-sqlite": lambda b, c: ["results", "--store", str(unrelated_sqlite(c))],
    "results-not-sqlite": lambda b, c: ["results", "--store", yaml_file(c, "just text\n" * 50)],
    "results-store-under-file": lambda b, c: ["results", "--store", str(Path(yaml_file(c, "x")) / "r.sqlite")],
    "results-store-proc": lambda b, c: ["results", "--store", "/proc/self/status"],
    "results-store-missing": lambda b, c: ["results", "--store", str(c / "none.sqlite")],
    "results-seed-huge": lambda b, c: ["results", "--store", str(unrelated_sqlite(c)), "--seed", BIG],
    "results-neither": lambda b, c: ["results"],
    "identity-seed-huge": lambda b, c: ["identity", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]), "--seed", BIG],
    "identity-device-nonsense": lambda b, c: ["identity", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]),
                                              "--device", "nonsense"],
    # evaluate
    "evaluate-backbone-typo": lambda b, c: ["evaluate", str(c), "--data", str(b["data"]), "--backbone", "resnet_dlib",
                                            "--store", str(c / "s.sqlite")],
    "evaluate-backend-case": lambda b, c: ["evaluate", str(c), "--data", str(b["data"]), "--backend", "DLIB",
                                           "--metrics", "landmarks", "--store", str(c / "s.sqlite")],
    "evaluate-metrics-comma": lambda b, c: ["evaluate", str(c), "--data", str(b["data"]), "--metrics", ",",
                                            "--store", str(c / "s.sqlite")],
    "evaluate-metrics-unknown": lambda b, c: ["evaluate", str(c), "--data", str(b["data"]), "--metrics", "beauty",
                                              "--store", str(c / "s.sqlite")],
    "evaluate-store-unrelated": lambda b, c: ["evaluate", str(c), "--data", str(b["data"]), "--metrics", "speaker",
                                              "--store", str(unrelated_sqlite(c))],
    # report
    "report-out-foreign": lambda b, c: ["report", "--store", str(c / "s.sqlite"), "--out", str(foreign_folder(c))],
    "report-store-unrelated": lambda b, c: ["report", "--store", str(unrelated_sqlite(c)), "--out", str(c / "rep")],
    "report-store-missing": lambda b, c: ["report", "--store", str(c / "none.sqlite"), "--out", str(c / "rep")],
    "report-neither": lambda b, c: ["report", "--out", str(c / "rep")],
}


def _run_with_file_size_limit(argv, limit: int) -> tuple[int, str, str]:
    """``w2p-eval ARGV`` in a child process whose writes past ``limit`` bytes fail (EFBIG), as on a full disk."""
    script = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from w2p_eval.cli import main
        main({[str(a) for a in argv]!r})
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.returncode, proc.stdout, proc.stderr



# -- round two (issue 23): single-file outputs, markers, images, option ranges, test lists, stores ---------
@dataclass
class Expect:
    """A case whose outcome is not the default (exit 2, one line): ``code`` 1 for the environment, 0 for bad
    data that is skipped and counted; ``allowed_prefixes``: logged lines allowed beside the error line;
    ``match``: a regex stderr must contain; ``file_size_limit``: run in a child process with RLIMIT_FSIZE."""

    setup: Callable
    code: int = 2
    allowed_prefixes: tuple = ("\0",)
    match: str | None = None
    file_size_limit: int = 0
    outputs: tuple = ()  # path prefixes in the case folder that are the command's own outputs (may change)
    after: Callable | None = None  # after(case folder, stderr): further checks of what the command wrote


HELD_DB: list = []


def results_store(case: Path, name: str = "results.sqlite") -> Path:
    """A real results store with one row."""
    from w2p_eval.results import ResultsStore

    path = case / name
    ResultsStore(path).write([{
        "data_hash": "d", "run": "r<b>\nx", "model": "mean_face", "checkpoint": "c", "checkpoint_hash": "h",
        "epoch": 0, "metric": "identity_top1_fake", "split": "test", "protocol": "seen", "seed": 0, "value": 0.5,
        "n": 6, "evaluator": "identity/dlib_resnet", "evaluator_version": "1", "config_hash": "x", "extra": {}}])
    return path


def locked_store(case: Path) -> Path:
    """A results store another connection holds an exclusive lock on for the case's duration."""
    path = results_store(case)
    con = sqlite3.connect(path, isolation_level=None, timeout=1)
    con.execute("PRAGMA locking_mode = EXCLUSIVE")
    con.execute("BEGIN EXCLUSIVE")
    HELD_DB.append(con)
    return path


def report_folder(case: Path, files: list, *, link: tuple | None = None) -> Path:
    """An --out folder that looks like an earlier report whose marker lists ``files``; ``link`` = (name,
    target) makes R/name a symlink to target. A user's file sits outside R, where a forged marker points."""
    outside = case / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "thesis.tex").write_text("the user's file")
    out = case / "R"
    out.mkdir()
    (out / "report.md").write_text("# an earlier report\n")
    if link:
        (out / link[0]).symlink_to(link[1], target_is_directory=True)
    (out / ".w2p-eval.json").write_text(json.dumps({"command": "report", "files": ["report.md", *files]}))
    return out


def generate_folder_with_link(case: Path) -> Path:
    """An earlier generate folder whose checkpoint subfolder is a symlink to the user's folder."""
    (case / "outside").mkdir(exist_ok=True)
    (case / "outside" / "photo.png").write_bytes(b"the user's picture")
    out = case / "gen"
    out.mkdir()
    (out / ".w2p-eval.json").write_text(json.dumps({"command": "generate", "files": []}))
    (out / "epoch_0000").symlink_to(case / "outside", target_is_directory=True)
    return out


def report_into(case: Path, out: Path) -> list:
    return ["report", "--store", str(results_store(case, "s.sqlite")), "--out", str(out), "--no-samples"]


def make_testlist(base, case: Path, edit=None) -> Path:
    """A real frozen test list of the tiny dataset (no matching tuples: 1 face per identity), edited by
    ``edit(content)`` with its id recomputed, as a careful forger would."""
    from w2p_eval.metrics.testlist import build_testlist, testlist_id

    content = build_testlist(base["data"], matching=[], gallery_size=2, n_galleries=3)
    if edit is not None:
        edit(content)
        content["id"] = testlist_id(content)
    path = case / "list.json"
    path.write_text(json.dumps(content))
    return path


def evaluate_with_list(base, case, edit) -> list:
    return ["evaluate", str(base["ckpt"]), "--data", str(base["data"]), "--metrics", "identity,retrieval",
            "--testlist", str(make_testlist(base, case, edit)), "--store", str(case / "s.sqlite")]


def _ks(content, value):
    content["retrieval"]["ks"] = value


def _gallery(content, name):
    content["retrieval"]["galleries"][0][0] = name


def big_images(case: Path, side: int, mode: str = "L") -> Path:
    """A folder with two ordinary face-sized images and one of ``side`` x ``side`` px (cheap to store:
    one flat colour compresses to a few kB; only the header says how large it is)."""
    from PIL import Image

    folder = case / "imgs"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(astronaut()[::4, ::4]).save(folder / f"face{k}.png")
    Image.new(mode, (side, side)).save(folder / "huge.png", optimize=False)
    return folder


def face_folder_with_huge(base, case: Path) -> list:
    """A model's faces for the tiny dataset's test pairs (its real faces, named by pair id), one of them
    replaced by a 10,000 x 10,000 px file, scored with landmarks (the store is the command's output)."""
    import pandas as pd
    from PIL import Image

    df = pd.read_csv(base["data"] / "manifest.csv", dtype=str, keep_default_na=False)
    folder = case / "faces"
    folder.mkdir()
    test = df[df.split_seen == "test"]
    for pid, rel in zip(test.pair_id, test.image_path):
        shutil.copy(base["data"] / rel, folder / f"{pid}.png")
    Image.new("L", (10_000, 10_000)).save(folder / f"{test.pair_id.iloc[0]}.png")
    return ["landmarks", "--images", str(folder), "--name", "m", "--data", str(base["data"]),
            "--store", str(case / "s.sqlite"), "--cache-dir", str(case / "cache")]


def prepare_demo_full_disk(base, case):
    return ["prepare", "demo", "--out", str(case / "demo")]


def store_full_disk(base, case):
    """landmarks --real run once (its cache filled, the store holding its rows), then again where no file may
    grow past 5 kB: the store's write-ahead log cannot take the new rows."""
    argv = ["landmarks", "--real", "--data", str(base["data"]), "--store", str(results_store(case)),
            "--image-size", "16", "--cache-dir", str(case / "cache")]
    assert run_cli(argv).returncode == 0
    return argv


ROUND_TWO = {
    # single-file outputs: never an input, never a file the verb did not write
    "compare-out-is-a-store": lambda b, c: ["compare", str(b["ckpt"]), str(b["ckpt"]), "--data", str(b["data"]),
                                            "--out", str(results_store(c))],
    "compare-out-is-the-manifest": lambda b, c: (lambda d: ["compare", str(b["ckpt"]), str(b["ckpt"]), "--data",
                                                            str(d), "--out", str(d / "manifest.csv")])(copy_data(b, c)),
    "compare-out-symlink": lambda b, c: (os.symlink(yaml_file(c, "mine"), c / "cmp.json"),
                                         ["compare", str(b["ckpt"]), str(b["ckpt"]), "--data", str(b["data"]),
                                          "--out", str(c / "cmp.json")])[1],
    "testlist-out-is-a-store": lambda b, c: ["testlist", "--data", str(b["data"]), "--out", str(results_store(c))],
    "testlist-out-is-the-manifest": lambda b, c: (lambda d: ["testlist", "--data", str(d), "--out",
                                                             str(d / "manifest.csv")])(copy_data(b, c)),
    "testlist-out-is-dataset-json": lambda b, c: (lambda d: ["testlist", "--data", str(d), "--out",
                                                             str(d / "dataset.json")])(copy_data(b, c)),
    "landmarks-per-image-is-a-store": lambda b, c: ["landmarks", "--images", str(b["data"] / "faces"), "--per-image",
                                                    str(results_store(c))],
    "landmarks-per-image-is-the-store-written": lambda b, c: ["landmarks", "--ckpt", str(b["ckpt"]), "--data",
                                                              str(b["data"]), "--store", str(c / "s.sqlite"),
                                                              "--per-image", str(c / "s.sqlite")],
    # ownership markers: entries relative to the folder, never through a link, never outside it
    "report-marker-absolute-entry": lambda b, c: report_into(c, report_folder(c, [str(c / "outside" / "thesis.tex")])),
    "report-marker-dotdot-entry": lambda b, c: report_into(c, report_folder(c, ["../outside/thesis.tex"])),
    "report-marker-entry-through-link": lambda b, c: report_into(c, report_folder(
        c, ["keep/thesis.tex"], link=("keep", c / "outside"))),
    "generate-out-link-inside": lambda b, c: (lambda out: ["generate", "--ckpt", str(b["ckpt"]), "--data",
                                                          str(b["data"]), "--out", str(out)])(generate_folder_with_link(c)),
    "train-lock-file-is-a-symlink": lambda b, c: ((c / "run").mkdir(), (c / "run" / ".w2p-eval.lock").symlink_to(
        yaml_file(c, "precious")), ["train", MEAN_FACE, "--data", str(b["data"]), "--out", str(c / "run")])[2],
    "report-tables-is-a-symlink": lambda b, c: report_into(c, report_folder(
        c, ["tables/metrics.csv"], link=("tables", c / "outside"))),
    # images: the size is read from the header; oversized files and bombs are counted skips (exit 0)
    "landmarks-image-10000px": Expect(lambda b, c: ["landmarks", "--images", str(big_images(c, 10_000))], code=0,
                                      match=r"1 of 3 images skipped|skipped.*1"),
    "landmarks-face-folder-10000px": Expect(face_folder_with_huge, code=0, match="larger than 1024 px",
                                            outputs=("s.sqlite", "s-items", "cache")),
    "landmarks-image-bomb-20000px": Expect(lambda b, c: ["landmarks", "--images", str(big_images(c, 20_000, "1"))],
                                           code=0, match=r"skipped"),
    # option ranges and parsed text, before any work
    "testlist-ks-zero-negative": lambda b, c: ["testlist", "--data", str(b["data"]), "--out", str(c / "t.json"),
                                               "--ks", "0,-1"],
    "testlist-ks-huge": lambda b, c: ["testlist", "--data", str(b["data"]), "--out", str(c / "t.json"),
                                      "--ks", str(10**30)],
    "testlist-n-galleries-huge": lambda b, c: ["testlist", "--data", str(b["data"]), "--out", str(c / "t.json"),
                                               "--n-galleries", "100000000"],
    "testlist-judge-setting-bad-yaml": lambda b, c: ["testlist", "--data", str(b["data"]), "--out", str(c / "t.json"),
                                                     "--judge-setting", "x=[1, 2"],
    "testlist-judge-setting-python-tag": lambda b, c: ["testlist", "--data", str(b["data"]), "--out",
                                                       str(c / "t.json"), "--judge-setting",
                                                       "x=!!python/object/apply:os.system ['true']"],
    "evaluate-n-galleries-huge": lambda b, c: ["evaluate", str(b["ckpt"]), "--data", str(b["data"]),
                                               "--n-galleries", "100000000", "--store", str(c / "s.sqlite")],
    "evaluate-matching-zero": lambda b, c: ["evaluate", str(b["ckpt"]), "--data", str(b["data"]),
                                            "--matching", "0", "--store", str(c / "s.sqlite")],
    "landmarks-image-size-huge": lambda b, c: ["landmarks", "--real", "--data", str(b["data"]), "--image-size",
                                               "100000", "--store", str(c / "s.sqlite")],
    "prepare-demo-identities-huge": lambda b, c: ["prepare", "demo", "--out", str(c / "demo"), "--identities",
                                                  "10000000"],
    "identity-store-timeout-negative": lambda b, c: ["identity", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]),
                                                     "--store-timeout", "-1"],
    # edited test lists (id recomputed): refused up front, one line, no suite run
    "testlist-ks-strings": lambda b, c: evaluate_with_list(b, c, lambda t: _ks(t, ["1", "2"])),
    "testlist-k-10e30": lambda b, c: evaluate_with_list(b, c, lambda t: _ks(t, [1, 10**30])),
    "testlist-unknown-gallery-identity": lambda b, c: evaluate_with_list(b, c, lambda t: _gallery(t, "ghost")),
    # baseline trainers check their configs like wav2pix
    "set-unknown-key-mean-face": train_case("--set", "epochs_typo=5"),
    "config-unknown-key-random-real": lambda b, c: ["train", yaml_file(c, "model: random_real\npool_per_identit: 5\n"),
                                                    "--data", str(b["data"]), "--out", str(c / "run")],
    "set-protocol-both-mean-face": train_case("--set", "protocol=both"),
    # every row dropped: the reason, not "found none"
    "generate-every-row-negative-start": Expect(data_case(lambda d: edit_manifest(
        d, lambda df: df.__setitem__("audio_start", "-1"))), match=r"all \d+ rows were skipped \(bad audio offsets"),
    # the environment: exit 1, one line naming the cause
    "identity-store-locked": Expect(lambda b, c: ["identity", "--ckpt", str(b["ckpt"]), "--data", str(b["data"]),
                                                  "--store", str(locked_store(c)), "--store-timeout", "1"],
                                    code=1, allowed_prefixes=("WARNING",), match="locked by another process"),
    "prepare-demo-disk-full": Expect(prepare_demo_full_disk, code=1, file_size_limit=31_900,
                                     match="File too large"),
    "landmarks-store-disk-full": Expect(store_full_disk, code=1, file_size_limit=5_000,
                                        match="the results store .* could not be opened or written",
                                        outputs=("results.sqlite-wal", "results.sqlite-shm")),
}


CASES.update(ROUND_TWO)


# -- caches (issue 31): an entry edited or replaced by something else is recomputed with a note, exit 0 -----------
def cached_landmarks(base, case: Path, spoil) -> list:
    """landmarks --real run once (its cache entry written), the entry then spoilt by ``spoil(path)``."""
    argv = ["landmarks", "--real", "--data", str(base["data"]), "--image-size", "16", "--no-store",
            "--cache-dir", str(case / "cache")]
    assert run_cli(argv).returncode == 0
    spoil(next((case / "cache" / "landmarks").glob("*.npz")))
    return argv


def _all_detected(entry: Path) -> None:  # still an npz, numbers changed: the real faces' rate would read 100 %
    import numpy as np

    with np.load(entry) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["detected"][:] = True
    arrays["points"][:] = 8.0
    np.savez(entry, **arrays)


def _folder_instead(entry: Path) -> None:
    entry.unlink()
    entry.mkdir()


def unwritable_cache(base, case: Path) -> list:
    (case / "not_a_folder").write_text("a file where the cache folder's parent should be")
    return ["landmarks", "--real", "--data", str(base["data"]), "--image-size", "16", "--no-store",
            "--cache-dir", str(case / "not_a_folder" / "cache")]


CACHE_CASES = {
    "landmarks-cache-entry-edited": Expect(lambda b, c: cached_landmarks(b, c, _all_detected), code=0,
                                           allowed_prefixes=("WARNING w2p_eval.cache",), outputs=("cache",),
                                           match="recomputed, not used"),
    "landmarks-cache-entry-is-a-folder": Expect(lambda b, c: cached_landmarks(b, c, _folder_instead), code=0,
                                                allowed_prefixes=("WARNING w2p_eval.cache",), outputs=("cache",),
                                                match="cannot be read .* recomputed, not used"),
    # a cache that cannot be written: the command still scores (a note per entry, values kept in memory)
    "landmarks-cache-dir-unwritable": Expect(unwritable_cache, code=0, allowed_prefixes=("WARNING w2p_eval.cache",),
                                             match="could not write cache entry .*from memory only"),
    "landmarks-cache-disk-full": Expect(lambda b, c: ["landmarks", "--real", "--data", str(b["data"]), "--image-size",
                                                      "16", "--no-store", "--cache-dir", str(c / "cache")],
                                        code=0, file_size_limit=2_000, allowed_prefixes=("WARNING w2p_eval.cache",),
                                        match="could not write cache entry", outputs=("cache",)),
}
CASES.update(CACHE_CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_one_line_exit_2_and_changes_nothing(name, base, tmp_path, capsys):
    """Every case: the documented exit code (2 bad input unless the case says 1: the environment, or 0: bad
    data skipped and counted), one `w2p-eval: error:` line (plus the logged warnings the case allows, e.g.
    "waiting for the lock"), no traceback, and nothing outside the command's own outputs changed."""
    check_case(name, CASES[name], base, tmp_path, capsys)


def check_case(name: str, spec, base, tmp_path, capsys) -> None:
    """Run one case of a table (``spec``: a setup function or an :class:`Expect`) and check its promises."""
    case = tmp_path / "case"
    case.mkdir()
    spec = spec if isinstance(spec, Expect) else Expect(spec)
    argv = spec.setup(base, case)
    before, before_base = snapshot(case), snapshot(base["data"])
    try:
        if spec.file_size_limit:
            code, out, err = _run_with_file_size_limit(argv, spec.file_size_limit)
        else:
            code, out, err = run_cli(argv, capsys)
        after = snapshot(case)  # before a lock holder lets go (closing its connection tidies its own files)
    finally:
        while HELD:
            os.close(HELD.pop())
        while HELD_DB:
            HELD_DB.pop().close()
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(spec.allowed_prefixes)]
    assert "Traceback" not in err and "Traceback" not in out
    assert code == spec.code, (code, err)
    if spec.code != 0:
        assert len(lines) == 1, err
        assert lines[0].startswith("w2p-eval: error: "), err
    if spec.match:
        assert re.search(spec.match, err), err
    after, before = ({k: v for k, v in snap.items() if not k.startswith(spec.outputs)} for snap in (after, before))
    assert after == before, f"{name} changed files: {set(after) ^ set(before)}"
    assert snapshot(base["data"]) == before_base
    assert not Path("/tmp/w2p_pwned").exists()
    if spec.after is not None:
        spec.after(case, err)


def test_the_table_holds_at_least_60_hostile_inputs():
    assert len(CASES) >= 60


def test_unrelated_sqlite_keeps_its_schema_and_journal_mode(tmp_path, capsys):
    path = unrelated_sqlite(tmp_path)
    code, _, err = run_cli(["results", "--store", str(path)], capsys)
    assert code == 2 and "without a `results` table" in err
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["notes"]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    assert not Path(str(path) + "-wal").exists()
