"""Suites scored with standard networks from user-supplied weight files: ``inception`` (Inception FID / IS, the
numbers SF2F and WAV2PIX quote, through torch-fidelity) and ``vggface_score`` (SF2F's Inception-Score-style
score over the VGGFace2 ResNet-50's 8,631 identities, 5 splits). Networks and file layouts:
:mod:`w2p_eval.judges.standard_nets`.

The file comes from ``Context.weight_files`` (``--inception-weights`` / ``--vggface2-weights``) or
``$W2P_INCEPTION_WEIGHTS`` / ``$W2P_VGGFACE2_WEIGHTS``. Without one the rows are stored without a value
(``n`` 0) whose ``extra["skipped"]`` names the file and where the field gets it, and one warning line says
the same; a path given that is not a file is bad input before anything runs. The evaluator name carries the
file's sha256 (``inception/<12 hex>``, ``inception/none`` without a file), so rows made with other weights, or
skipped for lack of them, are never taken for these. Inception Score / VGGFace Score: mean over seeded
splits with their std (the field's ``±``; no bootstrap: the score is not a mean of per-face values); FID:
no interval (as ``frechet_face``). Each distinct image goes through the network once.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
from scipy.special import logsumexp

from w2p_eval.lazy import torch
from w2p_eval.metrics.base import MetricSpec, MetricSuite, SuiteResult
from w2p_eval.metrics.plan import Context
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)

INCEPTION_FID, INCEPTION_IS, VGGFACE_SCORE = "inception_fid", "inception_is", "vggface_score"


def _nets():
    # torch-fidelity + torchvision's models take ~1 s to import; reports and compare read this module's declarations
    from w2p_eval.judges import standard_nets  # lazy: only the inception / vggface_score suites need those networks

    return standard_nets


def split_score(logits: np.ndarray, splits: int, seed: int) -> tuple[float, float]:
    """The Inception-Score formula as torch-fidelity's ``isc_features_to_metric`` computes it (rows permuted by
    ``np.random.RandomState(seed)``, cut in ``splits`` parts, exp(mean_x KL(p(y|x) || p(y))) per part) ->
    (mean, std) over the parts; float64, with 0 log 0 = 0, so saturated softmaxes give a number, not NaN.
    ``logits`` float [N, C]."""
    z = np.asarray(logits, np.float64)
    z = z[np.random.RandomState(int(seed)).permutation(len(z))]
    log_p = z - logsumexp(z, axis=1, keepdims=True)
    p = np.exp(log_p)
    n, scores = len(z), []
    for i in range(int(splits)):
        part, log_part = p[i * n // splits:(i + 1) * n // splits], log_p[i * n // splits:(i + 1) * n // splits]
        q = part.mean(axis=0)
        log_q = np.log(np.where(q > 0, q, 1.0))
        kl = np.where(part > 0, part * (log_part - log_q), 0.0).sum(axis=1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def _digests(faces: np.ndarray) -> list[bytes]:
    return [hashlib.sha1(im.tobytes()).digest() for im in np.ascontiguousarray(faces)]


def network_outputs(gs, memo: dict, run) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``run(uint8 [U, H, W, 3]) -> tuple of arrays [U, ...]`` on each distinct image of ``gs.fake`` and
    ``gs.real`` once -> (outputs of the generated rows, outputs of the real rows). Real faces' outputs are kept in
    ``memo`` (digest -> row outputs): every source of an evaluation shares them, memory bounded by the split."""
    fake_keys, real_keys = _digests(gs.fake), _digests(gs.real)
    todo: dict[bytes, np.ndarray] = {}
    for keys, faces in ((fake_keys, gs.fake), (real_keys, gs.real)):
        for k, im in zip(keys, faces):
            if k not in memo and k not in todo:
                todo[k] = im
    local = {}
    if todo:
        outs = run(np.stack(list(todo.values())))
        local = {k: tuple(o[i] for o in outs) for i, k in enumerate(todo)}
    for k in real_keys:
        memo.setdefault(k, local.get(k))

    def rows(keys):
        got = [local[k] if k in local else memo[k] for k in keys]
        return tuple(np.stack(col) for col in zip(*got))

    return rows(fake_keys), rows(real_keys)


class _WeightsSuite(MetricSuite):
    """A suite whose network comes from a file the user supplies (``key`` in ``Context.weight_files`` and in
    ``judges.standard_nets.WEIGHTS``)."""

    key = ""

    def path(self, opts: Context):
        return _nets().WEIGHTS[self.key].path((getattr(opts, "weight_files", None) or {}).get(self.key))

    def check(self, opts: Context) -> None:
        self.path(opts)  # a given path that is not a file: one line, before any face is made

    def evaluator(self, opts: Context) -> str:
        path = self.path(opts)
        if path is None:
            return f"{self.key}/none"
        st = path.stat()
        memo_key = ("weights-digest", str(path), st.st_size, st.st_mtime_ns)
        if memo_key not in opts.memo:
            opts.memo[memo_key] = _nets().file_digest(path)
        return f"{self.key}/{opts.memo[memo_key]}"

    def network(self, opts: Context, loader):
        """The network of ``path`` loaded once per evaluation (kept in ``opts.memo``)."""
        path = self.path(opts)
        key = (self.key, str(path), opts.device)
        if key not in opts.memo:
            opts.memo[key] = loader(path, opts.device or "cpu")
        return opts.memo[key]

    def result(self, opts: Context, gs, values: dict) -> SuiteResult:
        config = {"split": opts.split, "protocol": opts.protocol, "seed": opts.seed, "image_size": gs.image_size}
        return SuiteResult(self.evaluator(opts), f"torch {torch.__version__}", config, values)

    def skipped(self, opts: Context, gs) -> SuiteResult:
        reason = _nets().WEIGHTS[self.key].missing()
        log.warning("%s rows skipped (%s)", self.name, reason)  # one line per evaluation (repeats are counted)
        return self.result(opts, gs, {m.name: (float("nan"), 0, {"skipped": reason}) for m in self.metrics})


class InceptionSuite(_WeightsSuite):
    """Inception FID (generated vs real test faces, 2048-d pool features) and Inception Score (10 splits)."""

    name = "inception"
    key = "inception"
    splits = 10
    metrics = (
        MetricSpec(INCEPTION_FID, "Inception FID", False, "distance",
                   "Fréchet distance between Gaussians of Inception-v3 pool features (2048-d) of the generated and "
                   "the real test faces (torch-fidelity's network and formula, your weights file); rank-deficient "
                   "below 2048 faces, so compare only numbers computed on the same test set."),
        MetricSpec(INCEPTION_IS, "Inception Score", True, "value",
                   "exp(mean KL(p(class|face) || p(class))) over Inception-v3's 1008 ImageNet classes, mean over 10 "
                   "seeded splits (± their std); the real test faces' score beside it."),
    )

    def score(self, gs, opts: Context) -> SuiteResult:
        if self.path(opts) is None:
            return self.skipped(opts, gs)
        if len(gs.fake) < 2:
            reason = f"needs at least 2 faces for a covariance, got {len(gs.fake)}"
            return self.result(opts, gs, {m.name: (float("nan"), 0, {"skipped": reason}) for m in self.metrics})
        nets = _nets()
        net = self.network(opts, nets.load_inception)
        fake, real = network_outputs(gs, opts.memo.setdefault((self.key, "real-outputs", str(self.path(opts))), {}),
                                     lambda x: nets.inception_features(net, x, opts.device or "cpu", opts.batch_size))
        pools, logits = {"fake": fake[0], "real": real[0]}, {"fake": fake[1], "real": real[1]}
        stats = [nets.fid_features_to_statistics(torch.from_numpy(pools[s].astype(np.float64)))
                 for s in ("fake", "real")]
        fid = float(nets.fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])
        n = len(gs.fake)
        splits = min(self.splits, n)
        is_fake, std_fake = split_score(logits["fake"], splits, opts.seed)
        is_real, std_real = split_score(logits["real"], splits, opts.seed)
        note = "rank-deficient covariances (fewer than 2048 faces)" if n < 2048 else ""
        return self.result(opts, gs, {
            INCEPTION_FID: (max(fid, 0.0), n, {"dim": 2048, "note": note, "ceiling": 0.0}),
            INCEPTION_IS: (is_fake, n, {"std": std_fake, "splits": splits,
                                        "ceiling": {"value": is_real, "std": std_real, "what": "real test faces"}}),
        })


class VggfaceScoreSuite(_WeightsSuite):
    """SF2F's VGGFace Score: the Inception-Score formula over the VGGFace2 ResNet-50's 8,631 identities, 5 splits."""

    name = "vggface_score"
    key = "vggface2"
    splits = 5
    metrics = (
        MetricSpec(VGGFACE_SCORE, "VGGFace Score (SF2F)", True, "value",
                   "SF2F's VGGFace Score: exp(mean KL(p(identity|face) || p(identity))) over the VGGFace2 ResNet-50's "
                   "8,631 identities, mean over 5 seeded splits (± std); 1 = every face the same identity; the real "
                   "test faces' score beside it. SF2F reports 15.47 (voice2face) to 20.10 (SF2F 128 px) on its data."),
    )

    def score(self, gs, opts: Context) -> SuiteResult:
        if self.path(opts) is None:
            return self.skipped(opts, gs)
        nets = _nets()
        net = self.network(opts, nets.load_vggface2)
        fake, real = network_outputs(gs, opts.memo.setdefault((self.key, "real-outputs", str(self.path(opts))), {}),
                                     lambda x: (nets.vggface2_logits(net, x, opts.device or "cpu", opts.batch_size),))
        logits = {"fake": fake[0], "real": real[0]}
        n = len(gs.fake)
        splits = min(self.splits, n)
        fake, std = split_score(logits["fake"], splits, opts.seed)
        real, real_std = split_score(logits["real"], splits, opts.seed)
        return self.result(opts, gs, {VGGFACE_SCORE: (fake, n, {
            "std": std, "splits": splits, "classes": int(logits["fake"].shape[1]),
            "ceiling": {"value": real, "std": real_std, "what": "real test faces"}})})


INCEPTION = InceptionSuite()
VGGFACE = VggfaceScoreSuite()
REGISTER_SUITES = (
    Entry("inception", "INCEPTION", "Inception FID / IS (--inception-weights)", order=120),
    Entry("vggface_score", "VGGFACE", "SF2F's VGGFace Score (--vggface2-weights)", order=130),
)
