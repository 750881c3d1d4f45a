"""Built-in registry entries are declared once, in the module that defines the thing, and found without importing
it (issue 26, items 2 and 8): today's names in today's order, no central list left, a new module in a scanned
folder registered with no other file touched, malformed declarations one clear error naming the file."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from w2p_eval.cli.prepare import PREPARE_MODES, prepare
from w2p_eval.judges import IDENTITY_BACKBONES, JUDGES, LANDMARK_BACKENDS
from w2p_eval.metrics.registry import SUITES
from w2p_eval.models.registry import MODELS
from w2p_eval.models.sources import SOURCE_KINDS
from w2p_eval.registry import DeclarationError, Registry, declared_entries, package_folder, parse_declaration

ROOT = Path(__file__).resolve().parents[2]
ALL = {"suites": SUITES, "judges": JUDGES, "models": MODELS, "sources": SOURCE_KINDS, "prepare": PREPARE_MODES}

TODAY = {  # the names and their order before the declarations moved into the modules (help, docs, report follow it)
    "suites": ["identity", "landmarks", "speaker", "retrieval", "distances", "matching", "attributes", "diversity",
               "consistency", "verification", "coverage", "inception", "vggface_score", "sf2f", "geometry"],
    "judges": ["dlib_resnet", "facenet_vggface2", "vgg_face", "vgg_scratch", "dlib_resnet_native", "dlib_resnet_ft",
               "faceres", "mobilefacenet", "dlib", "dlib_cnn", "fan", "facemesh", "faceres+gear"],
    "models": ["wav2pix", "l1_regression", "mean_face", "gender_oracle", "random_real", "speaker_retrieval",
               "real_faces", "voice2face", "sf2f"],
    "sources": ["checkpoint", "images", "python"],
    "prepare": ["videos", "wav2pix-release", "folder", "demo", "voxceleb"],
}


def test_todays_names_in_todays_order_with_their_meta():
    for kind, registry in ALL.items():
        assert [e.name for e in registry.builtin] == TODAY[kind], kind
    assert IDENTITY_BACKBONES.names() == TODAY["judges"][:8]
    assert LANDMARK_BACKENDS.names() == ["dlib", "dlib_cnn", "fan", "facemesh"]
    assert [e.name for e in JUDGES.entries(lambda e: e.meta["judge"] == "attribute")] == ["faceres+gear"]
    assert [e.name for e in LANDMARK_BACKENDS.entries() if e.meta.get("spawn")] == ["fan", "facemesh"]
    assert IDENTITY_BACKBONES.entry("dlib_resnet_ft").meta["require"] == "w2p_eval.judges.dlib_face:require"
    assert "require" not in IDENTITY_BACKBONES.entry("vgg_scratch").meta
    assert [n for n in TODAY["models"] if MODELS.entry(n).meta.get("baseline")] == TODAY["models"][1:7]
    assert MODELS.entry("l1_regression").target == MODELS["wav2pix"] == "w2p_eval.models.wav2pix:Wav2Pix"
    assert MODELS.entry("sf2f").meta["trainer"] == "w2p_eval.train.sf2f:train"
    assert SOURCE_KINDS.entry("images").meta == {"claim": "w2p_eval.models.sources:claim_images", "fallback": True}
    assert SUITES.help_text().startswith("identity (identity accuracy by a trained judge, embedding metrics); ")


def _declarations(registry: Registry) -> dict[str, list]:
    """{declaring module: its entries} of ``registry``'s scanned folders, read the way the registry reads them."""
    out = {}
    for package in registry.packages:
        folder = package_folder(package)
        for path in sorted(folder.glob("*.py")):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            entries = parse_declaration(path.read_text(encoding="utf-8"), registry.marker, module, path)
            if entries:
                out[module] = entries
    return out


def test_no_central_list_remains_each_entry_is_declared_where_it_is_defined():
    for kind, registry in ALL.items():
        assert registry._extra == () and registry.packages, f"{kind}: entries given by hand to the constructor"
        found = _declarations(registry)
        for module, entries in found.items():
            for e in entries:
                assert e.target.split(":")[0] == module, f"{e.name} declared in {module}, defined in {e.target}"
        assert sorted(e.name for es in found.values() for e in es) == sorted(TODAY[kind])
    # and the modules that hold the registries declare nothing themselves (no Entry(...) call is left in them)
    for rel in ("metrics/registry.py", "judges/__init__.py", "models/registry.py", "cli/prepare.py"):
        tree = ast.parse((ROOT / "w2p_eval" / rel).read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Entry"]
        assert not calls, f"w2p_eval/{rel} still lists entries"


def test_the_declarations_are_the_modules_own_values():
    """What the scan reads is what the module defines when it is imported (the same Entry calls, run)."""
    from w2p_eval.data import prepare_folder
    from w2p_eval.models import sources

    for module, marker, registry in ((sources, "REGISTER_SOURCE_KINDS", SOURCE_KINDS),
                                     (prepare_folder, "REGISTER_PREPARE_MODES", PREPARE_MODES)):
        declared = getattr(module, marker)
        scanned = [e for e in registry.builtin if e.target.startswith(module.__name__ + ":")]
        assert [(e.name, e.help, dict(e.meta), e.order) for e in declared] == \
               [(e.name, e.help, dict(e.meta), e.order) for e in scanned]
        assert all(e.load() is getattr(module, e.target.split(":")[1]) for e in scanned)


def test_prepare_modes_are_loaded_sub_commands():
    with click.Context(prepare) as ctx:
        assert prepare.list_commands(ctx) == TODAY["prepare"]
        assert [prepare.get_command(ctx, n).name for n in TODAY["prepare"]] == TODAY["prepare"]


SUITE_MODULE = '''"""A suite added as one module (the test of the "two files" claim)."""
from w2p_eval.registry import Entry


class Brightness:
    name = "brightness_test"


SUITE = Brightness()
REGISTER_SUITES = (
    Entry("brightness_test", "SUITE", "mean pixel value (a test suite)", order=55),
)
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A temporary package folder on sys.path holding one new suite module (nothing else written anywhere)."""
    pkg = tmp_path / "decl_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "brightness.py").write_text(SUITE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    declared_entries.cache_clear()
    yield pkg
    declared_entries.cache_clear()
    sys.modules.pop("decl_pkg.brightness", None)
    sys.modules.pop("decl_pkg", None)


def test_a_new_module_in_a_scanned_folder_is_registered(plugin_dir):
    suites = Registry("metric suite", None, packages=("w2p_eval.metrics", "decl_pkg"), marker="REGISTER_SUITES")
    names = suites.names()
    assert names == TODAY["suites"][:5] + ["brightness_test"] + TODAY["suites"][5:]  # order=55: after distances
    assert "decl_pkg.brightness" not in sys.modules  # found without importing it
    assert suites["brightness_test"] == "decl_pkg.brightness:SUITE"
    assert "brightness_test (mean pixel value (a test suite))" in suites.help_text()
    assert "| `brightness_test` | mean pixel value (a test suite) |" in suites.markdown()
    assert suites.load("brightness_test").name == "brightness_test"


def test_a_new_suite_module_reaches_evaluate_help_with_no_other_file_touched(tmp_path):
    """The package copied, one module added to its metrics/ folder: `evaluate --help` lists it, the copy's
    other files are byte-identical to the checkout's."""
    copy = tmp_path / "w2p_eval"
    shutil.copytree(ROOT / "w2p_eval", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "metrics" / "sharpness_test.py").write_text(SUITE_MODULE.replace("brightness_test", "sharpness_test"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "w2p_eval", "evaluate", "--help"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sharpness_test" in " ".join(proc.stdout.split())
    changed = [p for p in copy.rglob("*.py") if p.name != "sharpness_test.py"
               and p.read_bytes() != (ROOT / "w2p_eval" / p.relative_to(copy)).read_bytes()]
    assert not changed


@pytest.mark.parametrize("body, problem", [
    ('REGISTER_SUITES = (Entry("x", "SUITE", "help", order=ORDER),)', "order must be a literal"),
    ('REGISTER_SUITES = (Entry("x", "SUITE", "help", kind="suite", order=1),)', "unknown or repeated key 'kind'"),
    ('REGISTER_SUITES = (Entry("x", "SUITE", "help"),)', "Entry lacks order"),
    ('REGISTER_SUITES = (Entry("x", "not a target", "help", order=1),)', "target as 'attr' or 'module:attr'"),
    ('REGISTER_SUITES = (make("x"),)', "expected Entry(...)"),
    ('REGISTER_SUITES = make_entries()', "expected a tuple of Entry(...) calls"),
    ('REGISTER_SUITES = (Entry("x", "A", "a", order=1),)\nREGISTER_SUITES = ()', "assigned 2 times"),
    ('REGISTER_SUITES = (Entry("x", "A", "a", order=1), Entry("x", "B", "b", order=2))', "'x' is declared here"),
])
def test_a_malformed_declaration_is_one_clear_error_naming_the_file(plugin_dir, body, problem):
    bad = plugin_dir / "bad.py"
    bad.write_text(f"from w2p_eval.registry import Entry\n\n\n{body}\n")
    suites = Registry("metric suite", None, packages=("decl_pkg",), marker="REGISTER_SUITES")
    with pytest.raises(DeclarationError) as err:
        suites.names()
    assert str(bad) in str(err.value) and problem in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_name_declared_in_two_files_names_both(plugin_dir):
    (plugin_dir / "again.py").write_text(SUITE_MODULE)
    suites = Registry("metric suite", None, packages=("decl_pkg",), marker="REGISTER_SUITES")
    with pytest.raises(DeclarationError, match=r"'brightness_test' is declared here and in .*again\.py"):
        suites.names()
    (plugin_dir / "again.py").write_text(SUITE_MODULE.replace('"brightness_test", "SUITE"', '"identity", "SUITE"'))
    declared_entries.cache_clear()
    clash = Registry("metric suite", None, packages=("w2p_eval.metrics", "decl_pkg"), marker="REGISTER_SUITES")
    with pytest.raises(DeclarationError, match=r"again\.py: REGISTER_SUITES: 'identity' is declared here and in "
                                               r".*identity\.py"):
        clash.names()


def test_a_bracket_inside_a_help_text_does_not_confuse_the_reader(plugin_dir):
    (plugin_dir / "odd.py").write_text('from w2p_eval.registry import Entry\n\nREGISTER_SUITES = (\n'
                                       '    Entry("odd", "SUITE", "a help with ( one bracket", order=3),\n'
                                       '    Entry("even", "SUITE", "and ) its other half", order=4),\n)\nX = 1\n')
    suites = Registry("metric suite", None, packages=("decl_pkg",), marker="REGISTER_SUITES")
    assert suites.names() == ["odd", "even", "brightness_test"]


def test_listing_names_imports_no_declaring_module():
    """The verbs' --help and choices read the declarations only: no suite, judge or mode module is imported."""
    code = ("import sys\nfrom w2p_eval.metrics.registry import SUITES\nfrom w2p_eval.judges import JUDGES\n"
            "from w2p_eval.cli.prepare import PREPARE_MODES\n"
            "names = SUITES.names() + JUDGES.names() + PREPARE_MODES.names()\n"
            "print(len(names), sorted(m for m in sys.modules if m.startswith(('w2p_eval.metrics.', "
            "'w2p_eval.judges.', 'w2p_eval.data.', 'torch', 'numpy')) and m != 'w2p_eval.metrics.registry'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == f"{15 + 13 + 5} []", proc.stdout + proc.stderr
