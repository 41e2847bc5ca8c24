"""revsent: train, evaluate and serve LSTM sentiment classifiers on review text.

The library functions behind the CLI live in their stage's module:
``revsent.train.train``, ``revsent.evaluate.evaluate``, ``revsent.predict.predict``.
"""
from .api import Classifier
from .config import Config, DataConfig, ModelConfig, TrainConfig
from .errors import ArtifactError, ConfigError, DataError, RevsentError

__all__ = ["Classifier", "Config", "DataConfig", "ModelConfig", "TrainConfig",
           "RevsentError", "ConfigError", "DataError", "ArtifactError"]
__version__ = "0.1.0"
