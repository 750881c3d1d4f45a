"""The facemesh landmark judge on real data (known answers; needs ../shared and the installed human-models).

- 60 distinct real faces of the WAV2PIX release at the generator's 64 px: >= 95 % detected (measured: all, face
  flags >= 0.999); 40 uniform-noise and 20 flat images: <= 5 % (measured: none, flags <= 0.005). The threshold
  (0.5) sits in the gap between the two.
- The 11 human-annotated photos of ../shared/data/landmarks_68 (validation protocol of
  ``landmarks_validation``): every face found, NME on the 51 inner points <= 0.08 (measured 0.066; dlib 0.023 on
  the 9 it finds).
- Against dlib's 68 points on the same real faces: mean inner-point NME <= 0.06 (measured 0.040).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import shared_path
from tests.tfjs_helpers import release_face_ids, release_faces
from w2p_eval.errors import MissingWeightsError
from w2p_eval.judges.landmarks import get_backend, score_images
from w2p_eval.judges.landmarks_validation import INNER, nme, validate_backend

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def facemesh():
    try:
        return get_backend("facemesh")
    except MissingWeightsError as exc:
        pytest.skip(f"facemesh not installed: {exc}")


@pytest.fixture(scope="module")
def real_faces():
    release = shared_path("wav2pix_release")
    return release_faces(release, release_face_ids(release), 64)


def test_real_faces_found_noise_and_blank_not(facemesh, real_faces):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    blank = np.stack([np.full((64, 64, 3), v, np.uint8) for v in np.linspace(0, 255, 20).astype(int)])
    real = score_images(real_faces, "facemesh")
    fake = score_images(np.concatenate([noise, blank]), "facemesh")
    rate_real = np.mean([r.detected for r in real])
    rate_fake = np.mean([r.detected for r in fake])
    print(f"facemesh: real {rate_real:.3f} detected (min flag {min(r.score for r in real):.4f}); noise/blank "
          f"{rate_fake:.3f} (max flag {max(r.score for r in fake):.4f})")
    assert len(real_faces) >= 50 and rate_real >= 0.95 and rate_fake <= 0.05


def test_validation_on_human_annotations(facemesh):
    res = validate_backend(shared_path("landmarks_68"), "facemesh")
    print(f"facemesh on landmarks_68: {res['n_detected']}/{res['n']}, NME 68 {res['nme_mean']:.4f}, "
          f"51 inner {res['nme_inner_mean']:.4f}")
    assert res["n_detected"] == res["n"] and res["nme_inner_mean"] <= 0.08


def test_facemesh_agrees_with_dlib_on_real_faces(facemesh, real_faces):
    ours = score_images(real_faces, "facemesh")
    dlib = score_images(real_faces, "dlib")
    both = [k for k in range(len(real_faces)) if ours[k].detected and dlib[k].detected]
    errs = nme(np.stack([ours[k].points for k in both]), np.stack([dlib[k].points for k in both]), INNER)
    print(f"facemesh vs dlib on {len(both)} real faces: inner NME mean {errs.mean():.4f}, max {errs.max():.4f}")
    assert len(both) >= 50 and errs.mean() <= 0.06
