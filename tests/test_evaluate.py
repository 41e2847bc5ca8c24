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
