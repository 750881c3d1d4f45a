"""Results store: round trip, replace-not-duplicate, two writer processes, CLI query."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import subprocess
import sys

import pytest

from w2p_eval.errors import InputError
from w2p_eval.results import ROW_KEYS, ResultsStore, format_table


def make_row(**kw) -> dict:
    row = dict(data_hash="d0", run="run-a", model="wav2pix", checkpoint="/x/run-a/checkpoints/epoch_0001.pt",
               checkpoint_hash="c1", epoch=1, metric="identity_top1_fake", split="test", protocol="seen", seed=0,
               value=0.5, n=40, evaluator="identity/dlib_resnet", evaluator_version="19.24", config_hash="h",
               extra={"per_identity": {"a": 0.5, "b": 0.5}})
    row.update(kw)
    return row


def test_round_trip_keeps_every_field_and_adds_provenance(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    row = make_row()
    assert store.write([row]) == 1
    df = store.query()
    assert len(df) == 1
    got = df.iloc[0]
    for key in ROW_KEYS:
        assert got[key] == row[key], key
    assert got["git_commit"] is None or len(got["git_commit"]) >= 7
    assert "torch" in json.loads(got["versions"])
    assert got["timestamp"].startswith("20")
    con_mode = __import__("sqlite3").connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert con_mode == "wal"


def test_rewrite_replaces_instead_of_duplicating(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.write([make_row(value=0.1), make_row(metric="identity_top1_real", value=0.9)])
    store.write([make_row(value=0.7)])
    df = store.query()
    assert len(df) == 2
    assert df.set_index("metric").loc["identity_top1_fake", "value"] == pytest.approx(0.7)
    # a different seed / evaluator / checkpoint is a new row, not a replacement
    store.write([make_row(seed=1), make_row(evaluator="identity/vgg_scratch"), make_row(checkpoint_hash="c2")])
    assert len(store) == 5


def test_query_filters_and_has(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.write([make_row(), make_row(model="mean_face", run="mf", checkpoint_hash="m1"),
                 make_row(metric="landmark_detection_rate", evaluator="landmarks/dlib", value=float("nan"))])
    assert set(store.query(model="mean_face")["run"]) == {"mf"}
    assert len(store.query(metric=["identity_top1_fake", "landmark_detection_rate"])) == 3
    assert math.isnan(store.query(metric="landmark_detection_rate")["value"].iloc[0])
    key = dict(data_hash="d0", checkpoint_hash="c1", split="test", protocol="seen", seed=0)
    assert store.has(**key, evaluator="identity/dlib_resnet", metrics=["identity_top1_fake"])
    assert not store.has(**key, evaluator="identity/dlib_resnet", metrics=["identity_top1_fake", "kid_face"])
    assert not store.has(**{**key, "seed": 3}, evaluator="identity/dlib_resnet")
    with pytest.raises(InputError, match="filter"):
        store.query(colour="red")


def test_bad_rows_and_bad_files(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    bad = make_row()
    del bad["metric"]
    with pytest.raises(ValueError, match="metric"):
        store.write([bad])
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="SQLite"):
        ResultsStore(tmp_path / "junk.sqlite")


def _writer(path: str, worker: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):  # one transaction per row: the most lock contention
        store.write([make_row(checkpoint_hash=f"w{worker}-{i}", epoch=i, run=f"w{worker}")])


def test_two_processes_writing_at_once_lose_no_row(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ResultsStore(path)
    ctx = mp.get_context("spawn")
    n = 150
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = ResultsStore(path).query()
    assert len(df) == 2 * n
    assert df.groupby("run").size().to_dict() == {"w0": n, "w1": n}


def test_format_table_and_cli(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).write([make_row(), make_row(metric="landmark_detection_rate", value=float("nan"))])
    df = ResultsStore(path).query()
    assert format_table(df, "md").startswith("| run |")
    assert "| value | ci_low | ci_high |" in format_table(df, "md")
    with_ci = make_row(run="run-b", extra={"ci": {"low": 0.25, "high": 0.75, "method": "BCa"}})
    old_wilson = make_row(run="run-c", metric="landmark_detection_rate", extra={"ci_low": 0.1, "ci_high": 0.9})
    both = tmp_path / "ci.sqlite"
    ResultsStore(both).write([make_row(), with_ci, old_wilson])
    lines = format_table(ResultsStore(both).query(), "csv").splitlines()
    assert lines[0].startswith("run,model,source,epoch,metric,split,protocol,seed,value,ci_low,ci_high,n,")
    by = {tuple(line.split(",")[:5:4]): line for line in lines[1:]}
    assert ",0.5,0.25,0.75,40," in by["run-b", "identity_top1_fake"]
    assert ",0.5,0.1,0.9,40," in by["run-c", "landmark_detection_rate"]  # an older row's Wilson bounds
    assert ",0.5,,,40," in by["run-a", "identity_top1_fake"]  # no interval stored: empty cells
    assert json.loads(format_table(df, "json"))[1]["value"] is None
    out = subprocess.run([sys.executable, "-m", "w2p_eval", "results", "--store", str(path), "--format", "json",
                          "--metric", "identity_top1_fake"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["metric"] for r in rows] == ["identity_top1_fake"] and rows[0]["extra"]["per_identity"]["a"] == 0.5
    missing = subprocess.run([sys.executable, "-m", "w2p_eval", "results", "--store", str(tmp_path / "none.sqlite")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_a_new_store_never_looks_like_someone_elses_database_while_it_is_created(tmp_path):
    """Another process (a second torchrun rank) may check the store between any two of the statements that
    create it: at each of them the file is either empty or already holds the `results` table, never an SQLite
    file without it (which `check_store` refuses as an unrelated database)."""
    from w2p_eval.validate import check_store

    path = tmp_path / "s.sqlite"
    seen = []

    class Watched(ResultsStore):
        def _connect(self, wait_s):
            con = super()._connect(wait_s)

            def check(statement):  # runs before each statement: the file as the previous ones left it
                try:  # (sqlite3 swallows a callback's exception: keep what it said instead)
                    check_store(path, ROW_KEYS, write=True)
                    seen.append((statement.split()[0], "ok"))
                except InputError as exc:
                    seen.append((statement.split()[0], str(exc)))

            con.set_trace_callback(check)
            return con

    Watched(path)
    assert len(seen) >= 2 and all(said == "ok" for _, said in seen), seen
    assert path.stat().st_size > 0
    check_store(path, ROW_KEYS, write=True)
