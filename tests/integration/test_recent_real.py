"""Held-out style checks of the recent papers' suites on the WAV2PIX release (a few frames per speaker, prepared
by `prepare wav2pix-release`, judge dlib_resnet): real_faces at the ceiling, mean_face collapsed, random_real
between.

Measured (release_subset defaults: 180 pairs, 36 faces, 2 identities; dlib_resnet, seed 0): real_faces
inter-identity cosine 0.858, consistency 0.965 (= ceiling), EER 0 / AUC 1 (= ceiling), precision = recall =
coverage = 1; mean_face 1.000 / 1.000, EER 0.50, AUC 0.50, precision = recall = coverage = 0; random_real
0.913 / 0.911, EER 0.52, AUC 0.49, recall 0.50, coverage 1. (faceres: real 0.351 / 0.785, random_real 0.616 /
0.607.) With 2 identities the identity-cluster intervals are wide or degenerate.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, release_subset, shared_path
from w2p_eval.evaluation import Evaluation
from w2p_eval.models.sources import checkpoint_items
from w2p_eval.train.registry import get_trainer

pytestmark = pytest.mark.integration
MODELS = ("real_faces", "mean_face", "random_real")
SUITES = ("diversity", "consistency", "verification", "coverage")


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, dict[str, dict]]:
    from w2p_eval.data.prepare_release import prepare_release

    root = tmp_path_factory.mktemp("recent_release")
    src = release_subset(shared_path("wav2pix_release"), root / "src")
    prepare_release(src, root / "data")
    data = root / "data"
    items = []
    for model in MODELS:
        config = yaml.safe_load((REPO / "baselines" / f"{model}.yaml").read_text())
        ckpt = get_trainer(model)(config, data, root / model, resume=False, device="cpu")[0]
        items += checkpoint_items(ckpt, name=model)
    ev = Evaluation.build(data, suites=SUITES, cache_dir=root / "cache", n_resamples=300, sources=items)
    out: dict[str, dict[str, dict]] = {}
    for s in ev.score_all():
        out.setdefault(s.row["run"], {})[s.row["metric"]] = s.row
    return out


def _v(rows, run, metric) -> float:
    return rows[run][metric]["value"]


def test_real_faces_at_the_ceiling(rows):
    real = rows["real_faces"]
    assert _v(rows, "real_faces", "verification_auc") == _v(rows, "real_faces", "verification_auc_ceiling") > 0.9
    cons = real["cross_clip_consistency"]
    assert cons["value"] == pytest.approx(cons["extra"]["ceiling"]["value"])
    assert cons["value"] > cons["extra"]["chance"]
    for m in ("precision", "recall", "coverage"):
        assert _v(rows, "real_faces", m) == 1.0
    inter = real["inter_identity_cosine"]
    assert inter["value"] == pytest.approx(inter["extra"]["real"]["value"], abs=0.02)


def test_mean_face_collapsed(rows):
    assert _v(rows, "mean_face", "inter_identity_cosine") == pytest.approx(1.0)
    assert _v(rows, "mean_face", "intra_identity_spread") == pytest.approx(0.0, abs=1e-9)
    assert _v(rows, "mean_face", "cross_clip_consistency") == pytest.approx(1.0)  # read with the collapse row
    assert _v(rows, "mean_face", "recall") <= 0.1 and _v(rows, "mean_face", "coverage") <= 0.2
    assert abs(_v(rows, "mean_face", "verification_auc") - 0.5) <= 0.25


def test_random_real_between(rows):
    for metric in ("recall", "coverage", "intra_identity_spread"):
        assert _v(rows, "mean_face", metric) < _v(rows, "random_real", metric)
    assert _v(rows, "random_real", "inter_identity_cosine") < _v(rows, "mean_face", "inter_identity_cosine")
    assert _v(rows, "random_real", "verification_auc") < _v(rows, "real_faces", "verification_auc")
    assert _v(rows, "random_real", "cross_clip_consistency") < _v(rows, "real_faces", "cross_clip_consistency")
