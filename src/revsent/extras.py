"""Optional parts of revsent and the packages each needs (pyproject.toml's extras).

The core (prepare, train, evaluate, predict) needs none of them. A command that reaches a missing
one ends with one line naming the install command, not a traceback.
"""
from __future__ import annotations

# Top-level module -> the extra that installs it.
EXTRA_OF = {
    "fastapi": "serve", "starlette": "serve", "pydantic": "serve", "uvicorn": "serve", "uvloop": "serve",
    "httptools": "serve", "prometheus_client": "serve",
    "captum": "explain",
    "onnx": "onnx", "onnxruntime": "onnx",
    "optuna": "tune",
    "mlflow": "track", "tensorboard": "track",
}
# What each extra is for, in the message.
PURPOSE = {"serve": "serving over HTTP", "explain": "explanations", "onnx": "ONNX export and the onnx backend",
           "tune": "tuning", "track": "experiment tracking"}


def missing_extra(exc: ImportError, command: str | None = None) -> str | None:
    """The one-line message for an optional package that is not installed, or None when ``exc`` is
    about some other module (a broken install, which deserves its traceback)."""
    module = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF.get(module)
    if extra is None:
        return None
    what = f"`revsent {command}`" if command else PURPOSE[extra]
    return (f"{what} needs {module} ({PURPOSE[extra]}), which is not installed here: "
            f"pip install 'revsent[{extra}]' (or 'revsent[all]' for every optional part)")
