"""The geometry suite on the real WAV2PIX release faces (a subset, prepared here) under both landmark judges.

Known answers: the real faces handed over as "generated" score 0 (the same faces, the same landmarks); one constant
face (the first real face) for every pair scores worse than the split-half spread of the real faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import release_subset, shared_path
from w2p_eval.errors import MissingWeightsError
from w2p_eval.evaluation import Evaluation
from w2p_eval.models.sources import real_faces_at, split_rows
from w2p_eval.models.sources_python import ArrayItem

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def release_data(tmp_path_factory) -> Path:
    from w2p_eval.data.prepare_release import prepare_release

    root = tmp_path_factory.mktemp("release")
    src = release_subset(shared_path("wav2pix_release"), root / "src")
    prepare_release(src, root / "data")
    return root / "data"


def test_geometry_known_answers_under_both_judges(release_data, tmp_path):
    from w2p_eval.judges.landmarks import get_backend

    try:
        get_backend("facemesh")
    except MissingWeightsError as exc:
        pytest.skip(f"facemesh not installed: {exc}")
    df = split_rows(release_data, "test", "seen")
    pairs, real = list(df["pair_id"]), real_faces_at(release_data, list(df["image_path"]), 64)
    constant = np.repeat(real[:1], len(real), axis=0)
    ev = Evaluation.build(release_data, suites=("geometry",), backend="dlib,facemesh", cache_dir=tmp_path / "cache",
                          sources=[ArrayItem(real, pairs, run="real"), ArrayItem(constant, pairs, run="constant")])
    rows = pd.DataFrame([s.row for s in ev.score_all()])
    assert set(rows["evaluator"]) == {"geometry/dlib", "geometry/facemesh"}
    for ev, g in rows.groupby("evaluator"):
        v = g.set_index(["run", "metric"])["value"]
        spread = v[("real", "geometry_ratio_error_real")]
        print(f"{ev}: real as generated {v[('real', 'geometry_ratio_error')]:.4f}, split-half spread "
              f"{spread:.4f}, constant face {v[('constant', 'geometry_ratio_error')]:.4f}")
        assert v[("real", "geometry_ratio_error")] == 0.0 and 0 < spread < v[("constant", "geometry_ratio_error")]
