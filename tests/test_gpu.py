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


def test_pretrain_and_a_classifier_started_from_it_on_gpu(tmp_path):
    import json

    from typer.testing import CliRunner

    from revsent.cli import app

    runner = CliRunner()
    small = ["--embedding-dim", "32", "--hidden-size", "32", "--negatives", "64", "--bptt", "20", "--device", "cuda",
             "--quiet"]
    lm = tmp_path / "lm"
    result = runner.invoke(app, ["pretrain", "imdb", "--limit", "400", "--epochs", "2", "--out", str(lm), *small])
    assert result.exit_code == 0, result.output
    metrics = json.loads((lm / "metrics.json").read_text())
    assert "threads" not in metrics["hardware"] and 1 < metrics["heldout_perplexity"] < 5000  # a GPU's name
    lm2 = tmp_path / "lm2"
    result = runner.invoke(app, ["pretrain", "imdb", "--limit", "800", "--init-from", str(lm), "--epochs", "1",
                                 "--out", str(lm2), *small])
    assert result.exit_code == 0, result.output
    out = tmp_path / "clf"
    result = runner.invoke(app, ["train", "rt", "--limit", "600", "--preset", "quick", "--init-from", str(lm2),
                                 "--schedule", "stlr", "--gradual-unfreezing", "--epochs", "3", "--device", "cuda",
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["init_from"]["model"] == str(lm2)
