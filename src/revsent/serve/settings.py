"""The server's settings: one field per ``revsent serve`` option, checked once before anything starts."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    model: str
    max_batch: int = 64  # texts per model call; 1 turns micro-batching off (each request alone)
    # the longest the first request of a batch waits for others (bench/RESULTS.md: 2 against 5)
    max_wait_ms: float = 2.0
    max_texts: int = 256  # texts per request (413 above)
    max_chars: int = 50_000  # characters per text (413 above)
    max_body: int = 4 << 20  # bytes per request body (413 above)
    max_queue: int = 4096  # texts waiting for the model (429 above)
    threads: int | None = None  # threads for the model (None: all cores)
    backend: str = "torch"  # torch, or onnx: the model's ONNX export on onnxruntime (no PyTorch; no explanations)

    def check(self) -> "ServeConfig":
        from ..errors import ConfigError

        for name in ("max_batch", "max_texts", "max_chars", "max_body", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be >= 0; got {self.max_wait_ms}")
        from ..export import BACKENDS

        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        return self
