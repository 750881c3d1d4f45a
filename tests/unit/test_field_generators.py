"""voice2face (Wen et al. 2019) and SF2F: the networks' layers and parameter counts against the authors' code,
the torch audio front ends, training (seeded, resumable across stages, the same checkpoint format), config
errors, the teacher recorded and marked in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.helpers import REPO, make_tiny_dataset, run_cli
from w2p_eval.data.audio import SAMPLE_RATE, preprocess_wave
from w2p_eval.errors import MissingWeightsError
from w2p_eval.models import sf2f as S
from w2p_eval.models import voice2face as V
from w2p_eval.models.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from w2p_eval.models.registry import load_generator
from w2p_eval.models.speech_features import n_frames_sf2f, raw_wave, segments, sf2f_logfbank, wen_fbank
from w2p_eval.report.tables import main_table, teacher_marks
from w2p_eval.train import sf2f as train_sf2f
from w2p_eval.train.run import run_training
from w2p_eval.train.teacher import load_teacher


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layers(module: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# -- the networks, counted from the original configs ---------------------------------------------
def test_voice2face_layers_and_parameters_equal_the_original():
    """cmu-mlsp/reconstructing_faces_from_voices config.py: e = VoiceEmbedNet(64, [256, 384, 576, 864], 64),
    g = Generator(64, [1024, 512, 256, 128, 64], 3), f = FaceEmbedNet(3, [32, 64, 128, 256, 512], 64),
    d = Classifier(64 -> 1), c = Classifier(64 -> identities), both Linear without bias (network.py)."""
    n_ids = 7
    gen, critic = V.Voice2Face([f"i{k}" for k in range(n_ids)]), V.Critic(n_ids)
    ch = [64, 256, 384, 576, 864]
    e = sum(a * b * 3 + 2 * b for a, b in zip(ch[:-1], ch[1:])) + 864 * 64 * 3 + 64  # 4 x (conv no bias + BN) + conv
    gch = [64, 1024, 512, 256, 128, 64]
    g = sum(a * b * 16 + b for a, b in zip(gch[:-1], gch[1:])) + 64 * 3 + 3
    fch = [32, 64, 128, 256, 512]
    f = 3 * 32 + 32 + sum(a * b * 16 + b for a, b in zip(fch[:-1], fch[1:])) + 512 * 64 * 16 + 64
    assert (_count(gen.voice_embed), _count(gen.generator), _count(critic.face_embed)) == (e, g, f)
    assert (e, g, f) == (2_670_720, 12_191_875, 3_310_720)
    assert _count(critic.discriminator) == 64 and _count(critic.classifier) == 64 * n_ids
    assert _layers(gen.voice_embed, nn.Conv1d) == 5 and _layers(gen.voice_embed, nn.BatchNorm1d) == 4
    assert _layers(gen.generator, nn.ConvTranspose2d) == 6 and _layers(critic.face_embed, nn.Conv2d) == 6
    faces, emb = gen(torch.randn(2, 1, SAMPLE_RATE))
    assert faces.shape == (2, 3, 64, 64) and torch.allclose(emb.norm(dim=1), torch.ones(2))


def _inception(c_in: int, c_out: int) -> int:
    q = c_out // 4
    return sum(c_in * q * k + 2 * q for k in (2, 3, 5, 7))  # 4 branches: conv (no bias) + BatchNorm1d


def test_sf2f_layers_and_parameters_equal_the_original():
    """BAI-Yeqi/SF2F_PyTorch options/vox/sf2f/sf2f_fuser.yaml (+ sf2f_mid_1st_stage.yaml at 128 px):
    V2F1DCNN(40, [256, 384, 576, 864], 512, inception_mode), AttentionFuserV1(512, 512, general),
    FaceGanDecoder(noise_dim 512) / FaceGanDecoder_v2, PatchDiscriminator / AcDiscriminator 'C4-64-2,C4-128-2,
    C4-256-2' (+ 'C4-512-2' mid) with BatchNorm (models/*.py)."""
    ch = [40, 256, 384, 576, 864]
    enc = sum(_inception(a, b) for a, b in zip(ch[:-1], ch[1:])) + 864 * 512 * 3 + 512
    fuser = 512 * 512 + 1024 * 512

    def up(a, b):
        return a * 2 * b * 9 + 2 * 2 * b

    def head(c):
        return c * c * 9 + c + c * 3 + 3

    dch = [512, 256, 128, 64, 32]
    dec64 = 512 * 16384 + 2 * 16384 + sum(up(a, b) for a, b in zip(dch[:-1], dch[1:])) + head(32)
    dec128 = dec64 + up(32, 16) + head(16)

    def cnn(chans):
        c = [3, *chans]
        return sum(a * b * 16 + b for a, b in zip(c[:-1], c[1:])) + sum(2 * b for b in chans[:-1])

    n_ids = 5
    patch64, patch128 = cnn([64, 128, 256]) + 257, cnn([64, 128, 256, 512]) + 513
    ac64 = cnn([64, 128, 256]) + 256 * 1024 + 1024 + 1025 + 1024 * n_ids + n_ids
    ac128 = cnn([64, 128, 256, 512]) + 512 * 1024 + 1024 + 1025 + 1024 * n_ids + n_ids
    ids = [f"i{k}" for k in range(n_ids)]
    g64, g128 = S.SF2F(ids, 64), S.SF2F(ids, 128)
    assert (_count(g64.encoder), _count(g64.fuser), _count(g64.decoder), _count(g128.decoder)) == (
        enc, fuser, dec64, dec128)
    assert (enc, fuser, dec64, dec128) == (4_848_192, 786_432, 11_566_083, 11_577_734)
    c64, c128 = S.Critics(64, n_ids), S.Critics(128, n_ids)
    assert [_count(m) for m in (*c64.image, *c64.identity)] == [patch64, ac64]
    assert [_count(m) for m in (*c128.image, *c128.identity)] == [patch64, patch128, ac64, ac128]
    assert _layers(g64.encoder, nn.Conv1d) == 17 and _layers(g64.decoder, nn.Conv2d) == 6
    out = g128.train()(torch.randn(3, 1, SAMPLE_RATE), fuse=True)
    assert [tuple(o.shape) for o in out] == [(3, 3, 64, 64), (3, 3, 128, 128)]


# -- audio front ends ----------------------------------------------------------------------------------
def _clip(f0: float, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + np.random.default_rng(seed).normal(0, 1e-3, t.shape)
    return torch.from_numpy(preprocess_wave(x, len(t)))[None, None]


def test_raw_wave_undoes_the_datasets_pre_emphasis():
    x = np.random.default_rng(1).normal(0, 0.2, 16000)
    got = raw_wave(torch.from_numpy(preprocess_wave(x, 16000))[None, None])[0].numpy()
    assert np.abs(got - x / np.abs(x).max()).max() < 1e-5


def test_front_end_shapes_and_a_tone_lands_in_its_band():
    audio = torch.cat([_clip(1000.0), _clip(300.0, seed=1)])
    wen, mel = wen_fbank(audio), sf2f_logfbank(audio)
    assert wen.shape == (2, 64, 101) and mel.shape == (2, 40, 99) and n_frames_sf2f(16000) == 99
    assert torch.allclose(wen.mean(dim=2), torch.zeros(2, 64), atol=1e-4)  # per-band mean and variance removed
    assert torch.allclose(wen.std(dim=2, unbiased=False), torch.ones(2, 64), atol=1e-3)
    # python_speech_features' 40 mel bands over 0-8 kHz (centres 2595 log10(1 + f / 700) evenly spaced):
    # each tone's loudest band is the one centred nearest to it
    mels = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 42)[1:-1]
    centres = 700 * (10 ** (mels / 2595) - 1)
    for row, f0 in ((0, 1000.0), (1, 300.0)):
        assert abs(mel[row].mean(dim=1).argmax().item() - np.abs(centres - f0).argmin()) <= 1
    assert segments(mel, 50, 25).shape == (2, 2, 40, 50) and segments(mel, 120, 25).shape == (2, 1, 40, 99)


# -- training ---------------------------------------------------------------------------------------------
# checkpoint_every 100: each run saves its last epoch only (a checkpoint of these models is ~220 MB with Adam)
TINY_V2F = {"embed_epochs": 1, "epochs": 1, "batch_size": 4, "audio_seconds": 0.5, "n_samples": 1,
            "checkpoint_every": 100}
TINY_SF2F = {"epochs": 1, "fuser_epochs": 1, "batch_size": 4, "audio_seconds": 0.5, "n_samples": 1,
             "checkpoint_every": 100, "teacher": "none", "segment_frames": 20, "segment_stride": 10}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("field") / "data", n_identities=2, pairs_per_identity=4)


def _train(cfg: str, data, out, overrides: dict, resume: bool = False):
    return run_training(REPO / "baselines" / cfg, data, out, overrides=overrides, device="cpu", seed=5, resume=resume)


@pytest.mark.parametrize("cfg,whole,first", [
    # voice2face: stopped after its 1st GAN epoch (embedding stage done), resumed for the 2nd
    pytest.param("voice2face.yaml", dict(TINY_V2F, epochs=2), TINY_V2F, marks=pytest.mark.slow),
    # SF2F: stopped at the end of stage 1 (no fuser epoch yet), resumed into the fuser stage
    ("sf2f.yaml", TINY_SF2F, dict(TINY_SF2F, fuser_epochs=0)),
])
def test_two_stage_training_is_seeded_resumable_and_generates(cfg, whole, first, data, tmp_path):
    """Both stages run; a run stopped at a checkpoint and resumed equals the uninterrupted run, bit for bit."""
    written = _train(cfg, data, tmp_path / "whole", whole)
    _train(cfg, data, tmp_path / "split", first)
    _train(cfg, data, tmp_path / "split", whole, resume=True)
    a, b = load_checkpoint(written[-1]), load_checkpoint(list_checkpoints(tmp_path / "split")[-1])
    assert len(written) == 1 and a["epoch"] == b["epoch"] and set(a["state"]) == {"generator", "critic"}
    for part in ("generator", "critic"):
        assert all(torch.equal(a["state"][part][k], b["state"][part][k]) for k in a["state"][part])
    gen = load_generator(a)
    faces = gen.generate({"audio": torch.randn(2, 1, 8000)})
    assert faces.shape == (2, 3, 64, 64) and 0 <= faces.min() and faces.max() <= 1
    assert a["meta"]["teachers"] == [] and a["model"] == cfg.split(".")[0]
    if cfg == "sf2f.yaml":
        assert a["extra"]["fused"] and gen.fused  # the fuser stage ran: generation goes through the fuser


def test_voice2face_trains_both_stages_and_generates(data, tmp_path):
    (path,) = _train("voice2face.yaml", data, tmp_path / "run", TINY_V2F)
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 2 and ckpt["extra"]["embed_epochs"] == 1 and set(ckpt["optim"]) == {
        "embed", "generator", "critic"}
    rows = (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    assert '"embed_ce"' in rows[0] and '"g_d_fake"' in rows[1]  # stage 1 then stage 2
    faces = load_generator(ckpt).generate({"audio": torch.randn(2, 1, 8000)})
    assert faces.shape == (2, 3, 64, 64) and 0 <= faces.min() and faces.max() <= 1
    res = run_cli(["generate", "--ckpt", tmp_path / "run", "--data", data, "--out", tmp_path / "gen"])
    assert res.returncode == 0, res.stderr
    n_test = int((pd.read_csv(data / "manifest.csv")["split_seen"] == "test").sum())
    assert len(list((tmp_path / "gen" / "epoch_0002").glob("*.png"))) == n_test > 0


# -- config errors: one line, "did you mean", exit 2, nothing written ---------------------------------------
@pytest.mark.parametrize("cfg,args,expected", [
    ("sf2f.yaml", ["--set", "teacherr=none"], "unknown config key 'teacherr' (did you mean teacher?)"),
    ("voice2face.yaml", ["--set", "embed_epoch=3"], "(did you mean embed_epochs?)"),
    ("sf2f.yaml", ["--set", "teacher=facenet_vggface2"], "expected a teacher that is no judge"),
    ("sf2f.yaml", ["--set", "teacher=emotio"], "(did you mean emotion?)"),
    ("sf2f.yaml", ["--set", "perceptual_weight=lots"], "expected a number for perceptual_weight"),
    ("sf2f.yaml", ["--set", "ac_weight=-1"], "ac_weight"),
    ("sf2f.yaml", ["--set", "segment_frames=500"], "expected segment_frames <= 99"),
    ("voice2face.yaml", ["--image-size", "128"], "expected image_size 64 for voice2face"),
    ("voice2face.yaml", ["--set", "hflip=maybe"], "expected true/false for hflip"),
    ("sf2f_128.yaml", ["--set", "image_size=96"], "expected image_size 64 or 128"),
])
def test_config_errors_are_one_line_exit_2(cfg, args, expected, data, tmp_path):
    out = tmp_path / "run"
    res = run_cli(["train", REPO / "baselines" / cfg, "--data", data, "--out", out, *args])
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and expected in res.stderr and "Traceback" not in res.stderr
    assert not (out / "config.yaml").exists()


def test_a_missing_teacher_network_is_one_line(data, tmp_path, monkeypatch):
    monkeypatch.setenv("W2P_EVAL_MODELS", str(tmp_path / "empty"))
    res = run_cli(["train", REPO / "baselines" / "sf2f.yaml", "--data", data, "--out", tmp_path / "r",
                   "--epochs", "1", "--set", "fuser_epochs=0"])
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "emotion.json" in res.stderr and str(tmp_path / "empty") in res.stderr
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


# -- the teacher is recorded and the report marks rows its judge scored ---------------------------------------
def test_report_marks_rows_whose_judge_was_the_teacher(tmp_path):
    taught, plain = tmp_path / "taught.pt", tmp_path / "plain.pt"
    common = dict(model="sf2f", epoch=1, config={}, identities=["a", "b"], image_size=64, audio_seconds=1.0,
                  state={"generator": {"w": torch.zeros(1)}})
    save_checkpoint(taught, teachers=["gear"], **common)
    save_checkpoint(plain, **common)
    assert load_checkpoint(taught)["meta"]["teachers"] == ["gear"] and load_checkpoint(plain)["meta"]["teachers"] == []
    rows = []
    for run, ckpt in (("taught", taught), ("plain", plain)):
        for evaluator, metric in (("identity/dlib_resnet", "identity_top1_fake"),
                                  ("attributes/faceres+gear", "ethnicity_agreement")):
            rows.append(dict(run=run, model="sf2f", epoch=1, metric=metric, seed=0, value=0.5, n=10, extra={},
                             checkpoint=str(ckpt), evaluator=evaluator, source="checkpoint"))
    df = pd.DataFrame(rows)
    assert teacher_marks(df) == {"taught": ["gear"]}
    assert teacher_marks(df[df["evaluator"] == "identity/dlib_resnet"]) == {}  # GEAR did not score these rows
    _, txt = main_table(df)
    assert txt.loc["taught", "model"] == "sf2f (trained against judge gear)" and txt.loc["plain", "model"] == "sf2f"


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_sf2f_through_both_stages(data, tmp_path):
    """`torchrun --nproc_per_node 2` (gloo): both stages run, the pairs of both ranks are counted once, rank 0
    alone writes, and the checkpoint loads."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "w2p_eval", "train", str(REPO / "baselines" / "sf2f.yaml"), "--data", str(data), "--out", str(out),
           "--epochs", "1", "--batch-size", "4", "--audio-seconds", "0.5", "--device", "cpu", "--threads", "1",
           *[a for k, v in TINY_SF2F.items() if k not in ("epochs", "batch_size", "audio_seconds")
             for a in ("--set", f"{k}={v}")]]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in list_checkpoints(out)] == ["epoch_0002.pt"]
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    n_train = len(load_generator(load_checkpoint(list_checkpoints(out)[-1])).identities)  # loads
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["pairs"] == rows[1]["pairs"] > n_train
    assert load_checkpoint(list_checkpoints(out)[-1])["extra"]["world_size"] == 2


def test_sf2f_perceptual_loss_goes_through_the_teacher_and_records_it():
    """One SF2F step with the default teacher: its perceptual term is there, the teacher is named for the
    checkpoint, and a real face compared with itself costs nothing."""
    class _Ds:
        identities = ["a", "b"]

    cfg = {**train_sf2f.DEFAULTS, "audio_seconds": 0.5}
    try:
        models = train_sf2f.build(cfg, _Ds, "cpu")
    except MissingWeightsError as exc:
        pytest.skip(str(exc))
    assert models.teachers == ("emotion",) and load_teacher("none") is None
    batch = {"audio": torch.randn(2, 1, 8000), "image": torch.rand(2, 3, 64, 64) * 2 - 1,
             "label": torch.tensor([0, 1])}
    logs = train_sf2f.step(models, 1, batch, torch.Generator())
    assert {"l1_0", "g_img_0", "g_ac_0", "perceptual_0", "d_img_0", "d_ac_0"} <= set(logs) and logs["perceptual_0"] > 0
    assert models.teacher.loss(batch["image"], batch["image"]).item() == 0.0
