"""Models and prepared datasets written by revsent 0.1.0 (tests/fixtures) load and give the same
predictions and the same data: what users have on disk keeps working."""
import json
import shutil
from pathlib import Path

import numpy as np

from revsent.api import Classifier
from revsent.config import Config
from revsent.data import store
from revsent.data.parts import open_run_data
from revsent.training import train

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def test_a_model_of_0_1_0_gives_the_same_predictions():
    clf = Classifier.load(FIXTURES / "model-0.1.0")
    assert clf.classes_ == EXPECTED["classes"]
    np.testing.assert_allclose(clf.predict_proba(EXPECTED["texts"]), EXPECTED["proba"], atol=1e-5)


def test_a_dataset_of_0_1_0_opens_with_the_same_parts():
    ds = store.Dataset.open(FIXTURES / "dataset-0.1.0")
    want = EXPECTED["dataset"]
    assert (ds.manifest["n"], ds.classes) == (want["n"], want["classes"])
    data = open_run_data(Config.from_preset("seed", paths=(str(ds.path),)), Path("unused"))
    assert store.digest(data.train.seqs, data.train.y) == want["train_digest"]
    assert store.digest(data.test.seqs, data.test.y) == want["test_digest"]


def test_a_model_trains_on_a_dataset_of_0_1_0(tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(FIXTURES / "dataset-0.1.0", dataset)
    cfg = Config.from_preset("seed", paths=(str(dataset),), embedding_dim=8, hidden_size=8, epochs=1, threads=1)
    result = train(cfg, tmp_path / "m")
    assert result.metrics["n_test"] == 60
    assert result.metrics["dataset"]["heldout_digest"] == EXPECTED["dataset"]["test_digest"]


def test_a_model_of_0_1_0_is_fine_tuned(tmp_path):
    """--init-from a 0.1.0 model: its vocabulary and settings carry over to the new model."""
    from typer.testing import CliRunner

    from revsent.cli import app

    source = FIXTURES / "model-0.1.0"
    result = CliRunner().invoke(app, ["train", "rt", "--limit", "300", "--init-from", str(source), "--epochs", "1",
                                      "--threads", "1", "--quiet", "--out", str(tmp_path / "tuned")])
    assert result.exit_code == 0, result.output
    tuned = Classifier.load(tmp_path / "tuned")
    assert tuned.encoder_.vocab == Classifier.load(source).encoder_.vocab
    assert tuned.config_.model.hidden_size == 8 and tuned.predict_proba(["a fine film"]).shape == (1, 2)


def test_a_model_with_a_dense_wide_table_gives_the_same_predictions():
    """The release before the wide branch's table became sparse wrote idf and weights for every
    one of its 4,396 features (fixtures/model-dense-wide, trained and predicted by that code): it
    loads as a sparse table and predicts as it did, and its ONNX package of that release (the
    n-gram branch in wide.safetensors beside the graph) still runs."""
    from revsent.export import OnnxClassifier

    model = FIXTURES / "model-dense-wide"
    clf = Classifier.load(model)
    assert len(clf.model_.wide_keys) < clf.config_.model.vocab_size + clf.config_.model.ngram_buckets
    np.testing.assert_allclose(clf.predict_proba(EXPECTED["texts"]), EXPECTED["dense_wide"]["proba"], atol=1e-5)
    old_package = OnnxClassifier.load(model / "onnx")
    assert not old_package.whole_
    np.testing.assert_allclose(old_package.predict_proba(EXPECTED["texts"]), EXPECTED["dense_wide"]["onnx_proba"],
                               atol=1e-5)
