"""Shared fixtures: tiny deterministic datasets, the real data in ../shared, no network, 1 thread.

The functions behind them (and every other shared test helper) live in ``tests/helpers.py``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from tests.helpers import make_tiny_dataset, shared_path


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): one worker per CPU, at most 4 (each worker loads its own torch and judge
    networks); PYTEST_XDIST_AUTO_NUM_WORKERS overrides it, `-n 0` runs in one process."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if forced:
        return int(forced)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 4))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """No test may download anything: every non-local socket connection fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise RuntimeError(f"network access blocked in tests (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Pretrained-weight lookups go to an empty temp dir unless a test sets TORCH_HOME itself."""
    if "W2P_KEEP_TORCH_HOME" not in os.environ:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))


@pytest.fixture(autouse=True)
def _no_stale_log_handlers():
    """A command run in-process (tests.helpers.run_cli) binds the root logger to the stderr captured at the time;
    a later test that logs before its own command would write to that closed stream ("--- Logging error ---")."""
    def drop_ours():
        root = logging.getLogger()
        for h in [h for h in root.handlers if not type(h).__module__.startswith("_pytest")]:
            root.removeHandler(h)

    drop_ours()
    yield
    drop_ours()


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Session-wide read-only tiny dataset (3 identities x 6 pairs, 64 px, 1.2 s audio)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")
