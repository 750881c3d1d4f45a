"""The CPU execution path of TensorFlow.js graphs (issue 28 round 4): filters packed for oneDNN once per input shape
(w2p_eval.judges.tfjs_conv.PackedFilters) give bit-identical outputs to the filters reordered on every call, and
stay within 1e-5 of the graph as written; the packing is made once and kept; a changed filter is packed again.
And w2p_eval.utils.keep_freed_memory: a freed 100 MB block is reused without page faults."""

from __future__ import annotations

import platform
import resource
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tfjs_helpers import write_model
from tests.unit.test_tfjs_fuse import CASES, X
from w2p_eval import utils
from w2p_eval.judges import tfjs_conv
from w2p_eval.judges.tfjs import load_graph_model

needs_reorder = pytest.mark.skipif(tfjs_conv._REORDER is None, reason="this torch has no oneDNN filter reorder op")


def _outputs(graph, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return graph(torch.from_numpy(x))["y"].numpy()


@needs_reorder
@pytest.mark.parametrize("case", sorted(CASES))
def test_packed_filters_equal_the_per_call_path_and_the_graph_as_written(case, tmp_path, monkeypatch):
    nodes, consts, _, _ = CASES[case]
    path = write_model(tmp_path, nodes, consts, input_shape=(-1, 10, 10, 3), outputs=["y"])
    plain, fused = load_graph_model(path, fuse=False), load_graph_model(path)
    calls = []
    real = tfjs_conv._REORDER
    monkeypatch.setattr(tfjs_conv, "_REORDER", lambda *a: calls.append(a[-1][0]) or real(*a))
    packed = [_outputs(fused, X), _outputs(fused, X[:1])]
    made = list(calls)
    packed += [_outputs(fused, X), _outputs(fused, X[:1])]
    assert calls == made  # packed once per convolution and input shape, then kept
    assert sorted(made) == sorted([2, 1] * (len(made) // 2))
    assert made  # every convolution takes the oneDNN call (its activation fused or run after it)
    monkeypatch.setattr(tfjs_conv, "_REORDER", None)  # the path before round 4: the filter reordered per call
    per_call = _outputs(fused, X)
    ref = _outputs(plain, X)
    np.testing.assert_array_equal(packed[0], per_call)
    np.testing.assert_array_equal(packed[2], per_call)
    np.testing.assert_allclose(packed[1], packed[0][:1], rtol=1e-5, atol=1e-5)  # batch size: rounding only
    np.testing.assert_allclose(packed[0], ref, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


@needs_reorder
def test_a_changed_filter_is_packed_again_and_two_shapes_are_kept():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.standard_normal((6, 3, 3, 3)).astype(np.float32))
    x = torch.from_numpy(rng.standard_normal((2, 3, 9, 9)).astype(np.float32)).contiguous(
        memory_format=torch.channels_last)
    pack = tfjs_conv.PackedFilters((1, 1), (1, 1), 1)

    def conv(p, inp, pad=1):
        return tfjs_conv._POINTWISE(inp, p, None, [pad, pad], [1, 1], [1, 1], 1, "none", [], "")

    with torch.no_grad():
        first = pack.get(w, (0, 0), x.shape, (1, 1))
        assert pack.get(w, (0, 0), x.shape, (1, 1)) is first  # kept
        torch.testing.assert_close(conv(first, x), F.conv2d(x, w, padding=1))
        w.mul_(2)  # changed in place: packed again, the new values used
        again = pack.get(w, (0, 0), x.shape, (1, 1))
        assert again is not first
        torch.testing.assert_close(conv(again, x), F.conv2d(x, w, padding=1))
        front = pack.get(w, (1, 1), x.shape, (2, 2))  # a zero row and column before: TF's asymmetric SAME
        torch.testing.assert_close(conv(front, x, 2), F.conv2d(x, F.pad(w, (1, 0, 1, 0)), padding=2))
        pack.get(w, (0, 0), x[:1].shape, (1, 1))  # a third shape: the oldest (the first) is dropped
        assert pack.get(w, (1, 1), x.shape, (2, 2)) is front
        assert pack.get(w, (0, 0), x.shape, (1, 1)) is not again


glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc settings")


def _faults_filling(nbytes: int) -> int:
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(nbytes // 4, dtype=torch.float32)
    t.fill_(1.0)
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


@glibc
def test_keep_freed_memory_reuses_a_freed_100_mb_block(monkeypatch):
    for key in (utils.KEEP_FREED_ENV, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(key, raising=False)
    utils.keep_freed_memory.cache_clear()
    assert utils.keep_freed_memory() is True
    assert utils.keep_freed_memory() is True  # once per process
    size = 100 << 20
    _faults_filling(size)
    pages = size // resource.getpagesize()
    assert _faults_filling(size) < pages // 20  # reused: no fresh mapping to fault in (glibc default: ~every page)


def test_keep_freed_memory_leaves_the_allocator_alone_when_told(monkeypatch):
    utils.keep_freed_memory.cache_clear()
    monkeypatch.setenv(utils.KEEP_FREED_ENV, "0")
    assert utils.keep_freed_memory() is False
    utils.keep_freed_memory.cache_clear()
    monkeypatch.delenv(utils.KEEP_FREED_ENV)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # glibc's own setting rules
    assert utils.keep_freed_memory() is False
    utils.keep_freed_memory.cache_clear()  # the next graph load in this process decides afresh
