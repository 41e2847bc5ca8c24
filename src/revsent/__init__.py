"""revsent: train, evaluate and serve LSTM sentiment classifiers on review text.

The library functions behind the CLI live in their stage's module:
``revsent.training.train``, ``revsent.evaluate.evaluate``, ``revsent.predict.predict``.
"""
from .config import Config, DataConfig, ModelConfig, TrainConfig
from .errors import ArtifactError, ConfigError, DataError, RevsentError


def __getattr__(name: str):
    # Classifier pulls in PyTorch: imported when first used, so that `revsent prepare` and its
    # worker processes start without it.
    if name == "Classifier":
        from .api import Classifier

        return Classifier
    raise AttributeError(f"module 'revsent' has no attribute {name!r}")


__all__ = ["Classifier", "Config", "DataConfig", "ModelConfig", "TrainConfig",
           "RevsentError", "ConfigError", "DataError", "ArtifactError"]
__version__ = "0.1.0"
