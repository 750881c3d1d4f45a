"""Suites scored with standard networks from user-supplied weight files: ``inception`` (Inception FID / IS, the
numbers SF2F and WAV2PIX quote, through torch-fidelity) and ``vggface_score`` (SF2F's Inception-Score-style
score over the VGGFace2 ResNet-50's 8,631 identities, 5 splits). Networks and file layouts:
:mod:`w2p_eval.judges.standard_nets`.

The file comes from ``EvalOptions.weight_files`` (``--inception-weights`` / ``--vggface2-weights``) or
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
import torch

from w2p_eval.metrics.base import EvalOptions, MetricSpec, MetricSuite, SuiteResult

log = logging.getLogger(__name__)

INCEPTION_FID, INCEPTION_IS, VGGFACE_SCORE = "inception_fid", "inception_is", "vggface_score"


def _nets():
    from w2p_eval.judges import standard_nets  # torch-fidelity + torchvision: loaded only when these suites run

    return standard_nets


def split_score(logits: np.ndarray, splits: int, seed: int) -> tuple[float, float]:
    """Inception-Score formula (torch-fidelity's ``isc_features_to_metric``): rows shuffled with ``seed``, cut in
    ``splits`` parts, exp(mean KL(p(y|x) || p(y))) per part -> (mean, std) over the parts. float logits [N, C]."""
    from torch_fidelity.metric_isc import isc_features_to_metric  # heavy optional backend (see _nets)

    got = isc_features_to_metric(torch.from_numpy(np.asarray(logits, np.float64)), splits=int(splits), shuffle=True,
                                 rng_seed=int(seed))
    return float(got["inception_score_mean"]), float(got["inception_score_std"])


def _distinct(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct images [U, H, W, 3], index of each row's image [N])."""
    keys = [hashlib.sha1(im.tobytes()).digest() for im in np.ascontiguousarray(faces)]
    uniq: dict[bytes, int] = {}
    inv = np.array([uniq.setdefault(k, len(uniq)) for k in keys], np.int64)
    first = np.zeros(len(uniq), np.int64)
    first[inv[::-1]] = np.arange(len(faces))[::-1]
    return faces[first], inv


class _WeightsSuite(MetricSuite):
    """A suite whose network comes from a file the user supplies (``key`` in ``EvalOptions.weight_files`` and in
    ``judges.standard_nets.WEIGHTS``)."""

    key = ""

    def path(self, opts: EvalOptions):
        return _nets().WEIGHTS[self.key].path((getattr(opts, "weight_files", None) or {}).get(self.key))

    def check(self, opts: EvalOptions) -> None:
        self.path(opts)  # a given path that is not a file: one line, before any face is made

    def evaluator(self, opts: EvalOptions) -> str:
        path = self.path(opts)
        if path is None:
            return f"{self.key}/none"
        st = path.stat()
        memo_key = ("weights-digest", str(path), st.st_size, st.st_mtime_ns)
        if memo_key not in opts.memo:
            opts.memo[memo_key] = _nets().file_digest(path)
        return f"{self.key}/{opts.memo[memo_key]}"

    def network(self, opts: EvalOptions, loader):
        """The network of ``path`` loaded once per evaluation (kept in ``opts.memo``)."""
        path = self.path(opts)
        key = (self.key, str(path), opts.device)
        if key not in opts.memo:
            opts.memo[key] = loader(path, opts.device or "cpu")
        return opts.memo[key]

    def result(self, opts: EvalOptions, gs, values: dict) -> SuiteResult:
        config = {"split": opts.split, "protocol": opts.protocol, "seed": opts.seed, "image_size": gs.image_size}
        return SuiteResult(self.evaluator(opts), f"torch {torch.__version__}", config, values)

    def skipped(self, opts: EvalOptions, gs) -> SuiteResult:
        reason = _nets().WEIGHTS[self.key].missing()
        log.warning("%s: %s rows skipped (%s)", gs.run, self.name, reason)
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

    def score(self, gs, opts: EvalOptions) -> SuiteResult:
        if self.path(opts) is None:
            return self.skipped(opts, gs)
        nets = _nets()
        net = self.network(opts, nets.load_inception)
        pools, logits = {}, {}
        for side, faces in (("fake", gs.fake), ("real", gs.real)):
            uniq, inv = _distinct(faces)
            p, l = nets.inception_features(net, uniq, opts.device or "cpu", opts.batch_size)
            pools[side], logits[side] = p[inv], l[inv]
        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric  # see _nets

        stats = [fid_features_to_statistics(torch.from_numpy(pools[s].astype(np.float64))) for s in ("fake", "real")]
        fid = float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])
        n = len(gs.fake)
        splits = min(self.splits, n)
        is_fake, std_fake = split_score(logits["fake"], splits, opts.seed)
        is_real, std_real = split_score(logits["real"], splits, opts.seed)
        note = "rank-deficient covariances (fewer than 2048 faces)" if n < 2048 else ""
        return self.result(opts, gs, {
            INCEPTION_FID: (max(fid, 0.0), n, {"dim": 2048, "note": note, "ceiling": 0.0}),
            INCEPTION_IS: (is_fake, n, {"std": std_fake, "splits": splits, "chance": 1.0,
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

    def score(self, gs, opts: EvalOptions) -> SuiteResult:
        if self.path(opts) is None:
            return self.skipped(opts, gs)
        nets = _nets()
        net = self.network(opts, nets.load_vggface2)
        logits = {}
        for side, faces in (("fake", gs.fake), ("real", gs.real)):
            uniq, inv = _distinct(faces)
            logits[side] = nets.vggface2_logits(net, uniq, opts.device or "cpu", opts.batch_size)[inv]
        n = len(gs.fake)
        splits = min(self.splits, n)
        fake, std = split_score(logits["fake"], splits, opts.seed)
        real, real_std = split_score(logits["real"], splits, opts.seed)
        return self.result(opts, gs, {VGGFACE_SCORE: (fake, n, {
            "std": std, "splits": splits, "chance": 1.0, "classes": int(logits["fake"].shape[1]),
            "ceiling": {"value": real, "std": real_std, "what": "real test faces"}})})


INCEPTION = InceptionSuite()
VGGFACE = VggfaceScoreSuite()
