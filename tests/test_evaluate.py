"""revsent.evaluate's helpers; scoring trained models: test_store.py, test_integration.py, test_cli.py."""
import numpy as np
import pytest

from revsent import ArtifactError, DataError
from revsent.evaluate import _map_classes, _own_dataset, _trained_dataset


def test_dataset_labels_map_to_the_models_class_order():
    mapped = _map_classes(np.array([1, 0, 1]), ["neg", "pos"], ["pos", "neg"], "ds")
    assert mapped.tolist() == [0, 1, 0] and mapped.dtype == np.int64
    with pytest.raises(DataError, match=r"ds: labels \['meh'\] are not among the model's classes \['neg', 'pos'\]"):
        _map_classes(np.array([0, 1]), ["neg", "meh"], ["neg", "pos"], "ds")


def test_unreadable_metrics_record_no_training_data(tmp_path):
    assert _trained_dataset(tmp_path) == {}  # no metrics.json: a model saved from Python
    (tmp_path / "metrics.json").write_text("{not json", "utf-8")
    assert _trained_dataset(tmp_path) == {}
    (tmp_path / "metrics.json").write_text('{"dataset": {"id": "abc"}}', "utf-8")
    assert _trained_dataset(tmp_path) == {"id": "abc"}


def test_own_data_is_read_only_when_needed(tmp_path):
    with _own_dataset(tmp_path, None, needed=False) as own:
        assert own is None
    with pytest.raises(ArtifactError, match="records no training split"):
        with _own_dataset(tmp_path, None, needed=True):
            pass


import json  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from revsent.cli import app  # noqa: E402
from revsent.artifacts import TRAIN_HASHES  # noqa: E402
from revsent.data.store import review_hashes  # noqa: E402

from .conftest import NEGATIVE, POSITIVE  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained from a file by the CLI (its metrics.json records its data), and that file."""
    folder = tmp_path_factory.mktemp("eval")
    rows = [{"stars": 5 if pos else 1, "text": t} for _ in range(4)
            for pos, t in [(True, t) for t in POSITIVE] + [(False, t) for t in NEGATIVE]]
    data = folder / "reviews.json"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["train", str(data), "--out", str(folder / "m"), "--preset", "seed", "--vocab-size",
                                 "100", "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1", "--threads", "1",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "m", data


def test_scoring_the_training_file_without_hashes_says_what_it_can(trained, tmp_path):
    import shutil

    source, data = trained
    counted = runner.invoke(app, ["evaluate", str(source), str(data), "--json"])
    assert counted.exit_code == 0, counted.output
    # every text of the file is repeated four times: each scored review is one the model learnt from
    assert ("48 of 48 reviews scored here were in the model's training part; these figures overstate accuracy "
            "on new reviews") in json.loads(counted.stdout)["warnings"]
    model = tmp_path / "m"
    shutil.copytree(source, model)
    (model / TRAIN_HASHES).unlink()  # as a model saved before fingerprints were kept
    metrics = json.loads((model / "metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", str(model), str(data), "--json"])
    assert result.exit_code == 0, result.output
    (warning,) = [w for w in json.loads(result.stdout)["warnings"] if "trained on this data" in w]
    part = metrics["n_train"] + metrics["n_validation"]
    assert warning.startswith(f"{data}: the model was trained on this data; up to {part:,} of the 48 reviews")
    assert f"warning: {warning}" in result.stderr
    other = tmp_path / "other.csv"
    other.write_text("text,stars\nlovely dishes,5\n")
    fresh = runner.invoke(app, ["evaluate", str(model), str(other), "--json"])
    assert fresh.exit_code == 0 and json.loads(fresh.stdout)["warnings"] == [] and "warning" not in fresh.stderr
    own = runner.invoke(app, ["evaluate", str(model), "--json"])  # its own held-out part
    assert own.exit_code == 0 and not [w for w in json.loads(own.stdout)["warnings"] if "training part" in w]


def test_train_hashes_count_the_reviews_seen_in_training(trained, tmp_path):
    import shutil

    from revsent.artifacts import load_model

    model = tmp_path / "m"
    shutil.copytree(trained[0], model)
    encoder = load_model(model)[2]
    np.save(model / TRAIN_HASHES, np.sort(review_hashes(encoder.encode(POSITIVE[:2] + NEGATIVE[:1]))))
    data = tmp_path / "new.csv"
    data.write_text("text,stars\n" + "\n".join([f"{POSITIVE[0]},5", f"{NEGATIVE[0]},1", "lovely dishes,5"]) + "\n")
    result = runner.invoke(app, ["evaluate", str(model), str(data)])
    assert result.exit_code == 0, result.output
    assert ("warning: 2 of 3 reviews scored here were in the model's training part; these figures overstate "
            "accuracy on new reviews") in result.stderr
    (model / TRAIN_HASHES).write_bytes(b"not numpy")
    corrupt = runner.invoke(app, ["evaluate", str(model), str(data)])
    assert corrupt.exit_code != 0 and "train_hashes.npy: corrupt" in corrupt.output


def test_review_hashes_are_per_review_and_stable():
    from revsent.text import TextEncoder

    encoder = TextEncoder.fit(["good food", "bad food"], vocab_size=10)
    hashes = review_hashes(encoder.encode(["good food", "bad food", "good food"]))
    assert hashes.dtype == np.uint64 and hashes[0] == hashes[2] != hashes[1]


def test_overlap_with_a_sample_of_fingerprints_is_an_estimate():
    from revsent.data.store import hash_sample
    from revsent.evaluate import overlap

    rng = np.random.default_rng(0)
    train = rng.integers(0, 2**63, size=20_000, dtype=np.uint64)
    scored = np.concatenate([train[:4_000], rng.integers(0, 2**63, size=6_000, dtype=np.uint64)])
    assert overlap(scored, hash_sample(train)) == (4_000, False)
    seen, estimated = overlap(scored, hash_sample(train, most=5_000))
    assert estimated and abs(seen - 4_000) < 400  # a quarter of the fingerprints kept: within 10%
