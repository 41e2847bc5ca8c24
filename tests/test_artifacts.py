import json

import numpy as np
import pytest

from revsent import Classifier, artifacts
from revsent.errors import ArtifactError

from .conftest import TINY


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from .conftest import NEGATIVE, POSITIVE

    texts, labels = POSITIVE * 4 + NEGATIVE * 4, ["pos"] * 24 + ["neg"] * 24
    clf = Classifier(preset="seed", **TINY).fit(texts, labels)
    path = tmp_path_factory.mktemp("model") / "m"
    clf.save(path)
    return clf, path


def _copy(saved_path, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(saved_path, target)
    return target


def test_round_trip_same_predictions(saved):
    clf, path = saved
    loaded = Classifier.load(path)
    texts = ["great friendly food", "rude awful service", "", "zzz unknown words only"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    assert loaded.classes_ == ["neg", "pos"] and loaded.config_ == clf.config_


def test_large_weights_are_stored_small_and_scored_as_stored(tmp_path):
    """A quarter of the bytes for the embedding (int8 rows, a float32 scale each), half for other
    large float tensors (float16), small ones (biases, the calibration) in float32; the fitted model
    was rounded to them, so the file predicts exactly what was scored."""
    import torch
    from safetensors import safe_open

    from .conftest import NEGATIVE, POSITIVE

    clf = Classifier(preset="seed", **{**TINY, "embedding_dim": 64, "epochs": 2}).fit(POSITIVE + NEGATIVE,
                                                                                        ["pos"] * 6 + ["neg"] * 6)
    path = clf.save(tmp_path / "m")
    with safe_open(path / "model.safetensors", "pt") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
        sizes = {name: int(np.prod(f.get_slice(name).get_shape())) for name in f.keys()}
    embedding = "readers.0.embedding.weight"
    assert sizes[embedding] > 1024 and dtypes[embedding] == "I8" and dtypes[embedding + ".row_scale"] == "F32"
    assert dtypes["mix"] == "F32" and dtypes["readers.0.out.bias"] == "F32"
    floats = [n for n in dtypes if dtypes[n].startswith("F") and not n.endswith(".row_scale")]
    assert all(dtypes[n] == ("F16" if sizes[n] > 1024 else "F32") for n in floats)
    state = clf.model_.state_dict()
    weight = state["readers.0.forward_layers.0.weight_ih_l0"]
    assert weight.dtype == torch.float32 and torch.equal(weight, weight.half().float())  # rounded in memory as on disk
    rows = state[embedding]
    steps = rows / (rows.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-30)
    assert torch.allclose(steps, steps.round(), atol=1e-3) and rows[0].abs().sum() == 0  # whole int8 steps; padding 0
    loaded = Classifier.load(path)
    texts = ["great friendly food", "rude awful service"]
    assert np.array_equal(loaded.predict_proba(texts), clf.predict_proba(texts))


def test_models_with_a_float16_embedding_still_load(tmp_path):
    """The layout of the releases before int8 embeddings: every large float tensor in float16."""
    import torch
    from safetensors.torch import load_file, save_file

    from .conftest import NEGATIVE, POSITIVE

    clf = Classifier(preset="seed", **{**TINY, "embedding_dim": 64}).fit(POSITIVE + NEGATIVE, ["pos"] * 6 + ["neg"] * 6)
    path = clf.save(tmp_path / "m")
    stored = load_file(path / "model.safetensors")
    scale = stored.pop("readers.0.embedding.weight.row_scale")
    rows = stored["readers.0.embedding.weight"].float() * scale[:, None]
    stored["readers.0.embedding.weight"] = rows.half() if rows.numel() > 1024 else rows
    save_file(stored, path / "model.safetensors", {"format": "pt", "revsent_format": "1"})
    loaded = Classifier.load(path)
    assert loaded.model_.readers[0].embedding.weight.dtype == torch.float32
    texts = ["great friendly food", "rude awful service"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-3)


def test_directory_holds_only_json_safetensors_and_its_card(saved):
    import os

    _, path = saved
    mask = os.umask(0)
    os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()} == {p.name: 0o666 & ~mask for p in path.iterdir()}
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
    assert (path / "model.safetensors").read_bytes()[8:9] == b"{"  # a safetensors JSON header, not a pickle


@pytest.mark.parametrize("name, damage, message", [
    ("config.json", None, "config.json: missing"),
    ("config.json", b"{not json", "config.json: corrupt JSON"),
    ("config.json", b'{"format_version": 99, "classes": ["a", "b"]}', "model format 99 is not supported"),
    ("config.json", b'{"format_version": 1, "classes": ["a"]}', "at least two class names"),
    ("tokenizer.json", None, "tokenizer.json: missing"),
    ("tokenizer.json", b"[1, 2", "tokenizer.json: corrupt tokenizer"),
    ("model.safetensors", None, "not a finished model"),
    ("model.safetensors", b"\x00\x01", "model.safetensors: corrupt or truncated"),
])
def test_damaged_files_are_named(saved, tmp_path, name, damage, message):
    path = _copy(saved[1], tmp_path)
    if damage is None:
        (path / name).unlink()
    else:
        (path / name).write_bytes(damage)
    with pytest.raises(ArtifactError, match=message.replace(".", r"\.")):
        Classifier.load(path)


def test_truncated_weights(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="model.safetensors: corrupt or truncated"):
        Classifier.load(path)


def test_weights_that_do_not_match_the_config(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["model"]["hidden_size"] = 7
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="does not match config.json"):
        Classifier.load(path)


def test_unknown_config_key(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["model"]["wings"] = 2
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="Unknown ModelConfig setting"):
        Classifier.load(path)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ArtifactError, match="no such model directory"):
        Classifier.load(tmp_path / "absent")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "file.json"
    target.write_text("old")

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", boom)
    with pytest.raises(OSError):
        artifacts.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_tokenizer_from_a_bigger_vocabulary(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    tokenizer = json.loads((path / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzzz"] = 5000
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ArtifactError, match="ids do not fit config.json's vocab_size 100"):
        Classifier.load(path)
