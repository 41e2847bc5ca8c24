"""Where the work runs: the device (CUDA when present) and the CPU threads."""
from __future__ import annotations

import os

import torch

from .config import DEVICES, TrainConfig
from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"The 'device' parameter must be one of {', '.join(DEVICES)}. Got {name!r} instead.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device auto or cpu.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def start_run(cfg: TrainConfig) -> torch.device:
    """What every training run sets first: threads, device and the seed."""
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    return device


def set_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ConfigError(f"The 'threads' parameter must be an int >= 1. Got {threads!r} instead.")
    torch.set_num_threads(threads or os.cpu_count() or 1)
