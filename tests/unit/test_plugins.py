"""Plugins by entry point: examples/plugin pip-installed into a temporary target, its suite and identity judge
listed by --help and scored by `evaluate`; a broken plugin is one line naming its package."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from w2p_eval.models.sources import split_rows

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a pip install and an evaluate subprocess (~1.5 min on the 2-core VM)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``pip install ./examples/plugin`` into a temporary target (the venv itself is left untouched)."""
    pytest.importorskip("setuptools", reason="building the example plugin offline needs setuptools in the venv")
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(ROOT / "examples" / "plugin", tmp / "src")  # the build writes beside its sources
    target = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return target


def _w2p(site: Path, *args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "W2P_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "w2p_eval", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=cwd)


def _real_faces_folder(data: Path, out: Path) -> tuple[Path, float]:
    """The test split's real faces as an images folder named by pair id -> (folder, their mean pixel)."""
    out.mkdir()
    means = []
    for pid, rel in zip(*(split_rows(data, "test", "seen")[c] for c in ("pair_id", "image_path"))):
        shutil.copy(data / rel, out / f"{pid}.png")
        means.append(np.asarray(Image.open(data / rel).convert("RGB"), np.float64).mean())
    return out, float(np.mean(means))


def test_plugin_suite_and_judge_are_listed_and_scored(site, tiny_data, tmp_path):
    helped = _w2p(site, "evaluate", "--help")
    assert helped.returncode == 0 and "example_brightness" in helped.stdout and "example_pixels" in helped.stdout
    folder, mean = _real_faces_folder(tiny_data, tmp_path / "faces")
    store = tmp_path / "r.sqlite"
    res = _w2p(site, "evaluate", "--data", tiny_data, "--images", folder, "--name", "real", "--store", store,
               "--metrics", "identity,example_brightness", "--backbone", "example_pixels", "--cache-dir",
               tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(store) as con:
        rows = dict(((m, e), v) for m, e, v in con.execute("SELECT metric, evaluator, value FROM results"))
    assert rows[("example_brightness", "example/brightness")] == pytest.approx(mean)  # the known answer
    assert rows[("identity_top1_real", "identity/example_pixels")] == pytest.approx(1.0)  # distinct identities


def test_broken_plugin_is_one_line_and_the_rest_still_works(site, tmp_path):
    broken = tmp_path / "broken_site"
    shutil.copytree(site, broken)
    info = broken / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[w2p_eval.suites]\nidentity = broken_plugin_mod:SUITE\n"
                                           "broken_one = broken_plugin_mod_missing:SUITE\n")
    res = _w2p(broken, "evaluate", "--help")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and all("broken-plugin" in ln for ln in lines), res.stderr
    assert any("clashes" in ln and "'identity'" in ln for ln in lines)
    assert any("could not be imported" in ln and "broken_one" in ln for ln in lines)
    assert "example_brightness" in res.stdout and "broken_one" not in res.stdout
