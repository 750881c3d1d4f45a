"""The field's protocols on real dlib descriptors of the WAV2PIX release's test faces (2 identities,
615 pairs, 123 distinct faces): known answers hold on a real face space, and a frozen test list
round-trips against the prepared release.

Measured (dlib_resnet, 64 px, seed 0): real faces R@1 = 1.000, 1:2 matching = ceiling = 1.000
[0.970, 1.000] (Wilson on the 123 faces), distances 0; one constant face (the mean descriptor of
every 10th training pair) R@1 = 0.500 = K/G exactly, 1:2 = 0.520 [0.481, 0.558] (BCa, grouped by
face), cosine to the paired face 0.955; the other identity's faces R@1 = 0.000 and 1:2 = 0.000.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import shared_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # prepare (~30 s) + 123 dlib descriptors


def test_release_dlib_known_answers(tmp_path):
    from click.testing import CliRunner

    from w2p_eval.cli import cli
    from w2p_eval.data.manifest import load_manifest, split_frame
    from w2p_eval.metrics.testlist import load_testlist
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8, unique_trunk
    from w2p_eval.metrics import matching as M
    from w2p_eval.metrics import protocols as P
    from w2p_eval.metrics.stats import bootstrap_ci

    src = shared_path("wav2pix_release")
    data = tmp_path / "rel"
    res = CliRunner().invoke(cli, ["prepare", "wav2pix-release", str(src), "--out", str(data)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["testlist", "--data", str(data), "--out", str(tmp_path / "tl.json")])
    assert res.exit_code == 0, res.output
    tl = load_testlist(tmp_path / "tl.json", data)
    assert tl.gallery_size == 2 and sorted(tl.matching) == [2] and len(tl.pair_ids) == 615

    df = load_manifest(data)
    test = split_frame(df, "test", "seen")
    backbone = load_identity_backbone("dlib_resnet")
    real = unique_trunk(backbone, real_faces_uint8(data, test, 64)).numpy().astype(np.float64)
    labels = test["identity"].to_numpy()
    fids = test["face_id"].to_numpy()
    pids = test["pair_id"].tolist()
    galleries = tl.galleries
    tuples, dropped = tl.matching_indices(2, pids)
    assert dropped == 0 and len(tuples) == 615

    # real faces: R@1 = 1, matching = ceiling, distances 0
    r = P.gallery_recall(real, real, labels, galleries=galleries, ks=(1, 2))
    assert r.recall[1] == 1.0 and r.chance[1] == 0.5
    m = M.matching_accuracy(real, real, tuples)
    assert m.accuracy == m.ceiling >= 0.97
    assert P.paired_distances(real, real).means()["l2"] == pytest.approx(0.0, abs=1e-9)
    ci = bootstrap_ci(m.ceiling_correct, fids[tuples[:, 0]], seed=0)
    assert ci.n_groups == 123 and ci.low <= m.ceiling <= ci.high

    # one constant face (the mean training descriptor): R@1 = K/G exactly, 1:2 near one half
    train = split_frame(df, "train", "seen").iloc[::10]
    mean = unique_trunk(backbone, real_faces_uint8(data, train, 64)).numpy().astype(np.float64).mean(axis=0)
    const = np.tile(mean, (len(real), 1))
    r = P.gallery_recall(const, real, labels, galleries=galleries, ks=(1, 2))
    assert r.recall[1] == pytest.approx(0.5, abs=1e-12)
    mc = M.matching_accuracy(const, real, tuples)
    share = {name: float((labels == name).mean()) for name in np.unique(labels)}
    # with 2 identities the constant face is closer to one of them: about that identity's share of probes
    assert min(share.values()) - 0.15 <= mc.accuracy <= max(share.values()) + 0.15, (mc.accuracy, share)

    # the other identity's faces: (K-1)/(G-1) = 0 at K = 1, and 1:2 matching picks the impostor
    rng = np.random.default_rng(0)
    other = np.stack([real[rng.choice(np.flatnonzero(labels != lab))] for lab in labels])
    assert P.gallery_recall(other, real, labels, galleries=galleries, ks=(1,)).recall[1] <= 0.02
    assert M.matching_accuracy(other, real, tuples).accuracy <= 0.05
