"""Known answers of the ``faceres`` identity judge (HSE FaceRes) on real data from ../shared.

- The authors' preprocessing (BGR minus caffe means, 0-255) separates the two WAV2PIX release speakers (every
  same-person cosine above every different-person one on 40 faces; measured AUC 1.000, same 0.79 / different
  0.40 on train faces), while 0-1 inputs give one output for every face (all cosines > 0.99).
- GRID (10 speakers): the real test faces score the identity ceiling, ``mean_face`` scores chance, a folder holding
  exactly the real test faces scores what ``real_faces`` scores, and blurred copies score worse as the blur grows -
  the same known answers ``dlib_resnet`` passes (tests/integration/test_identity_real.py, test_sources_real.py).
Skipped when the weights (scripts/setup.sh) or the data are absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import REPO, shared_path
from tests.tfjs_helpers import release_face_ids, release_faces
from w2p_eval.errors import MissingWeightsError

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIGMAS = (0.0, 1.5, 3.0, 6.0)


@pytest.fixture(scope="module")
def faceres_installed():
    from w2p_eval.judges.tfjs import model_path

    try:
        return model_path("faceres")
    except MissingWeightsError as exc:
        pytest.skip(f"faceres not installed: {exc}")


def _unit(e: np.ndarray) -> np.ndarray:
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_authors_preprocessing_separates_people_and_0_1_collapses(faceres_installed):
    from w2p_eval.judges.faceres import DESCRIPTOR, FaceResNet

    release = shared_path("wav2pix_release")
    ids = release_face_ids(release, per_identity=20)
    faces = release_faces(release, ids, 224)
    label = np.array([i.split("/")[1] for i in ids])
    net = FaceResNet("cpu")
    with torch.inference_mode():
        ours = _unit(net(faces)["embedding"].numpy())
        flat = _unit(net.graph(torch.from_numpy(faces).float() / 255)[DESCRIPTOR].numpy())
    same = (label[:, None] == label[None]) & ~np.eye(len(ids), dtype=bool)
    diff = label[:, None] != label[None]
    cos = ours @ ours.T
    assert cos[same].min() > cos[diff].max(), (cos[same].min(), cos[diff].max())
    assert cos[same].mean() - cos[diff].mean() > 0.25
    assert (flat @ flat.T).min() > 0.99  # 0-1 inputs: every face gets the same descriptor


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from click.testing import CliRunner

    from w2p_eval.cli import cli

    src = shared_path("grid_videos")
    out = tmp_path_factory.mktemp("gridsrc") / "grid"
    res = CliRunner().invoke(cli, ["prepare", "videos", str(src), "--out", str(out), "--mapping",
                                   str(REPO / "reports" / "grid_example.mapping.csv"), "--seed", "0"])
    assert res.exit_code == 0, res.output
    return out


def test_grid_faceres_ceiling_chance_exact_folder_and_blur(faceres_installed, grid, tmp_path):
    from PIL import Image, ImageFilter

    from w2p_eval.models.sources import real_faces_at, split_rows
    from w2p_eval.pipeline.evaluate import evaluate_runs
    from w2p_eval.results import ResultsStore
    from w2p_eval.train.registry import get_trainer

    runs = []
    for name in ("real_faces", "mean_face"):
        config = yaml.safe_load((REPO / "baselines" / f"{name}.yaml").read_text())
        get_trainer(name)(config, grid, tmp_path / name, resume=False, device="cpu")
        runs.append(tmp_path / name)
    df = split_rows(grid, "test", "seen")
    faces = real_faces_at(grid, list(df["image_path"]), 64)
    images = []
    for sigma in SIGMAS:
        folder = tmp_path / f"blur{sigma:g}"
        folder.mkdir()
        for pid, face in zip(df["pair_id"], faces):
            im = Image.fromarray(face)
            (im.filter(ImageFilter.GaussianBlur(sigma)) if sigma else im).save(folder / f"{pid}.png")
        images.append((folder, f"blur{sigma:g}"))
    store = tmp_path / "s.sqlite"
    summary = evaluate_runs(runs, grid, images=images, store=store, suites=("identity",), backbone="faceres",
                            cache_dir=tmp_path / "cache")
    assert not summary.failed, summary.failed
    rows = ResultsStore(store).query()
    assert set(rows["evaluator"]) == {"identity/faceres"}
    table = rows.pivot_table(index="run", columns="metric", values="value")
    real, same, mean = table.loc["real_faces"], table.loc["blur0"], table.loc["mean_face"]
    print(f"faceres on GRID: real top-1 {real['identity_top1_real']:.3f}, mean_face {mean['identity_top1_fake']:.3f}")
    assert real["identity_top1_fake"] == real["identity_top1_real"] >= 0.9
    assert real["frechet_face"] == pytest.approx(0.0, abs=1e-6)
    assert abs(mean["identity_top1_fake"] - 0.1) <= 0.1 + 1e-9 and mean["frechet_face"] > 0.1
    for metric in table.columns:  # the unblurred folder is the real_faces checkpoint, value for value
        assert same[metric] == pytest.approx(real[metric], abs=1e-9, nan_ok=True), metric
    acc = [table.loc[f"blur{s:g}", "identity_top1_fake"] for s in SIGMAS]
    fd = [table.loc[f"blur{s:g}", "frechet_face"] for s in SIGMAS]
    print(f"faceres on GRID, blur sigma {SIGMAS}: top-1 {[round(a, 3) for a in acc]}, Frechet {[round(v, 3) for v in fd]}")
    assert all(a >= b for a, b in zip(acc, acc[1:])) and acc[-1] < acc[0], acc
    assert all(a < b for a, b in zip(fd, fd[1:])), fd
