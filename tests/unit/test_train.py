"""Training runs: files written, checkpoint contents, exact round trip, determinism, resume, config, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from tests.helpers import CONFIG_64, REPO, TINY, make_tiny_dataset, run_cli, tiny_data_of, tiny_run
from w2p_eval.errors import InputError
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint
from w2p_eval.models.registry import load_generator
from w2p_eval.train.run import load_config, parse_set, resolve_config, run_training

LOSS_TERMS = {"d_loss", "d_real", "d_wrong", "d_fake", "g_loss", "g_adv", "g_feat", "g_l1", "g_aux"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(str(tmp_path_factory.getbasetemp() / "tiny_wav2pix"))


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_contents(run):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"] == "wav2pix" and cfg["audio_seconds"] == 0.3 and cfg["seed"] == 3
    assert cfg["lr_d"] == 4e-4 and cfg["feature_weight"] == 100.0  # from the YAML, untouched
    rows = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and LOSS_TERMS <= set(rows[0]) and rows[0]["pairs"] > 0
    assert (run / "samples" / "epoch_0001.png").is_file() and (run / "samples" / "real.png").is_file()
    ckpt = load_checkpoint(list_checkpoints(run)[-1])
    assert ckpt["epoch"] == 1 and ckpt["model"] == "wav2pix" and ckpt["identities"] == ["id00", "id01", "id02"]
    assert ckpt["image_size"] == 64 and ckpt["audio_seconds"] == 0.3
    assert set(ckpt["state"]) == set(ckpt["optim"]) == {"generator", "discriminator"}
    assert ckpt["meta"]["data_hash"] and "torch" in ckpt["meta"]["versions"]
    assert ckpt["config"]["batch_size"] == TINY["batch_size"]


def test_save_load_round_trip_is_exact(run):
    ckpt = load_checkpoint(list_checkpoints(run)[-1])
    gen = load_generator(ckpt)
    assert not gen.training and gen.image_size == 64 and gen.identities == ckpt["identities"]
    assert _states_equal(gen.state_dict(), ckpt["state"]["generator"])


def test_typed_fields_are_stored_once_and_old_checkpoints_still_load(run, tmp_path):
    """image_size / audio_seconds live at the checkpoint's top level only; loading puts them back into
    ``config``, so a checkpoint written before (both copies stored) reads exactly like a new one."""
    path = list_checkpoints(run)[-1]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["image_size"] == 64 and raw["audio_seconds"] == 0.3
    assert "image_size" not in raw["config"] and "audio_seconds" not in raw["config"]
    new = load_checkpoint(path)
    assert new["config"]["image_size"] == 64 and new["config"]["audio_seconds"] == 0.3
    old_path = tmp_path / "checkpoints" / "epoch_0001.pt"
    old_path.parent.mkdir()
    torch.save({**raw, "config": {**raw["config"], "image_size": 64, "audio_seconds": 0.3}}, old_path)
    old = load_checkpoint(old_path)
    assert old["config"] == new["config"]
    assert _states_equal(load_generator(old).state_dict(), load_generator(new).state_dict())


def test_pickled_callable_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"format": "w2p-eval-checkpoint", "hook": os.system}, bad)
    with pytest.raises(InputError, match="refusing to load"):
        load_checkpoint(bad)


def test_same_seed_gives_identical_weights(run, tmp_path):
    other = tmp_path / "again"
    run_training(CONFIG_64, tiny_data_of(run), other, overrides=dict(TINY), device="cpu", seed=3)
    a = load_checkpoint(list_checkpoints(run)[-1])["state"]
    b = load_checkpoint(list_checkpoints(other)[-1])["state"]
    assert _states_equal(a["generator"], b["generator"]) and _states_equal(a["discriminator"], b["discriminator"])


def test_existing_run_needs_resume(run):
    with pytest.raises(InputError, match="already holds checkpoints"):
        run_training(CONFIG_64, tiny_data_of(run), run, overrides=dict(TINY), device="cpu")


def test_resume_with_nothing_left_to_do_writes_nothing(run):
    assert run_training(CONFIG_64, tiny_data_of(run), run, overrides=dict(TINY), resume=True, device="cpu") == []


def test_config_resolution_order_and_errors(tmp_path):
    from w2p_eval.train.gan import DEFAULTS

    base = load_config(CONFIG_64)
    cfg = resolve_config(base, {"epochs": 3, **parse_set(["lr_g=2e-4", "adversarial=false"])}, DEFAULTS)
    assert cfg["epochs"] == 3 and cfg["lr_g"] == 2e-4 and cfg["adversarial"] is False
    assert cfg["batch_size"] == 64 and cfg["image_size"] == 64  # YAML, then defaults
    with pytest.raises(InputError, match="did you mean lr_g"):
        resolve_config(base, {"lr_gg": 1}, DEFAULTS)
    with pytest.raises(InputError, match="expected a number for epochs"):
        resolve_config(base, {"epochs": "many"}, DEFAULTS)
    with pytest.raises(InputError, match="key=value"):
        parse_set(["novalue"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="YAML mapping"):
        load_config(bad)
    with pytest.raises(InputError, match="`model:` key"):
        load_config({"epochs": 1})


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "w2p_eval", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, **kw)


def test_train_cli_bad_input_is_one_line(tiny_data, tmp_path):
    res = run_cli(["train", tmp_path / "missing.yaml", "--data", tiny_data, "--out", tmp_path / "r"])
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "missing.yaml" in res.stderr
    res = run_cli(["train", CONFIG_64, "--data", tiny_data, "--out", tmp_path / "r", "--set", "lr_gg=1"])
    assert res.returncode == 2 and "unknown config key 'lr_gg'" in res.stderr and "Traceback" not in res.stderr
    # audio too short for the encoder's six stride-4 blocks: refused before RUN/ is created
    res = run_cli(["train", CONFIG_64, "--data", tiny_data, "--out", tmp_path / "short", "--audio-seconds", "0.05"])
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "expected audio_seconds >= 0.085" in res.stderr and not (tmp_path / "short").exists()


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    """Kill -9 a training subprocess mid-run: every checkpoint left loads, and --resume finishes with
    exactly the weights of a run that was never interrupted."""
    data = make_tiny_dataset(tmp_path / "data")
    args = ["train", CONFIG_64, "--data", data, "--epochs", 3, "--checkpoint-every", 1, "--batch-size", 6,
            "--audio-seconds", 0.3, "--set", "n_samples=0", "--seed", 5, "--device", "cpu", "--threads", 1]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "w2p_eval", *map(str, args), "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "checkpoints" / "epoch_0001.pt"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 2 (or into writing its checkpoint)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert first.exists() and not (out / "checkpoints" / "epoch_0003.pt").exists()
    for path in list_checkpoints(out):
        load_checkpoint(path)  # never a file that fails to load
    res = _cli(*args, "--out", out, "--resume", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [p.name for p in list_checkpoints(out)][-1] == "epoch_0003.pt"
    assert not list((out / "checkpoints").glob(".epoch_*"))  # no temp files left behind
    epochs = [json.loads(line)["epoch"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    ref = tmp_path / "straight"
    assert _cli(*args, "--out", ref, timeout=300).returncode == 0
    a = load_checkpoint(out / "checkpoints" / "epoch_0003.pt")["state"]
    b = load_checkpoint(ref / "checkpoints" / "epoch_0003.pt")["state"]
    assert _states_equal(a["generator"], b["generator"]) and _states_equal(a["discriminator"], b["discriminator"])


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """`torchrun --nproc_per_node 2` with gloo: the run completes and rank 0 alone checkpoints, once."""
    data = make_tiny_dataset(tmp_path / "data")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "w2p_eval", "train", str(CONFIG_64), "--data", str(data), "--out", str(out), "--epochs", "1",
           "--batch-size", "6", "--audio-seconds", "0.3", "--set", "n_samples=2", "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in list_checkpoints(out)] == ["epoch_0001.pt"]
    assert res.stdout.strip().splitlines() == [str(out / "checkpoints" / "epoch_0001.pt")]  # printed once
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["pairs"] == 12  # both ranks' pairs, counted once
    ckpt = load_checkpoint(out / "checkpoints" / "epoch_0001.pt")
    assert ckpt["extra"]["world_size"] == 2
    load_generator(ckpt)


def test_diverged_training_stops_with_one_line_and_keeps_checkpoints(tiny_data, tmp_path, monkeypatch):
    """Losses turning NaN in epoch 2 stop the run with one line (exit 1) naming the last good checkpoint;
    a non-finite config value is bad input (exit 2) and never starts a run."""
    from w2p_eval.train import steps

    original = steps.GanStep.__call__
    calls = {"n": 0}

    def flaky(self, *a, **kw):
        logs = original(self, *a, **kw)
        calls["n"] += 1
        return {k: float("nan") for k in logs} if calls["n"] > 2 else logs  # 2 iterations per epoch

    monkeypatch.setattr(steps.GanStep, "__call__", flaky)
    run = tmp_path / "r"
    args = ["train", CONFIG_64, "--data", tiny_data, "--out", run, "--epochs", "2", "--batch-size", "6",
            "--audio-seconds", "0.3", "--checkpoint-every", "1", "--set", "n_samples=2"]
    res = run_cli([*args])
    assert res.returncode == 1, res.stderr
    line = [x for x in res.stderr.splitlines() if x.startswith("w2p-eval: failed:")]
    assert len(line) == 1 and "diverged at epoch 2" in line[0] and "epoch_0001.pt" in line[0]
    assert "Traceback" not in res.stderr
    assert [p.name for p in list_checkpoints(run)] == ["epoch_0001.pt"]
    load_checkpoint(run / "checkpoints" / "epoch_0001.pt")  # the last good one still loads
    res = run_cli(["train", CONFIG_64, "--data", tiny_data, "--out", tmp_path / "nan", "--set", "lr_g=.nan"])
    assert res.returncode == 2 and "expected a finite number for lr_g" in res.stderr
    assert not (tmp_path / "nan").exists()
