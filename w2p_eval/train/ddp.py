"""Data-parallel training under ``torchrun``: process group, device per rank, wrapping, reductions.

Outside torchrun (no WORLD_SIZE > 1 in the environment) everything degrades to one process and
no process group is created. Under torchrun: gloo on CPU, NCCL on GPUs (one GPU per local rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

from w2p_eval.utils import select_device


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around ``module`` when running data-parallel, else ``module``."""
        if not self.active:
            return module
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=ids)

    def reduce_means(self, sums: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
        """Per-key mean over all processes of values weighted by counts (keys with no count dropped)."""
        keys = sorted(sums)
        vals = torch.tensor([[sums[k] for k in keys], [float(counts[k]) for k in keys]], dtype=torch.float64)
        if self.active:
            vals = self._all_reduce(vals)
        return {k: float(vals[0, i] / vals[1, i]) for i, k in enumerate(keys) if vals[1, i] > 0}

    def sum_int(self, n: int) -> int:
        if not self.active:
            return int(n)
        return int(self._all_reduce(torch.tensor([float(n)], dtype=torch.float64))[0])

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        dev = self.device if self.device.startswith("cuda") else "cpu"
        t = t.to(dev)
        tdist.all_reduce(t)
        return t.cpu()

    def barrier(self) -> None:
        if self.active:
            if self.device.startswith("cuda"):
                tdist.barrier(device_ids=[self.local_rank])
            else:
                tdist.barrier()

    def teardown(self) -> None:
        if self.owns_group:
            tdist.destroy_process_group()
            self.owns_group = False


def setup(device: str | None = None) -> Dist:
    """Join the torchrun process group if there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(device)
    if world <= 1:
        return Dist(device=device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    owns = False
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        owns = True
    return Dist(rank=rank, world_size=world, local_rank=local, device=device, owns_group=owns)


def rank() -> int:
    """This process's rank (0 outside torchrun): only rank 0 writes files."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
