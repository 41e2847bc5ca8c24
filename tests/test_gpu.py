"""The CUDA path: runs only where PyTorch sees a GPU, skipped cleanly elsewhere."""
import numpy as np
import pytest
import torch

from revsent import Classifier

from .conftest import NEGATIVE, POSITIVE, TINY

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


def test_train_and_predict_on_gpu_match_cpu(tmp_path):
    texts, labels = POSITIVE * 4 + NEGATIVE * 4, ["pos"] * 24 + ["neg"] * 24
    settings = {**TINY, "device": "cuda", "ngram_buckets": 100, "bidirectional": True, "pooling": "max_mean"}
    clf = Classifier(preset="seed", **settings).fit(texts, labels)
    assert next(clf.model_.parameters()).is_cuda
    assert clf.predict(POSITIVE + NEGATIVE) == ["pos"] * 6 + ["neg"] * 6
    clf.save(tmp_path / "m")
    on_gpu = Classifier.load(tmp_path / "m", device="cuda").predict_proba(texts)
    on_cpu = Classifier.load(tmp_path / "m", device="cpu").predict_proba(texts)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-2)  # bf16 autocast on the GPU
