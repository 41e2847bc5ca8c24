"""Semi-supervised training (`train --unlabelled`): virtual adversarial training and entropy
minimisation on reviews without labels, and the honesty checks around them."""
import json

import pytest
import torch
from typer.testing import CliRunner

from revsent.batching import make_batch
from revsent.cli import app
from revsent.config import Config
from revsent.data import RecordReader
from revsent.config import DataConfig
from revsent.errors import ConfigError
from revsent.model import SentimentLSTM
from revsent.text import TextEncoder
from revsent.training.regularisers import _kl, _per_review, embedded_inputs, unlabelled_loss

runner = CliRunner()
QUICK = ["--preset", "quick", "--epochs", "1", "--threads", "2", "--quiet"]


def _model_and_batch():
    torch.manual_seed(0)
    texts = ["a truly wonderful film with great acting", "dull boring and far too long", "great fun", "awful"]
    encoder = TextEncoder.fit(texts, 50)
    cfg = Config.from_preset("quick", vocab_size=50, embedding_dim=8, hidden_size=8, ngram_buckets=0, dropout=0.0)
    model = SentimentLSTM(cfg.model, 2, encoder.rows)
    with torch.no_grad():
        model.readers[0].embedding.weight.mul_(20)  # a model whose predictions move with its inputs
    model.eval()
    import numpy as np

    return model, make_batch(encoder.encode(texts), np.arange(len(texts)))


def test_entropy_alone_is_the_summed_entropy_of_the_predictions():
    model, batch = _model_and_batch()
    loss = unlabelled_loss(model, lambda: model(batch), vat=0.0, entropy_weight=1.0)
    p = model(batch).softmax(1)
    assert torch.allclose(loss, -(p * p.log()).sum(), atol=1e-5)


def test_the_virtual_adversarial_direction_moves_the_prediction_more_than_random_ones():
    model, batch = _model_and_batch()
    size = 0.05
    vat = float(unlabelled_loss(model, lambda: model(batch), vat=size, entropy_weight=0.0).detach())
    with embedded_inputs(model, record=True) as inputs:
        clean = model(batch)
    random_kls = []
    for seed in range(5):
        torch.manual_seed(100 + seed)
        moves = [_per_review(size, x, torch.randn_like(x)) for x in inputs]
        with torch.no_grad(), embedded_inputs(model, add=moves):
            random_kls.append(float(_kl(clean, model(batch))))
    assert vat > 0 and vat > 2 * max(random_kls)


def test_the_loss_trains_the_model():
    model, batch = _model_and_batch()
    model.train()
    unlabelled_loss(model, lambda: model(batch), vat=0.02, entropy_weight=1.0).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_unlabelled_needs_a_loss_to_learn_from():
    with pytest.raises(ConfigError, match="both are 0"):
        Config.from_preset("default", unlabelled=("u.jsonl",), vat=0.0, entropy_weight=0.0)


@pytest.fixture(scope="module")
def imdb_texts(tmp_path_factory):
    """400 IMDB reviews after the first 600 (those the runs below train and test on), as texts alone and labelled."""
    folder = tmp_path_factory.mktemp("unlabelled")
    records = list(RecordReader(DataConfig(paths=("imdb",), limit=1000)))[600:]
    texts, labelled = folder / "texts.jsonl", folder / "labelled.jsonl"
    texts.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in records))
    labelled.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in records[:100]))
    return texts, labelled


def test_a_run_learns_from_unlabelled_reviews_and_records_them(imdb_texts, tmp_path):
    texts, labelled = imdb_texts
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "imdb", "--limit", "600", "--unlabelled", str(texts), "--out", str(out),
                                 *QUICK])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["unlabelled"]["files"] == [str(texts)] and metrics["unlabelled"]["reviews"] == 400
    assert metrics["unlabelled_hashes"] == {"kept": 400, "bound": None}
    assert not (out / ".unlabelled").exists()
    scored = runner.invoke(app, ["evaluate", str(out), str(labelled), "--label-field", "label"])
    assert scored.exit_code == 0, scored.output
    assert f"100 of 100 reviews scored here were among the texts the model read without their labels (--unlabelled " \
           f"{texts})" in scored.output


def test_a_test_review_among_the_unlabelled_ones_is_refused(tmp_path):
    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "imdb", "--limit", "600", "--unlabelled", "imdb", "--out", str(out), *QUICK])
    assert result.exit_code == 2, result.output
    line = [x for x in result.output.splitlines() if x.startswith("revsent: error:")]
    assert line and "120 of the 120 test reviews are among these texts" in line[0], result.output
    assert not out.exists()


def test_a_test_review_the_training_part_holds_too_is_not_counted_against_other_texts():
    import numpy as np

    from revsent.data.store import held_out_hashes, review_hashes

    encoder = TextEncoder.fit(["a fine film", "a dull film", "a great cast"], 20)
    test = encoder.encode(["a fine film", "a dull film", ""])
    train = encoder.encode(["a great cast", "a fine film"])  # the first test review again: a duplicate in the data
    kept = held_out_hashes(test, train)
    assert list(kept) == list(review_hashes(encoder.encode(["a dull film"])))  # neither the duplicate nor the empty one
    assert kept.dtype == np.uint64
