"""``dlib_resnet_ft``: dlib's face descriptor with its last residual stage(s) fine-tuned on the real training faces.

WAV2PIX fine-tuned its judge (VGG-Face) on the dataset's real faces; the ``dlib_resnet`` judge is a linear
head on frozen descriptors. This backbone splits the same torch network (:mod:`w2p_eval.judges.dlib_torch`)
at the start of its last ``stages`` residual stages (dlib's level0 = the last down-sampling unit, level1 =
the three 256-channel units before it, ...):

- trunk (frozen, run once per face and memoised like any trunk): alignment, stem and the earlier
  residual units -> the activations entering the tuned stage, float32 [N, C, H, W] (256x4x4 for
  ``stages=1``, 128x8x8 for ``stages=2``);
- head (:class:`FineTuneHead`, trained): a copy of the tuned stage's units, the global pool, the 128-d
  projection ("fc") and a linear classifier on the standardised descriptor. Its embedding is the tuned
  network's 128-d descriptor.

Training (:meth:`DlibResnetFineTuneBackbone.fit_head`), seeded, on the seeded train/val split of the real
training faces that every judge uses:

1. linear probe: the ``dlib_resnet`` judge's own head training (:func:`train_head`, same config and
   seed) on the pretrained descriptors; the classifier starts from it;
2. fine-tune: the stage, the projection (Adam, ``lr``) and the classifier (``head_lr``) together on
   mini-batches, keeping the epoch with the best validation accuracy (ties: lower validation loss),
   epoch 0 (= the probe) included, and stopping after ``patience`` epochs without improvement.

So on the validation faces the judge is never worse than the linear head; whether it is better on
test faces is measured (BENCHMARKS.md). The cache entry (``identity_classifier``) holds the head's
state dict: the tuned stage's weights, the projection and the classifier, loaded with ``weights_only``.
"""

from __future__ import annotations

import copy
import logging
import types

import numpy as np
import torch

from w2p_eval.errors import InputError
from w2p_eval.judges.dlib_face import CHIP_SIZE, DlibResnetBackbone, LinearHead, _DlibAligned
from w2p_eval.judges.dlib_torch import exact_cudnn
from w2p_eval.judges.identity import BestOnValidation, _accuracy_loss, train_epoch, train_head
from w2p_eval.registry import Entry

log = logging.getLogger(__name__)


class FineTuneHead(torch.nn.Module):
    """Activations entering the tuned stage [N, C, H, W] -> (descriptor [N, 128], logits [N, n_classes])."""

    def __init__(self, units, pool: torch.nn.Module, fc: torch.nn.Linear, n_classes: int):
        super().__init__()
        self.units = torch.nn.ModuleList(copy.deepcopy(list(units)))
        self.pool = copy.deepcopy(pool)
        self.fc = copy.deepcopy(fc)
        self.classifier = LinearHead(fc.out_features, n_classes)
        self.requires_grad_(True)

    def tuned_parameters(self) -> list[torch.nn.Parameter]:
        """The pretrained part being fine-tuned: the stage's units and the 128-d projection."""
        return [*self.units.parameters(), *self.fc.parameters()]

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with exact_cudnn(x.is_cuda):
            for unit in self.units:
                x = unit(x)
            return self.fc(self.pool(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(self.descriptors(x))


def _descriptors(head: FineTuneHead, feats: torch.Tensor, device: str, batch: int = 256) -> torch.Tensor:
    head.eval()
    with torch.no_grad():
        out = [head.descriptors(feats[i:i + batch].to(device)).cpu() for i in range(0, len(feats), batch)]
    return torch.cat(out) if out else torch.zeros((0, head.fc.out_features))


class DlibResnetFineTuneBackbone(DlibResnetBackbone):
    """dlib alignment + dlib's descriptor in torch, its last ``stages`` residual stage(s) fine-tuned with the head."""

    name = "dlib_resnet_ft"
    descriptor_engine = "torch, last stage(s) fine-tuned"
    # lr 1e-4 on the stage diverges within an epoch on GRID and the tiny test set (the probe's classifier reads
    # standardised descriptors, so small descriptor moves are large logit moves); 1e-5 does not
    train_config = {"epochs": 30, "lr": 1e-5, "head_lr": 1e-4, "weight_decay": 1e-4, "batch_size": 64,
                    "patience": 6}
    probe_config = dict(_DlibAligned.train_config)  # the dlib_resnet judge's linear head training

    def __init__(self, device: str = "cpu", upsample_to: int = CHIP_SIZE, workers: int = 1, batch_size: int = 64,
                 stages: int = 1, epochs: int | None = None, patience: int | None = None, lr: float | None = None):
        super().__init__(device, upsample_to, workers, batch_size)
        all_stages = self.net.stages()
        if not (isinstance(stages, int) and 1 <= stages <= len(all_stages)):
            raise InputError(f"expected 1 to {len(all_stages)} residual stages to fine-tune, got {stages!r}")
        self.stages = stages
        self.first_tuned = all_stages[-stages][0]
        overrides = {"epochs": epochs, "patience": patience, "lr": lr}
        self.train_config = {**self.train_config, **{k: v for k, v in overrides.items() if v is not None}}

    def describe(self) -> dict:
        return {**super().describe(), "tuned_stages": self.stages,
                "tuned_units": list(range(self.first_tuned, len(self.net.units))), "probe": dict(self.probe_config)}

    def describe_chips(self, chips: np.ndarray) -> torch.Tensor:
        """uint8 chips [N, 150, 150, 3] -> float32 CPU activations entering the tuned stage [N, C, H, W]."""
        if len(chips) == 0:  # no faces: the activations' shape, from one blank chip
            return self.describe_chips(np.zeros((1, *chips.shape[1:]), np.uint8))[:0]
        out = []
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(chips[i:i + self.batch_size]).to(self.device)
                out.append(self.net.activations(x, self.first_tuned).float().cpu().contiguous())
        return torch.cat(out)

    def make_head(self, n_classes: int) -> FineTuneHead:
        return FineTuneHead(self.net.units[self.first_tuned:], self.net.pool, self.net.fc, n_classes)

    def fit_head(self, feats: torch.Tensor, labels: torch.Tensor, val_feats: torch.Tensor, val_labels: torch.Tensor,
                 n_classes: int, seed: int, device: str = "cpu") -> tuple[FineTuneHead, dict]:
        """Linear probe on the pretrained descriptors, then the stage + projection + classifier fine-tuned
        (see the module docstring). Seeded; the global torch RNG state is restored afterwards."""
        cfg = self.train_config
        have_val = len(val_labels) > 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            head = self.make_head(n_classes).to(device)
            # 1. the linear probe: exactly the dlib_resnet judge's head, trained on these descriptors
            d_train, d_val = _descriptors(head, feats, device), _descriptors(head, val_feats, device)
            probe_bb = types.SimpleNamespace(train_config=self.probe_config,
                                             make_head=lambda n: LinearHead(d_train.shape[1], n))
            probe, probe_info = train_head(probe_bb, d_train, labels, d_val, val_labels, n_classes, seed, device)
            head.classifier.load_state_dict(probe.state_dict())
            # 2. fine-tune, epoch 0 = the probe
            opt = torch.optim.Adam([{"params": head.tuned_parameters(), "lr": cfg["lr"]},
                                    {"params": list(head.classifier.parameters()), "lr": cfg["head_lr"]}],
                                   weight_decay=cfg["weight_decay"])
            keeper, epoch, history = BestOnValidation(cfg["patience"]), 0, []
            if have_val:
                acc, vloss = _accuracy_loss(head, val_feats, val_labels, device)
                keeper.update(head, 0, acc, vloss)
                history.append({"epoch": 0, "val_acc": acc, "val_loss": vloss})
            for epoch in range(1, cfg["epochs"] + 1):
                record = {"epoch": epoch,
                          "train_loss": train_epoch(head, opt, feats, labels, cfg["batch_size"], gen, device)}
                stop = False
                if have_val:
                    acc, vloss = _accuracy_loss(head, val_feats, val_labels, device)
                    record.update(val_acc=acc, val_loss=vloss)
                    stop = keeper.update(head, epoch, acc, vloss)
                history.append(record)
                log.info("fine-tune epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
                if stop:
                    break
            keeper.restore(head)
            head.eval()
        train_acc, _ = _accuracy_loss(head, feats, labels, device)
        info = {"epochs_run": epoch, "best_epoch": keeper.best_epoch if have_val else epoch,
                "val_acc": keeper.best_acc if have_val else float("nan"), "train_acc": train_acc,
                "n_train": int(len(labels)), "n_val": int(len(val_labels)), "tuned_stages": self.stages,
                "probe": {k: probe_info[k] for k in ("epochs_run", "best_epoch", "val_acc", "train_acc")},
                "history": history}
        log.info("fine-tuned judge: best epoch %d of %d (0 = the linear probe), val accuracy %.4f (probe %.4f)",
                 info["best_epoch"], epoch, info["val_acc"], probe_info["val_acc"])
        return head, info


REGISTER_JUDGES = (Entry("dlib_resnet_ft", "DlibResnetFineTuneBackbone",
                         "dlib_resnet with its last residual stage fine-tuned on the real training faces",
                         {"judge": "identity", "require": "w2p_eval.judges.dlib_face:require"}, order=60),)
