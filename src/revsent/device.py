"""Where the work runs: the device (CUDA when present) and the CPU threads."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
import time

import torch

from .config import DEVICES, TrainConfig
from .errors import ConfigError

# oneDNN, which runs PyTorch's LSTM on the CPU, caches a compiled primitive for every input shape
# it meets, up to 1,024 of them. Length-sorted batches bring a new shape almost every batch, so the
# cache grew with the number of batches (the 200,000 test reviews of a 1M corpus: +250 MB). The
# last 16 shapes are as fast (consecutive batches share a shape) and keep memory flat. Read when
# oneDNN first runs, so setting it here, on import, is in time; a value the user set is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"The 'device' parameter must be one of {', '.join(DEVICES)}. Got {name!r} instead.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device auto or cpu.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def trains_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether training runs its forward pass in bfloat16 autocast (weights, gradients and Adam
    stay float32). ``auto``: where the hardware computes bfloat16 natively, a CUDA GPU or a CPU
    with AMX or AVX-512 BF16 instructions, where oneDNN's bf16 LSTM and matrix products are faster
    than float32 (bench/JOURNAL.md). Elsewhere bf16 would be emulated, slower than float32."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


@functools.cache
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AMX-BF16 or AVX-512 BF16 instructions (read from Linux's /proc/cpuinfo;
    False where there is none to read)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"amx_bf16", "avx512_bf16"} & set(line.partition(":")[2].split()))
    except OSError:
        pass
    return False


def hardware(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The machine a run trained on, for its model card: the GPU's name, or the CPU's model and
    the threads PyTorch used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            name = next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine() or 'a CPU'}, {torch.get_num_threads()} threads"


def start_run(cfg: TrainConfig) -> torch.device:
    """What every training run sets first: threads, device and the seed."""
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    return device


def set_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ConfigError(f"The 'threads' parameter must be an int >= 1. Got {threads!r} instead.")
    # under torchrun the processes of one machine share its cores (LOCAL_WORLD_SIZE: how many there are)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max(local, 1)))


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "malloc_trim", None)
    except OSError:
        return None


def trim_heap() -> bool:
    """Hand the C heap's free pages back to the system; False where that cannot be done.

    Training and prediction allocate tensors of a different size for every batch (prediction's
    batches even grow, sorted by length); glibc keeps the freed memory in its heap, fragmented,
    so a process's RSS creeps up with the number of batches. Trimming every few seconds keeps it
    at what is in use (the cost is not measurable at that rate, where making every large tensor
    its own mapping, MALLOC_MMAP_THRESHOLD_, is 27% slower).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


TRIM_SECONDS = 2.0  # how often a long loop over batches hands the heap's free pages back


class HeapTrimmer:
    """Call once per batch: trims the heap (``trim_heap``) when TRIM_SECONDS have passed."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self.last >= TRIM_SECONDS:
            trim_heap()
            self.last = time.perf_counter()
