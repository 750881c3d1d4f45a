"""Identity judges: a face backbone + a head trained on the dataset's real training faces.

Every backbone splits into a frozen *trunk* (run once per image; its output is cached) and a
trainable *head* (fine-tuned on the real training faces). The head returns both the face
embedding (the "face space" of the embedding metrics) and identity logits.

Resolution pipeline (the fairness rule): real faces are resized to the generator's output size S
exactly as ``generate_split`` does (``image_to_tensor`` then ``tensor_to_uint8``), and only then,
like generated faces, to the backbone's own input size inside :meth:`IdentityBackbone.trunk`.

The trained head (torch tensors, read with ``weights_only=True``) and the real faces' embeddings and logits
(npz) are kept in the disk cache's ``identity`` namespace (:class:`w2p_eval.cache.Cache`), keyed by manifest
hash, backbone, its version and settings, image size, seed, protocol and split (see :func:`identity_classifier`);
an entry that is edited, truncated or of the wrong shape is recomputed with a warning.
"""

from __future__ import annotations

import abc
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2p_eval.cache import Cache, array_problem
from w2p_eval.data.images import image_to_tensor, load_image_rgb, resize_rgb, tensor_to_uint8
from w2p_eval.data.folder import open_dataset
from w2p_eval.data.manifest import split_frame
from w2p_eval.errors import InputError
from w2p_eval.judges import load_identity_backbone
from w2p_eval.lazy import torch
from w2p_eval.utils import select_device, sha256_json

log = logging.getLogger(__name__)

JUDGE_VERSION = 1  # bump when training or preprocessing changes: invalidates caches


class IdentityBackbone(abc.ABC):
    """A face network split into a frozen trunk and a trainable head.

    ``trunk(images)`` takes uint8 [N, S, S, 3] RGB faces (any S), resizes them to ``input_size``
    and returns float32 CPU features [N, ...] without gradients.
    ``make_head(n_classes)`` returns a module mapping trunk features to
    ``(embedding float32 [N, D], logits float32 [N, n_classes])``.
    """

    name: str = "backbone"
    input_size: int = 0
    train_config: dict = {"epochs": 100, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64, "patience": 20}

    def __init__(self, device: str = "cpu"):
        self.device = device

    @abc.abstractmethod
    def trunk(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float32 [N, ...] frozen features (CPU)."""

    @abc.abstractmethod
    def make_head(self, n_classes: int) -> torch.nn.Module:
        """A fresh head (pretrained top layers where the backbone has them + a new classifier)."""

    @abc.abstractmethod
    def version(self) -> str:
        """Versions of what produced the features, e.g. 'dlib 20.0.1'."""

    def describe(self) -> dict:
        return {"backbone": self.name, "input_size": self.input_size, "train": dict(self.train_config)}

    def fit_head(self, feats: torch.Tensor, labels: torch.Tensor, val_feats: torch.Tensor, val_labels: torch.Tensor,
                 n_classes: int, seed: int, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
        """Train a fresh head on trunk features (default: :func:`train_head`); a backbone whose head holds
        pretrained layers to fine-tune may train it its own way. Returns (head in eval mode, info dict)."""
        return train_head(self, feats, labels, val_feats, val_labels, n_classes, seed, device)


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, S, S, 3] -> uint8 [N, size, size, 3] (bilinear, PIL)."""
    check_images(images)
    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack([resize_rgb(np.ascontiguousarray(im), size) for im in images])


def check_images(images: np.ndarray) -> None:
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3):
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise InputError(f"expected faces as uint8 [N, H, W, 3] RGB, got {got}")


def unique_trunk(backbone: IdentityBackbone, images: np.ndarray, batch: int = 64,
                 memo: dict[bytes, torch.Tensor] | None = None, remember: bool = False) -> torch.Tensor:
    """``backbone.trunk`` run once per distinct image (the release stores each face 5 times).

    ``memo`` (image digest -> features) is consulted, and filled when ``remember`` is set (the judge
    remembers real faces only, so generated faces equal to real ones are not recomputed while the
    memory stays bounded by the real split).
    """
    check_images(images)
    keys = [hashlib.sha1(np.ascontiguousarray(im).tobytes()).digest() for im in images]
    memo = {} if memo is None else memo
    found = {k: memo[k] for k in keys if k in memo}
    todo: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        if k not in found:
            todo.setdefault(k, i)
    idx, names = list(todo.values()), list(todo)
    for i in range(0, len(idx), batch):
        for k, f in zip(names[i:i + batch], backbone.trunk(images[idx[i:i + batch]])):
            found[k] = f
    if remember:
        memo.update(found)
    return torch.stack([found[k] for k in keys])


def real_faces_uint8(data_dir: Path, rows, image_size: int) -> np.ndarray:
    """Real faces of manifest ``rows`` through generate_split's pipeline -> uint8 [N, S, S, 3]."""
    out = np.empty((len(rows), image_size, image_size, 3), np.uint8)
    paths = list(rows["image_path"])
    for i in range(0, len(paths), 256):  # the same elementwise ops, 256 faces per torch call instead of one
        chunk = torch.stack([image_to_tensor(load_image_rgb(data_dir / rel), image_size) for rel in paths[i:i + 256]])
        out[i:i + len(chunk)] = tensor_to_uint8((chunk + 1) / 2)
    return out


def judge_training_rows(df, split: str, protocol: str):
    """(pool, scored): the judge learns from the seen-protocol training split (``pool``); the
    evaluated split's pairs are ``scored`` unless they share a face_id or segment_id with the pool.

    seen/test: every test pair is scored. unseen/test: the generator never heard the test speakers,
    while the judge knows them from their seen-protocol training segments; unseen-test pairs from
    those segments are left out and the rest (the seen-test segments of those speakers) are scored.
    """
    evaluated = split_frame(df, split, protocol)
    pool = split_frame(df, "train", "seen")
    overlap = evaluated["face_id"].isin(set(pool["face_id"])) | evaluated["segment_id"].isin(set(pool["segment_id"]))
    return pool, evaluated[~overlap].reset_index(drop=True)


def split_train_val(rows, seed: int, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, val): per identity, a seeded ``val_fraction`` of its face_id groups
    (at least one when the identity has two or more groups) is held out for model selection."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(rows), bool)
    for ident in sorted(set(rows["identity"])):
        groups = sorted(set(rows.loc[rows["identity"] == ident, "face_id"]))
        if len(groups) < 2:
            continue
        n_val = max(1, int(round(val_fraction * len(groups))))
        chosen = set(rng.permutation(groups)[:n_val].tolist())
        val |= (rows["identity"] == ident).to_numpy() & rows["face_id"].isin(chosen).to_numpy()
    return ~val, val


def _batches(n: int, size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i:i + size] for i in range(0, n, size)]


def _accuracy_loss(head, feats, labels, device) -> tuple[float, float]:
    head.eval()
    with torch.no_grad():
        logits = torch.cat([head(feats[i:i + 256].to(device))[1].cpu() for i in range(0, len(feats), 256)])
    return float((logits.argmax(1) == labels).float().mean()), float(torch.nn.functional.cross_entropy(logits, labels))


def train_epoch(head: torch.nn.Module, opt, feats: torch.Tensor, labels: torch.Tensor, batch_size: int,
                gen: torch.Generator, device: str, min_batch: int = 1) -> float:
    """One pass of Adam/cross-entropy over shuffled batches (order drawn from ``gen``); the mean training loss per
    face. Batches smaller than ``min_batch`` are skipped when there is more than one face (BatchNorm in some heads
    needs more than one sample)."""
    head.train()
    total, used = 0.0, 0
    for idx in _batches(len(labels), batch_size, gen):
        if len(idx) < min_batch and len(labels) > 1:
            continue
        _, logits = head(feats[idx].to(device))
        loss = torch.nn.functional.cross_entropy(logits, labels[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, used = total + loss.item() * len(idx), used + len(idx)
    return total / max(used, 1)


def train_head(backbone: IdentityBackbone, feats: torch.Tensor, labels: torch.Tensor, val_feats: torch.Tensor,
               val_labels: torch.Tensor, n_classes: int, seed: int,
               device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Fit ``backbone.make_head(n_classes)`` on trunk features with Adam + cross-entropy.

    Keeps the epoch with the best validation accuracy (ties: lower validation loss) and stops after
    ``patience`` epochs without improvement; without a validation part the last epoch is kept.
    Seeded: global torch RNG state is forked and restored, so callers are unaffected.
    Returns (head in eval mode, info dict with epochs, best_epoch, val_acc, train_acc).
    """
    cfg = backbone.train_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        head = backbone.make_head(n_classes)
        if hasattr(head, "fit_stats"):
            head.fit_stats(feats)
        head = head.to(device)
        params = [p for p in head.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        keeper = BestOnValidation(cfg["patience"])
        have_val = len(val_labels) > 0
        for epoch in range(1, cfg["epochs"] + 1):
            train_epoch(head, opt, feats, labels, cfg["batch_size"], gen, device, min_batch=2)
            if not have_val:
                continue
            if keeper.update(head, epoch, *_accuracy_loss(head, val_feats, val_labels, device)):
                break
        keeper.restore(head)
        head.eval()
    train_acc, _ = _accuracy_loss(head, feats, labels, device)
    info = {"epochs_run": epoch, "best_epoch": keeper.best_epoch if have_val else epoch,
            "val_acc": keeper.best_acc if have_val else float("nan"), "train_acc": train_acc,
            "n_train": int(len(labels)), "n_val": int(len(val_labels))}
    return head, info


class BestOnValidation:
    """Model selection for the judges' heads: keeps the state of the epoch with the best validation accuracy
    (ties: lower validation loss) and counts the epochs since; :meth:`update` says when ``patience`` ran out."""

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best: tuple[float, float] | None = None
        self.best_epoch = 0
        self.since = 0
        self.state: dict | None = None

    @property
    def best_acc(self) -> float:
        return self.best[0] if self.best is not None else float("nan")

    def update(self, head: torch.nn.Module, epoch: int, acc: float, vloss: float) -> bool:
        """Record one epoch's validation score; True when ``patience`` epochs passed without improvement."""
        if self.best is None or (acc, -vloss) > self.best:
            self.best, self.best_epoch, self.since = (acc, -vloss), epoch, 0
            self.state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            self.since += 1
        return self.since >= self.patience

    def restore(self, head: torch.nn.Module) -> None:
        """Load the best epoch's state back into ``head`` (nothing to do without a validation part)."""
        if self.state is not None:
            head.load_state_dict(self.state)


@dataclass
class IdentityJudge:
    """A trained identity classifier for faces of one size ``image_size``.

    :meth:`score` maps uint8 faces [N, S, S, 3] to ``(embeddings float32 [N, D], logits float32 [N, C])``
    with C = len(identities) (all dataset identities, label order of dataset.json).
    """

    backbone: IdentityBackbone
    head: torch.nn.Module
    identities: list[str]
    image_size: int
    key: str
    cache: Cache  # the real faces' scores (npz), keyed by ``key``, the backbone's version and the pixels
    info: dict = field(default_factory=dict)
    scored_pair_ids: list[str] = field(default_factory=list)  # evaluated pairs the judge never learnt from
    memo: dict = field(default_factory=dict, repr=False)  # image digest -> trunk features (this process)

    @property
    def evaluator(self) -> str:
        return f"identity/{self.backbone.name}"

    def score(self, images: np.ndarray, remember: bool = False) -> tuple[np.ndarray, np.ndarray]:
        check_images(images)
        if images.shape[1] != self.image_size or images.shape[2] != self.image_size:
            raise InputError(f"expected {self.image_size} px faces for this judge, "
                             f"got {images.shape[1]}x{images.shape[2]}")
        feats = unique_trunk(self.backbone, images, memo=self.memo, remember=remember)
        dev = self.backbone.device
        self.head.eval()
        with torch.no_grad():
            outs = [self.head(feats[i:i + 128].to(dev)) for i in range(0, len(feats), 128)]
        emb = torch.cat([o[0].float().cpu() for o in outs]).numpy()
        logits = torch.cat([o[1].float().cpu() for o in outs]).numpy()
        return emb, logits

    def real_scores(self, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score` of real faces, cached on disk by the hash of their pixels."""
        digest = hashlib.sha256(np.ascontiguousarray(real).tobytes()).hexdigest()[:16]
        key = {"name": f"{self.key}-real", "extractor": self.backbone.version(), "pixels": digest,
               "shape": list(real.shape)}

        def compute() -> dict:
            emb, logits = compute_real_scores(self, real)
            return {"embeddings": emb, "logits": logits}

        shapes = {"embeddings": ("float32", (len(real), None), True),
                  "logits": ("float32", (len(real), len(self.identities)), True)}
        blob = self.cache.get_or_compute(key, compute, lambda b: array_problem(b, shapes))
        return blob["embeddings"], blob["logits"]


def compute_real_scores(judge: IdentityJudge, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uncached real-face scoring (module-level so tests can count how often it runs)."""
    return judge.score(real, remember=True)


def identity_classifier(data_dir, backbone: str = "dlib_resnet", image_size: int = 64, seed: int = 0,
                        protocol: str = "seen", cache_dir=None, split: str = "test", device: str | None = None,
                        backbone_options: dict | None = None) -> IdentityJudge:
    """The identity judge for ``data_dir``: loaded from the cache when present, else trained and cached.

    Trained on the real training faces (:func:`judge_training_rows`) at ``image_size`` (the
    generator's output size), with a seeded validation part (:func:`split_train_val`) for model
    selection. Cache key: (manifest hash, backbone, its version, image size, seed, protocol, split, judge config).
    ``cache_dir=False`` disables caching.
    """
    data_dir = open_dataset(data_dir, cache_dir)
    device = select_device(device)
    bb = load_identity_backbone(backbone, device=device, **(backbone_options or {}))
    names = list(data_dir.identities)
    # which pairs are scored follows the manifest rows (not the cache): the evaluated split's files are
    # content-checked here, the training faces only when the judge is trained (a cached judge reads none)
    rows, scored = judge_training_rows(data_dir.rows, split, protocol)
    scored = data_dir.readable(scored)
    missing = sorted(set(scored["identity"]) - set(rows["identity"]))
    if len(scored) == 0 or missing:
        raise InputError(f"expected pairs of the {split} split ({protocol} protocol) whose speakers have other real "
                         f"faces in the seen-protocol training split (the judge learns from those), got "
                         f"{'no such pairs' if len(scored) == 0 else 'none for ' + ', '.join(missing)} in {data_dir}")
    scored_ids = list(scored["pair_id"])
    cfg_hash = sha256_json({"judge": JUDGE_VERSION, **bb.describe()}, 8)
    key = f"{data_dir.hash}-{backbone}-{int(image_size)}px-seed{seed}-{protocol}-{split}-{cfg_hash}"
    cache = Cache(cache_dir, "identity", JUDGE_VERSION, fmt="torch")
    ckey = {"name": key, "extractor": bb.version(), "identities": names}
    trained: list[IdentityJudge] = []

    def train() -> dict:
        judge = _train_judge(bb, data_dir, data_dir.readable(rows), names, int(image_size), key, cache_dir, scored_ids,
                             seed, device)
        trained.append(judge)
        state = {k: v.detach().cpu() for k, v in judge.head.state_dict().items()}
        return {"head": state, "identities": names, "info": judge.info}

    heads: list[torch.nn.Module] = []

    def check(blob) -> str | None:  # a fresh head (only on a read) is the layout the stored weights must have
        heads[:] = [bb.make_head(len(names))]
        return head_problem(blob, names, heads[0].state_dict())

    # processes sharing a cache (torchrun ranks) train each judge once: the others wait, then read it
    blob = cache.get_or_compute(ckey, train, check)
    if trained:
        return trained[0]
    head = heads[0]
    head.load_state_dict(blob["head"])
    log.info("identity judge loaded from cache %s", cache.path(ckey))
    return IdentityJudge(bb, head.to(device).eval(), names, int(image_size), key, _real_cache(cache_dir),
                         dict(blob["info"]), scored_ids)


def _real_cache(cache_dir) -> Cache:
    return Cache(cache_dir, "identity", JUDGE_VERSION, fmt="npz")


def head_problem(blob, names: list[str], template: dict) -> str | None:
    """Why a stored judge ``blob`` ({"head": state dict, "identities", "info"}) cannot be used for a head whose
    fresh ``template`` state dict it must match (keys, shapes, dtypes, finite weights); None when it can."""
    if not isinstance(blob, dict) or not isinstance(blob.get("head"), dict) or not isinstance(blob.get("info"), dict):
        return "no judge head and info"
    if not isinstance(blob.get("identities"), list) or blob["identities"] != names:
        return "a judge of other identities"
    state = blob["head"]
    if set(state) != set(template):
        return f"head weights named {sorted(state)[:3]}..., expected {sorted(template)[:3]}..."
    for name, want in template.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            what = f"{got.dtype} {list(got.shape)}" if isinstance(got, torch.Tensor) else type(got).__name__
            return f"head weight {name!r} as {what}, expected {want.dtype} {list(want.shape)}"
        if got.is_floating_point() and not torch.isfinite(got).all():
            return f"NaN or infinite values in head weight {name!r}"
    return None


def _train_judge(bb, data_dir, rows, names, image_size, key, cache_dir, scored_ids, seed, device) -> IdentityJudge:
    """Fit the judge's head on the real training faces (seeded train/val split, early stopping)."""
    log.info("training identity judge %s on %d real faces", key, len(rows))
    faces = real_faces_uint8(data_dir, rows, image_size)
    labels = torch.tensor([names.index(n) for n in rows["identity"]], dtype=torch.long)
    feats = unique_trunk(bb, faces)
    tr, va = split_train_val(rows, seed)
    tr, va = torch.from_numpy(tr), torch.from_numpy(va)
    head, info = bb.fit_head(feats[tr], labels[tr], feats[va], labels[va], len(names), seed, device)
    info.update(n_identities_trained=int(len(set(rows["identity"]))), version=bb.version(), key=key)
    return IdentityJudge(bb, head, names, image_size, key, _real_cache(cache_dir), info, scored_ids)
