"""dlib's face descriptor in torch (``dlib_resnet``) equals dlib-bin's (``dlib_resnet_native``) on the real
WAV2PIX release, and the identity rows of checkpoints agree between the two paths.

Measured (2026-11-30, dev VM): 523 distinct real faces (all 123 test faces + all 400 training faces of
the release), 64 px through the judge's pipeline: worst cosine 0.99999982, max abs difference 4.47e-7
(largest descriptor value 0.473); every identity row of random_real and mean_face (50 training faces per
identity, 615 test pairs) equal to 6 decimals. 7 min on the 2-core VM while shared (load average 5-7).
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import shared_path
from w2p_eval.api import evaluate_checkpoints

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from click.testing import CliRunner

    from w2p_eval.cli import cli

    src = shared_path("wav2pix_release")
    out = tmp_path_factory.mktemp("rel") / "rel"
    res = CliRunner().invoke(cli, ["prepare", "wav2pix-release", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_torch_descriptors_equal_dlib_bin_on_every_release_face(release):
    from w2p_eval.data.manifest import load_manifest
    from w2p_eval.judges import load_identity_backbone
    from w2p_eval.judges.identity import real_faces_uint8

    rows = load_manifest(release).drop_duplicates("face_id")
    assert len(rows) >= 500 and (rows["split_seen"] == "test").sum() == 123
    faces = real_faces_uint8(release, rows, 64)  # the judge's pipeline: down to 64 px, then to 150 px
    native = load_identity_backbone("dlib_resnet_native").trunk(faces).numpy()
    torch_bb = load_identity_backbone("dlib_resnet", workers=2)
    try:
        ours = torch_bb.trunk(faces).numpy()
    finally:
        torch_bb.close()
    cos = (native * ours).sum(1) / np.linalg.norm(native, axis=1) / np.linalg.norm(ours, axis=1)
    diff = np.abs(native - ours).max()
    print(f"\n{len(faces)} release faces: worst cosine {cos.min():.8f}, max abs difference {diff:.2e}, "
          f"descriptor max |value| {np.abs(native).max():.3f}")
    assert cos.min() >= 0.9999
    assert diff < 1e-4


def test_identity_rows_agree_between_the_two_paths(release, tmp_path):
    """The same checkpoints scored end to end with each backbone (each trains its own seeded judge)."""
    from tests.helpers import fewer_training_faces
    from w2p_eval.metrics import identity as M

    data = fewer_training_faces(release, tmp_path / "rel_small", per_identity=25)
    ckpts = _baseline_ckpts(data, tmp_path / "runs")
    got = {}
    for backbone in ("dlib_resnet_native", "dlib_resnet"):
        rows = evaluate_checkpoints(list(ckpts.values()), data, backbone=backbone, cache_dir=tmp_path / "cache")
        got[backbone] = {(r["checkpoint"], r["metric"]): r["value"] for r in rows}
    assert got["dlib_resnet"].keys() == got["dlib_resnet_native"].keys()
    for key, value in got["dlib_resnet_native"].items():
        print(f"{key[1]:24s} {key[0][-40:]:40s} dlib-bin {value:.6f} torch {got['dlib_resnet'][key]:.6f}")
        assert round(got["dlib_resnet"][key], 4) == round(value, 4), key
    top1 = [v for (c, m), v in got["dlib_resnet"].items() if m == M.IDENTITY_TOP1_FAKE]
    assert len(set(top1)) == 2  # random_real and mean_face differ: the comparison is not vacuous


def _baseline_ckpts(data, out):
    """random_real (real faces of other pairs: a non-trivial score) and mean_face (one constant face)."""
    import yaml

    from tests.helpers import REPO
    from w2p_eval.train.registry import get_trainer

    ckpts = {}
    for name in ("random_real", "mean_face"):
        config = yaml.safe_load((REPO / "baselines" / f"{name}.yaml").read_text())
        ckpts[name] = get_trainer(name)(config, data, out / name, resume=False, device="cpu")[-1]
    return ckpts
