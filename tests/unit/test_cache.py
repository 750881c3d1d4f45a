"""The one disk cache (w2p_eval.cache) on its own, then every cache of the package with an edited entry.

Helper: round trip in each format, the key (inputs and version), each kind of corruption -> recomputed with one
warning naming the entry (never used), an unwritable or full cache -> the value is still computed, one lock.
Per cache (judge head, real faces' scores, real-face landmarks, voice embeddings, judged genders, validation
record): an entry edited the way a careless collaborator would (numbers changed, file still parseable, the
recorded hash left as it was) gives the same numbers as a clean run, with a warning naming the entry.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import REPO, make_face_dataset, make_tiny_dataset, mean_face_run, run_cli
from w2p_eval.api import evaluate_checkpoints
from w2p_eval.cache import Cache, array_problem
from w2p_eval.data.folder import DataFolder, record_problem
from w2p_eval.data.manifest import load_manifest
from w2p_eval.errors import InputError
from w2p_eval.judges import voice as V
from w2p_eval.judges.attributes import genders_problem, judge_genders, load_attribute_judge
from w2p_eval.judges.identity import head_problem
from w2p_eval.metrics.landmarks import cache_problem as landmarks_problem

SPECS = {"emb": ("float32", ("N", 4), True), "ids": ("U", ("N",), False)}


def clean_value() -> dict:
    return {"emb": np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "ids": np.array(["a", "b", "c"])}


def check(value) -> str | None:
    return array_problem(value, SPECS)


class Counter:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "w2p_eval.cache"]


def forge(cache: Cache, key: dict, payload: bytes) -> None:
    """Write ``payload`` as the entry with a matching recorded hash, as only code using the helper can: the
    entry's bytes then pass the integrity check and the parser and ``validate`` must refuse them."""
    cache.path(key).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key).write_bytes(payload)
    cache.record_path(key).write_text(json.dumps({"size": len(payload), "sha256": cache._seal(key, payload)}))


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/w2p_pwned_cache",))


# -- the helper on its own ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,value", [
    ("npz", clean_value()),
    ("json", {"id00": "f", "id01": "m", "n": [1, 2.5, None]}),
    ("torch", {"head": {"w": torch.arange(6.0).reshape(2, 3)}, "identities": ["a", "b"], "info": {"acc": 0.5}}),
])
def test_round_trip_in_each_format_and_computed_once(tmp_path, fmt, value, caplog):
    cache = Cache(tmp_path, "ns", 1, fmt=fmt)
    key = {"name": "entry", "data": "abc", "extractor": "net 1.0"}
    compute = Counter(value)
    first = cache.get_or_compute(key, compute)
    again = cache.get_or_compute(key, compute)
    assert compute.calls == 1 and cache.path(key).is_file() and cache.record_path(key).is_file()
    assert cache.path(key).parent == tmp_path / "ns" and cache.path(key).name.startswith("entry-")
    if fmt == "npz":
        assert all(np.array_equal(again[k], value[k]) and again[k].dtype == value[k].dtype for k in value)
    elif fmt == "torch":
        assert torch.equal(again["head"]["w"], value["head"]["w"]) and again["info"] == value["info"]
    else:
        assert again == first == value
    assert not refusals(caplog)


def test_key_changes_with_inputs_and_version(tmp_path):
    base = Cache(tmp_path, "ns", 1)
    key = {"data": "hash1", "extractor": "net 1.0"}
    paths = {base.path(key), base.path({**key, "data": "hash2"}), base.path({**key, "extractor": "net 1.1"}),
             Cache(tmp_path, "ns", 2).path(key), Cache(tmp_path, "other", 1).path(key)}
    assert len(paths) == 5
    assert base.path(dict(reversed(list(key.items())))) == base.path(key)  # the order of the parts does not matter
    compute = Counter(clean_value())
    base.get_or_compute(key, compute)
    Cache(tmp_path, "ns", 2).get_or_compute(key, compute)  # another version: not the stored entry
    assert compute.calls == 2


def _edit_number(cache, key):  # parseable, plausible, the recorded hash left as it was
    with np.load(cache.path(key)) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["emb"][0, 0] += 1
    cache.path(key).write_bytes(npz_bytes(**arrays))


def _truncate(cache, key):
    data = cache.path(key).read_bytes()
    cache.path(key).write_bytes(data[: len(data) // 2])


def _swap(cache, key):  # another key's entry (another dataset's, say) copied over this one, record and all
    other = {"name": "entry", "data": "other"}
    cache.save(other, {"emb": np.zeros((3, 4), np.float32), "ids": np.array(["a", "b", "c"])})
    shutil.copy(cache.path(other), cache.path(key))
    shutil.copy(cache.record_path(other), cache.record_path(key))


def _record(fn):
    def edit(cache, key):
        path = cache.record_path(key)
        text = fn(path.read_text())
        path.unlink() if text is None else path.write_text(text)
    return edit


CORRUPTIONS = {
    "edited-number": (_edit_number, "does not match the content hash"),
    "edited-number-and-size": (lambda c, k: c.path(k).write_bytes(c.path(k).read_bytes() + b"\0"), "were written"),
    "truncated": (_truncate, "truncated"),
    "emptied": (lambda c, k: c.path(k).write_bytes(b""), "truncated"),
    "swapped-from-another-key": (_swap, "does not match the content hash"),
    "record-missing": (_record(lambda t: None), "no readable recorded content hash"),
    "record-not-json": (_record(lambda t: t[:10]), "no readable recorded content hash"),
    "record-hash-edited": (_record(lambda t: t.replace('"sha256": "', '"sha256": "0')), "does not match"),
    "unparsable": (lambda c, k: forge(c, k, b"PK\x03\x04 not a zip at all"), "cannot be parsed"),
    "pickled-object-array": (lambda c, k: forge(c, k, npz_bytes(emb=np.array([Evil()], dtype=object))),
                             "cannot be parsed"),
    "wrong-shape": (lambda c, k: forge(c, k, npz_bytes(emb=np.zeros((3, 5), np.float32), ids=np.array(["a"] * 3))),
                    r"'emb' of shape \[3, 5\]"),
    "wrong-length": (lambda c, k: forge(c, k, npz_bytes(emb=np.zeros((3, 4), np.float32), ids=np.array(["a"] * 2))),
                     r"'ids' of shape \[2\]"),
    "wrong-dtype": (lambda c, k: forge(c, k, npz_bytes(emb=np.zeros((3, 4)), ids=np.array(["a"] * 3))),
                    "dtype float64"),
    "missing-array": (lambda c, k: forge(c, k, npz_bytes(emb=np.zeros((3, 4), np.float32))), "no array 'ids'"),
    "nan": (lambda c, k: forge(c, k, npz_bytes(emb=np.full((3, 4), np.nan, np.float32), ids=np.array(["a"] * 3))),
            "NaN or infinite"),
    "inf": (lambda c, k: forge(c, k, npz_bytes(emb=np.full((3, 4), np.inf, np.float32), ids=np.array(["a"] * 3))),
            "NaN or infinite"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_entry_is_recomputed_with_one_note_never_used(tmp_path, kind, caplog):
    edit, why = CORRUPTIONS[kind]
    cache = Cache(tmp_path, "ns", 1)
    key = {"name": "entry", "data": "abc"}
    compute = Counter(clean_value())
    cache.get_or_compute(key, compute, check)
    edit(cache, key)
    caplog.clear()
    got = cache.get_or_compute(key, compute, check)
    assert compute.calls == 2  # recomputed
    assert all(np.array_equal(got[k], clean_value()[k]) for k in SPECS)
    notes = refusals(caplog)
    assert len(notes) == 1 and str(cache.path(key)) in notes[0] and "recomputed, not used" in notes[0], notes
    assert "\n" not in notes[0]
    assert re.search(why, notes[0]), notes[0]
    caplog.clear()
    assert cache.load(key, check) is not None and not refusals(caplog)  # the entry was written again, clean
    assert not Path("/tmp/w2p_pwned_cache").exists()


def test_json_and_torch_entries_refuse_what_they_cannot_hold(tmp_path, caplog):
    js = Cache(tmp_path, "j", 1, fmt="json")
    forge(js, {"k": 1}, b'{"id00": NaN}')
    assert js.load({"k": 1}) is None and "cannot be parsed" in refusals(caplog)[-1]
    tc = Cache(tmp_path, "t", 1, fmt="torch")
    buf = io.BytesIO()
    torch.save({"head": Evil()}, buf)
    forge(tc, {"k": 1}, buf.getvalue())
    assert tc.load({"k": 1}) is None and "cannot be parsed" in refusals(caplog)[-1]
    assert not Path("/tmp/w2p_pwned_cache").exists()
    assert js.save({"k": 2}, {"x": float("nan")}) is False  # a value JSON cannot hold: a note, not a crash
    assert "could not write cache entry" in refusals(caplog)[-1]


def test_an_unwritable_cache_still_computes(tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    cache = Cache(blocker, "ns", 1)
    compute = Counter(clean_value())
    got = cache.get_or_compute({"k": 1}, compute, check)
    assert compute.calls == 1 and np.array_equal(got["emb"], clean_value()["emb"])
    notes = refusals(caplog)
    assert len(notes) == 1 and "could not write cache entry" in notes[0] and "from memory only" in notes[0]
    assert cache.load({"k": 1}) is None and cache.save({"k": 1}, got) is False
    assert blocker.read_text().startswith("a file")
    off = Cache(False, "ns", 1)
    assert off.get_or_compute({"k": 1}, compute) is got and off.load({"k": 1}) is None and compute.calls == 2


def test_a_full_disk_still_computes(tmp_path):
    """RLIMIT_FSIZE in a child process: every write past 2 kB fails with EFBIG, as on a full disk."""
    script = textwrap.dedent(f"""
        import logging, resource, signal
        import numpy as np
        from w2p_eval.cache import Cache
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
        got = Cache({str(tmp_path)!r}, "ns", 1).get_or_compute({{"k": 1}}, lambda: {{"x": np.ones(10000)}})
        print(got["x"].sum())
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip() == "10000.0", proc.stderr
    assert "could not write cache entry" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "ns").glob("*.npz")) and not list((tmp_path / "ns").glob(".*"))  # no partial file


def _compute_slowly(root: str, log_file: str) -> None:
    def compute():
        with open(log_file, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return clean_value()
    Cache(root, "ns", 1).get_or_compute({"k": 1}, compute, check)


def test_processes_sharing_a_cache_compute_an_entry_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_compute_slowly, args=(str(tmp_path), str(tmp_path / "calls.txt"))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len((tmp_path / "calls.txt").read_text().split()) == 1


# -- every cache of the package: an edited entry gives the numbers of a clean run -------------------------
def only_entry(cache_dir: Path, namespace: str, ext: str) -> Path:
    files = sorted((cache_dir / namespace).glob(f"*.{ext}"))
    assert len(files) == 1, files
    return files[0]


def edit_npz(path: Path, fn) -> None:
    """Change numbers of a cached npz the way numpy users would: load, edit, save (still parseable)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    fn(arrays)
    path.write_bytes(npz_bytes(**arrays))


def test_voice_embeddings_edited_give_clean_numbers(tiny_data, tmp_path, caplog):
    df = load_manifest(tiny_data).iloc[:4]
    clean = V.clip_embeddings(tiny_data, df, 1.0, cache_dir=tmp_path)
    entry = only_entry(tmp_path, "speaker", "npz")
    edit_npz(entry, lambda a: a.__setitem__("emb", -a["emb"]))  # still unit length: only the hash can tell
    got = V.clip_embeddings(tiny_data, df, 1.0, cache_dir=tmp_path)
    np.testing.assert_array_equal(got, clean)
    assert any(str(entry) in m for m in refusals(caplog))
    edit_npz(entry, lambda a: a.__setitem__("emb", a["emb"][:, :128]))  # a wrong shape, and the hash
    np.testing.assert_array_equal(V.clip_embeddings(tiny_data, df, 1.0, cache_dir=tmp_path), clean)


def test_landmarks_edited_give_clean_numbers_through_the_cli(tmp_path):
    face_data = make_face_dataset(tmp_path / "faces")  # real face crops: every real face is detected
    argv = ["landmarks", "--real", "--data", face_data, "--image-size", "64", "--cache-dir", tmp_path / "c",
            "--no-store"]
    clean = run_cli(argv)
    assert clean.returncode == 0, clean.stderr
    assert "100" in clean.stdout
    entry = only_entry(tmp_path / "c", "landmarks", "npz")

    def nobody_detected(a):
        a["detected"][:] = False
        a["points"][:] = np.nan
        a["notes"] = np.array(["no face"] * len(a["notes"]))

    edit_npz(entry, nobody_detected)  # what the sweep did: the real faces' rate 100 % -> 0 %
    got = run_cli(argv)
    assert got.returncode == 0 and got.stdout == clean.stdout, got.stderr
    notes = [ln for ln in got.stderr.splitlines() if ln.startswith("WARNING")]
    assert len(notes) == 1 and str(entry) in notes[0] and "recomputed, not used" in notes[0], got.stderr
    assert run_cli(argv).stderr.count("WARNING") == 0  # rewritten clean


@pytest.fixture
def mean_face(tmp_path):
    """A tiny dataset and a mean_face run (through the CLI, in the set-up: the CLI rebinds logging)."""
    return mean_face_run(tmp_path / "mf")


def test_identity_head_and_real_scores_edited_give_clean_numbers(mean_face, tmp_path, caplog):
    data, run = mean_face
    ckpt = run / "checkpoints" / "epoch_0000.pt"
    small = {"width": 8, "epochs": 30}

    def values():
        rows = evaluate_checkpoints([ckpt], data, metrics="identity", backbone="vgg_scratch",
                                    cache_dir=tmp_path / "c", seed=0, backbone_options=small)
        return {r["metric"]: (r["value"], r["n"]) for r in rows}

    clean = values()
    head = only_entry(tmp_path / "c", "identity", "pt")
    blob = torch.load(head, weights_only=True)
    blob["head"] = {k: (v * 0 if v.is_floating_point() else v) for k, v in blob["head"].items()}
    torch.save(blob, head)  # every weight zeroed: the sweep's "top-1 100 -> 0 %"
    caplog.clear()
    assert values() == clean
    assert any(str(head) in m for m in refusals(caplog))
    real = only_entry(tmp_path / "c", "identity", "npz")
    edit_npz(real, lambda a: a.__setitem__("logits", np.roll(a["logits"], 1, axis=1)))  # every real face misjudged
    caplog.clear()
    assert values() == clean
    assert [m for m in refusals(caplog) if str(real) in m]
    caplog.clear()
    assert values() == clean and not refusals(caplog)


def test_judged_genders_edited_give_clean_labels(tmp_path, caplog):
    try:
        load_attribute_judge("cpu", ethnicity=False)
    except InputError as exc:
        pytest.skip(f"attribute judge files not installed (scripts/setup.sh): {exc}")
    data = make_tiny_dataset(tmp_path / "data", n_identities=2, pairs_per_identity=4)
    names = ["id00", "id01"]
    clean = judge_genders(data, names, cache_dir=tmp_path / "c", max_faces=1)
    entry = only_entry(tmp_path / "c", "attributes", "json")
    flipped = {k: {"f": "m", "m": "f"}[v] for k, v in json.loads(entry.read_text()).items()}
    entry.write_text(json.dumps(flipped))  # an edited cache was frozen into new test lists (issue 31)
    caplog.clear()
    assert judge_genders(data, names, cache_dir=tmp_path / "c", max_faces=1) == clean
    assert any(str(entry) in m for m in refusals(caplog))


def test_validation_record_edited_gives_clean_rows(tmp_path, caplog):
    data = make_tiny_dataset(tmp_path / "data")
    clean = DataFolder(data, tmp_path / "c").split("test")
    entry = DataFolder(data, tmp_path / "c").record_path()
    record = json.loads(entry.read_text())
    image = next(k for k in record["files"] if k.startswith("image:"))
    audio = next(k for k in record["files"] if k.startswith("audio:"))
    record["files"][image][3] = ["unreadable", "edited by hand"]  # a good face called unreadable: its pair dropped
    record["files"][audio][3] = 0.01  # a long clip called too short
    entry.write_text(json.dumps(record))
    caplog.clear()
    got = DataFolder(data, tmp_path / "c").split("test")
    assert got.equals(clean)
    assert any(str(entry) in m for m in refusals(caplog))


# -- each cache's own check: the wrong shape, dtype or type is refused before anything uses it ------------------
def _landmarks(n=2, **change):
    z = {"pair_ids": np.array(["a", "b"][:n]), "detected": np.array([True, False][:n]),
         "points": np.stack([np.ones((68, 2)), np.full((68, 2), np.nan)])[:n].astype(np.float32),
         "boxes": np.array([[0, 0, 9, 9], [np.nan] * 4], np.float32)[:n], "scores": np.ones(n),
         "notes": np.array(["", "no face"][:n])}
    return {**z, **change}


def _voice(**change):
    emb = np.zeros((2, 256), np.float32)
    emb[:, 0] = 1
    return {"pair_ids": np.array(["a", "b"]), "emb": emb, "stamps": np.array(["1:2:0.0", "3:4:0.0"]), **change}


def _head_check(blob):
    template = {"w": torch.zeros(3, 4), "n": torch.zeros((), dtype=torch.long)}
    return head_problem(blob, ["a", "b", "c"], template)


def _head(**change):
    return {"head": {"w": torch.ones(3, 4), "n": torch.tensor(5)}, "identities": ["a", "b", "c"], "info": {}, **change}


def _record(**change):
    return {"files": {"image:faces/a.png": [10, 20, 30, None], "audio:audio/a.wav": [10, 20, 30, 1.25],
                      "image:faces/b.png": [10, 20, 30, ["unreadable", "truncated PNG"]], **change}}


CHECKS = {"landmarks": landmarks_problem, "voice": V.cache_problem, "head": _head_check, "genders": genders_problem,
          "record": record_problem}


VALID = {"landmarks": _landmarks(), "voice": _voice(), "head": _head(), "genders": {"id00": "f", "id01": "m"},
         "record": _record()}
REFUSED = [
    ("landmarks", _landmarks(points=np.zeros((2, 5, 2), np.float32)), "'points' of shape"),
    ("landmarks", _landmarks(detected=np.array([1, 0])), "'detected' of dtype int64"),
    ("landmarks", _landmarks(detected=np.array([True, True])), "NaN for a detected face"),
    ("landmarks", _landmarks(pair_ids=np.array(["a"])), r"'detected' of shape \[2\], expected \['N'\] \(N = 1 in"),
    ("voice", _voice(emb=np.ones((2, 256), np.float32)), "not unit-length"),
    ("voice", _voice(emb=np.full((2, 256), np.nan, np.float32)), "NaN or infinite"),
    ("voice", _voice(pair_ids=np.array(["a", "a"])), "a clip twice"),
    ("voice", [1, 2], "a list where a table of arrays"),
    ("head", _head(head={"w": torch.ones(3, 5), "n": torch.tensor(5)}), "head weight 'w' as torch.float32 \\[3, 5\\]"),
    ("head", _head(head={"w": torch.ones(3, 4)}), "head weights named"),
    ("head", _head(head={"w": torch.full((3, 4), float("inf")), "n": torch.tensor(5)}), "NaN or infinite"),
    ("head", _head(identities=["a", "b"]), "other identities"),
    ("head", _head(identities=torch.zeros(3)), "other identities"),
    ("head", [torch.ones(3)], "no judge head"),
    ("genders", {"id00": "male"}, "a gender other than f or m"),
    ("genders", ["f", "m"], "a JSON list"),
    ("record", _record(**{"image:faces/c.png": [10, 20, 30, 1.5]}), "'image:faces/c.png'"),
    ("record", _record(**{"audio:audio/c.wav": [10, 20, 30]}), "'audio:audio/c.wav'"),
    ("record", _record(**{"audio:audio/c.wav": [10, -1, 30, 1.0]}), "'audio:audio/c.wav'"),
    ("record", _record(**{"other:x": [1, 2, 3, None]}), "'other:x'"),
    ("record", "files", "a JSON str"),
    ("record", {"image:faces/a.png": [10, 20, 30, None]}, "a JSON dict where"),
]


@pytest.mark.parametrize("which", list(VALID))
def test_each_cache_check_accepts_what_it_writes(which):
    assert CHECKS[which](VALID[which]) is None


@pytest.mark.parametrize("which,value,why", REFUSED, ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(REFUSED)])
def test_each_cache_check_refuses_a_wrong_shape_dtype_or_type(which, value, why):
    problem = CHECKS[which](value)
    assert problem is not None and re.search(why, problem), problem
