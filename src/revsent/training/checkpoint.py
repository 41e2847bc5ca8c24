"""Training checkpoints: what a killed run resumes from (``--resume``), and when they are taken.

    checkpoint.safetensors   model.*   the weights now          rng.torch  every rank's torch RNG
                             best.*    the best weights so far  rng.cuda   (on CUDA)
                             mean.*    the running weight mean  metadata: FitState, the batch
                             optim.*   Adam's moments           order's RNG, Adam's settings, world

A checkpoint is written at every epoch's end and, within an epoch, every ``checkpoint_minutes``
(:class:`Clock`); a bag's finished members are kept apart (:func:`save_member`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .. import artifacts
from ..errors import ArtifactError, ConfigError
from ..model import SentimentLSTM
from .distributed import SINGLE, Ranks, dropout_seed, from_main, gather
from .state import FitState


class Clock:
    """When a mid-epoch checkpoint is due: ``minutes`` after the last one. Under torchrun rank
    0's clock decides for every rank (saving is a collective: it gathers every rank's RNG)."""

    def __init__(self, path: Path | None, minutes: float, ranks: Ranks, device: torch.device):
        self.path, self.seconds, self.ranks, self.device = path, minutes * 60, ranks, device
        self.saved_at = time.perf_counter()

    def due(self, mid_epoch: bool) -> bool:
        due = self.path is not None and mid_epoch and time.perf_counter() - self.saved_at >= self.seconds
        if self.ranks.enabled:  # a collective on every step: all ranks take the same decision
            due = bool(from_main([float(due)], self.ranks, self.device)[0])
        return due

    def saved(self) -> None:
        self.saved_at = time.perf_counter()


def save_checkpoint(path: Path, model, optimizer, state: FitState, best_weights, mean_weights, rng,
                    ranks: Ranks = SINGLE, device: torch.device = torch.device("cpu")) -> None:
    """Rank 0 writes the checkpoint, with every rank's RNG states (a collective: all ranks call it)."""
    rng_states = gather(torch.get_rng_state(), ranks, device)  # (world, L)
    cuda_states = gather(torch.cuda.get_rng_state(device), ranks, device) if device.type == "cuda" else None
    if not ranks.main:
        return
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_weights.items()})
    tensors.update({f"mean.{k}": v for k, v in (mean_weights or {}).items()})
    optim, groups = optimizer_tensors(optimizer, "optim")
    tensors.update(optim)
    tensors["rng.torch"] = rng_states
    if cuda_states is not None:
        tensors["rng.cuda"] = cuda_states
    meta = {"state": json.dumps(state.__dict__), "numpy_rng": json.dumps(rng.bit_generator.state),
            "param_groups": json.dumps(groups), "world": str(ranks.world)}
    artifacts.atomic_save_tensors(path, tensors, meta)

def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    """An optimiser's state as tensors named ``prefix.PARAM.SLOT`` (safetensors), and its param groups (JSON)."""
    saved = optimizer.state_dict()
    tensors = {f"{prefix}.{pid}.{name}": value if torch.is_tensor(value) else torch.tensor(value)
               for pid, slots in saved["state"].items() for name, value in slots.items()}
    return tensors, saved["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups: list) -> None:
    """The inverse of :func:`optimizer_tensors`."""
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(f"{prefix}."):
            _, pid, name = key.split(".", 2)
            slots.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": groups})


def load_checkpoint(path: Path, model, optimizer, ranks: Ranks = SINGLE, device: torch.device = torch.device("cpu"),
                    seed: int = 0):
    """The run where the checkpoint left it. Each rank takes back its own RNG states; with another
    number of processes than wrote it, only from an epoch's end (fresh dropout streams then; the
    batch order is the shared one), since the batches of an epoch under way were cut for the old one."""
    try:
        tensors = load_file(path)
        with safe_open(path, "pt") as handle:
            meta = handle.metadata()
        state = FitState(**json.loads(meta["state"]))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        mean = {k[5:]: v for k, v in tensors.items() if k.startswith("mean.")} or None
        load_optimizer(optimizer, tensors, "optim", json.loads(meta["param_groups"]))
        rng_states, cuda_states = tensors["rng.torch"], tensors.get("rng.cuda")
        world = int(meta.get("world", 1))
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(meta["numpy_rng"])
    except Exception as exc:  # any damage makes the checkpoint unusable; say which file
        raise ArtifactError(f"{path}: unusable checkpoint ({type(exc).__name__}: {exc}); train again without --resume") from None
    if world == ranks.world:
        # a copy of the row: set_rng_state reads a view's storage from its start, not from the view
        torch.set_rng_state(rng_states.reshape(world, -1)[ranks.rank].clone())
        if cuda_states is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda_states.reshape(world, -1)[ranks.rank].clone(), device)
    elif state.step:
        raise ConfigError(f"{path}: written by {world} process(es) in the middle of epoch {state.epoch + 1}; resume it "
                          f"with {world} (torchrun --nproc-per-node/--nnodes), or it goes on from the last epoch's end "
                          "only when written there")
    else:
        torch.manual_seed(dropout_seed(seed, ranks, state.epoch))
    return state, best, mean, rng

def save_member(path: Path, member: SentimentLSTM, state: FitState) -> None:
    """A bag's finished member, kept until the run ends so that ``--resume`` need not train it again."""
    path.parent.mkdir(exist_ok=True)
    artifacts.atomic_save_tensors(path, member.state_dict(), {"state": json.dumps(state.__dict__)})


def load_member(path: Path, member: SentimentLSTM, device: torch.device) -> FitState:
    try:
        member.load_state_dict(load_file(path, device=str(device)))
        with safe_open(path, "pt") as handle:
            return FitState(**json.loads(handle.metadata()["state"]))
    except Exception as exc:  # any damage makes the member unusable; say which file
        raise ArtifactError(f"{path}: unusable member ({type(exc).__name__}: {exc}); train again without --resume") from None