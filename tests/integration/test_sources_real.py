"""Known answers through the images-folder path on real data (GRID clips, 10 speakers): a folder holding
exactly the real test faces scores what `real_faces` scores, and blurred copies score worse as the blur grows
on identity accuracy, face-space Fréchet distance and landmark NME."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.helpers import REPO, shared_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIGMAS = (0.0, 1.5, 3.0, 6.0)


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


def test_real_faces_folder_scores_the_ceiling_and_blur_scores_worse(grid, tmp_path):
    from PIL import Image, ImageFilter

    from w2p_eval.models.sources import real_faces_at, split_rows
    from w2p_eval.pipeline.evaluate import evaluate_runs
    from w2p_eval.results import ResultsStore
    from w2p_eval.train.registry import get_trainer

    config = yaml.safe_load((REPO / "baselines" / "real_faces.yaml").read_text())
    run = tmp_path / "real_faces"
    get_trainer("real_faces")(config, grid, run, resume=False, device="cpu")
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
    summary = evaluate_runs([run], grid, images=images, store=store, suites=("identity", "landmarks"),
                            cache_dir=tmp_path / "cache")
    assert not summary.failed, summary.failed
    table = ResultsStore(store).query().pivot_table(index="run", columns="metric", values="value")
    ours, same = table.loc["real_faces"], table.loc["blur0"]
    for metric in table.columns:  # the unblurred folder is the real_faces checkpoint, value for value
        assert same[metric] == pytest.approx(ours[metric], abs=1e-9, nan_ok=True), metric
    assert same["identity_top1_fake"] == same["identity_top1_real"] >= 0.95
    assert same["frechet_face"] == pytest.approx(0.0, abs=1e-6) and same["landmark_nme"] == pytest.approx(0.0)
    acc = [table.loc[f"blur{s:g}", "identity_top1_fake"] for s in SIGMAS]
    fd = [table.loc[f"blur{s:g}", "frechet_face"] for s in SIGMAS]
    nme = [table.loc[f"blur{s:g}", "landmark_nme"] for s in SIGMAS]
    assert all(a >= b for a, b in zip(acc, acc[1:])) and acc[-1] < acc[0], acc
    assert all(a < b for a, b in zip(fd, fd[1:])), fd
    finite = [v for v in nme if np.isfinite(v)]  # heavy blur may leave no face with landmarks at all
    assert len(finite) >= 3 and all(a < b for a, b in zip(finite, finite[1:])), nme
