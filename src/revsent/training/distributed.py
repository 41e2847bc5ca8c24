"""Training across processes and machines: torchrun + DistributedDataParallel.

    torchrun --nproc-per-node N [--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT] \\
        -m revsent train DATASET --out DIR ...

Every rank opens the same memory-mapped prepared dataset and draws the same epoch order (the
same seed), cut into global batches of ``batch_size × N`` reviews; each rank reads its own
share of every global batch:

    global batch (length-bucketed, batch_size × N reviews)
        ├── rank 0: reviews 0, N, 2N, ...      forward + backward on its share
        ├── rank 1: reviews 1, N+1, 2N+1, ...  forward + backward on its share
        └── ...                                gradients all-reduced (DDP): one update, the same on every rank

So every rank runs the same number of steps, every training review is used once per epoch, and
the update equals one process's with ``--batch-size`` × N (tested). A global batch with fewer
reviews than ranks (the epoch's last, at most) gives the ranks left without one a padding
review that weighs 0 in the loss and is not counted. Dropout masks differ per rank (the torch
seed is offset by the rank). Rank 0 alone fits the n-gram branch, validates, writes the model
directory and the checkpoints; the others receive its results by broadcast. Plain `revsent
train` (no torchrun) runs none of this: one process, no process group.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError

TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a lost rank before failing


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank among ``world`` processes, its rank on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_environment(cls) -> "Ranks":
        """What torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK); one process without it."""
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError:
            raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None


SINGLE = Ranks()


def init(device: torch.device) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; joins the process group when torchrun started several:
    gloo on the CPU, NCCL on CUDA with ``cuda:LOCAL_RANK``."""
    ranks = Ranks.from_environment()
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {ranks.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                              "start at most that many processes per node")
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if ranks.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return ranks, device


def finish(together: bool = False) -> None:
    """Leave the process group; ``together``: after every rank got here (all ranks' last collective,
    so that none tears down its connections while another still uses them)."""
    if dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def dropout_seed(seed: int, ranks: Ranks, epoch: int = 0) -> int:
    """The torch seed of a rank's dropout masks (from ``epoch`` on): one stream per rank."""
    return seed + 7919 * ranks.rank + 104729 * epoch


def shard(index: np.ndarray, ranks: Ranks) -> tuple[np.ndarray, bool]:
    """This rank's reviews of the global batch ``index``, and whether they are padding (a rank
    left without a review gets the batch's first, weighted 0)."""
    part = index[ranks.rank:: ranks.world]
    return (part, False) if len(part) else (index[:1], True)


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` (rank 0's weights broadcast to all), or the model itself.

    Buffers are not re-broadcast at every step: the only ones are the n-gram branch's, fixed
    before the epochs and shared once (``broadcast``)."""
    if not ranks.enabled:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    with warnings.catch_warnings():  # newer releases rename it; the older name works in every one we support
        warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated")
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       broadcast_buffers=False)


def _carrier(device: torch.device) -> torch.device:
    """Where a collective's tensors must be: NCCL moves CUDA tensors only."""
    return device if dist.is_initialized() and dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast(tensor: torch.Tensor, ranks: Ranks, device: torch.device) -> torch.Tensor:
    """Rank 0's ``tensor`` on every rank (the others pass one of the same shape and dtype)."""
    if not ranks.enabled:
        return tensor
    moved = tensor.to(_carrier(device)).contiguous()
    dist.broadcast(moved, src=0)
    return moved.to(tensor.device)


def from_main(values: list[float], ranks: Ranks, device: torch.device) -> list[float]:
    """Rank 0's numbers on every rank: one decision taken everywhere."""
    return broadcast(torch.tensor(values, dtype=torch.float64), ranks, device).tolist()


def sum_all(values: list[float], ranks: Ranks, device: torch.device) -> list[float]:
    """Each number summed over the ranks."""
    if not ranks.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_carrier(device))
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def gather(tensor: torch.Tensor, ranks: Ranks, device: torch.device) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape everywhere), stacked in rank order: (world, ...)."""
    if not ranks.enabled:
        return tensor[None]
    moved = tensor.to(_carrier(device)).contiguous()
    out = [torch.empty_like(moved) for _ in range(ranks.world)]
    dist.all_gather(out, moved)
    return torch.stack([t.cpu() for t in out])
