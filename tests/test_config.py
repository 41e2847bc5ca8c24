"""revsent.config: presets, overrides, validation messages and the JSON round trip."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from revsent.config import Config, DataConfig, ModelConfig, TrainConfig
from revsent.errors import ConfigError


def test_seed_preset_is_the_tutorial():
    cfg = Config.from_preset("seed")
    assert cfg.preset == "seed"
    m, t, d = cfg.model, cfg.train, cfg.data
    assert (m.vocab_size, m.embedding_dim, m.hidden_size) == (2500, 128, 200)
    assert (m.dropout, m.recurrent_dropout) == (0.2, 0.2)
    assert (m.layers, m.bidirectional, m.pooling, m.max_len, m.oov) == (1, False, "last", None, False)
    assert (m.dense, m.ngram_buckets, m.init) == ((), 0, "keras")
    assert (t.batch_size, t.epochs, t.lr, t.test_split, t.seed) == (32, 1, 1e-3, 0.2, 36)
    assert (t.weight_decay, t.clip_norm, t.patience) == (0.0, None, None)
    assert (d.labels, d.text_field, d.paths, d.limit, d.skip_bad) == ("binary", "text", (), None, False)
    assert (t.val_fraction, t.test_data, t.class_weight, t.baseline, t.device) == (0.0, (), None, False, "auto")
    assert (m.truncate, d.format, d.label_field, d.stars_field, d.business, d.category) == ("tail", "auto", None, None, None, None)


def test_default_and_quick_presets_are_the_better_model():
    for name in ("default", "quick"):
        cfg = Config.from_preset(name)
        m = cfg.model
        assert cfg.preset == name and m.bidirectional and m.pooling == "max_mean" and m.ngram_buckets > 0
        assert m.vocab_size > 2500 and m.max_len is not None and cfg.train.epochs > 1
        assert (cfg.train.test_split, cfg.train.seed) == (0.2, 36)
        assert (cfg.train.val_fraction, cfg.train.patience, cfg.train.clip_norm) == (0.1, 1, 5.0)
    assert Config.from_preset("quick").model.max_len < Config.from_preset("default").model.max_len


def test_unknown_preset():
    with pytest.raises(ConfigError, match=re.escape("Unknown preset 'fast'; choose one of: seed, default, quick.")):
        Config.from_preset("fast")


def test_overrides_by_field_name_reach_their_section():
    cfg = Config.from_preset("quick", hidden_size=32, epochs=3, limit=10, paths=["a.json", "b.csv"], lr=1, dense=[16])
    assert cfg.model.hidden_size == 32
    assert cfg.train.epochs == 3
    assert cfg.data.limit == 10
    assert cfg.data.paths == ("a.json", "b.csv")
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # ints are fine where floats are
    assert cfg.model.dense == (16,)
    assert cfg.model.vocab_size == Config.from_preset("quick").model.vocab_size != 2500  # the rest stays
    assert cfg.preset == "quick"
    assert Config.from_preset("quick").model.hidden_size == 64  # presets are not mutated


def test_override_to_none():
    cfg = Config.from_preset("default", max_len=None, patience=None)
    assert cfg.model.max_len is None and cfg.train.patience is None


def test_no_validation_slice_drops_the_presets_choices_made_on_it():
    cfg = Config.from_preset("default", val_fraction=0)  # train on everything: nothing to stop early or average on
    assert (cfg.train.val_fraction, cfg.train.patience, cfg.train.average_weights) == (0.0, None, False)
    assert cfg.train.epochs == Config.from_preset("default").train.epochs
    with pytest.raises(ConfigError, match="--patience stops on the validation loss"):  # asked for: still refused
        Config.from_preset("default", val_fraction=0, patience=2)
    with pytest.raises(ConfigError, match="--average-weights keeps the mean"):
        Config.from_preset("default", val_fraction=0, average_weights=True)


def test_unknown_override():
    with pytest.raises(ConfigError, match=r"^Unknown setting 'hiden_size'; known settings: .*\bhidden_size\b"):
        Config.from_preset("default", hiden_size=10)


@pytest.mark.parametrize("override,message", [
    ({"hidden_size": "200"}, "The 'hidden_size' parameter of ModelConfig must be of type int. Got '200' instead."),
    ({"epochs": 1.5}, "The 'epochs' parameter of TrainConfig must be of type int. Got 1.5 instead."),
    ({"epochs": True}, "The 'epochs' parameter of TrainConfig must be of type int. Got True instead."),
    ({"dropout": "0.1"}, "The 'dropout' parameter of ModelConfig must be of type float. Got '0.1' instead."),
    ({"bidirectional": 1}, "The 'bidirectional' parameter of ModelConfig must be of type bool. Got 1 instead."),
    ({"pooling": 3}, "The 'pooling' parameter of ModelConfig must be of type str. Got 3 instead."),
    ({"max_len": "400"}, "The 'max_len' parameter of ModelConfig must be of type int. Got '400' instead."),
    ({"paths": "reviews.json"}, "The 'paths' parameter of DataConfig must be of type tuple. Got 'reviews.json' instead."),
    ({"dense": [64, "32"]}, "The 'dense' parameter of ModelConfig must be of type int. Got '32' instead."),
])
def test_wrong_types(override, message):
    with pytest.raises(ConfigError, match=rf"^{re.escape(message)}$"):
        Config.from_preset("default", **override)


@pytest.mark.parametrize("override,message", [
    ({"dropout": 1.5}, "The 'dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0). Got 1.5 instead."),
    ({"recurrent_dropout": -0.1}, "The 'recurrent_dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0). Got -0.1 instead."),
    ({"word_dropout": 1.0}, "The 'word_dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0). Got 1.0 instead."),
    ({"epochs": 0}, "The 'epochs' parameter of TrainConfig must be an int in the range [1, inf). Got 0 instead."),
    ({"test_split": 1.0}, "The 'test_split' parameter of TrainConfig must be a float in the range (0.0, 1.0). Got 1.0 instead."),
    ({"test_split": 0.0}, "The 'test_split' parameter of TrainConfig must be a float in the range (0.0, 1.0). Got 0.0 instead."),
    ({"lr": 0}, "The 'lr' parameter of TrainConfig must be a float in the range (0.0, inf). Got 0.0 instead."),
    ({"vocab_size": 2}, "The 'vocab_size' parameter of ModelConfig must be an int in the range [3, inf). Got 2 instead."),
    ({"max_len": 0}, "The 'max_len' parameter of ModelConfig must be an int in the range [1, inf). Got 0 instead."),
    ({"limit": 0}, "The 'limit' parameter of DataConfig must be an int in the range [1, inf). Got 0 instead."),
    ({"dense": [64, 0]}, "The 'dense' parameter of ModelConfig must hold sizes >= 1. Got [64, 0] instead."),
])
def test_out_of_range(override, message):
    with pytest.raises(ConfigError, match=rf"^{re.escape(message)}$"):
        Config.from_preset("default", **override)


def test_edges_inside_the_range():
    cfg = Config.from_preset("default", dropout=0.0, epochs=1, test_split=0.99, vocab_size=3, limit=1)
    assert (cfg.model.dropout, cfg.train.epochs, cfg.train.test_split, cfg.model.vocab_size, cfg.data.limit) == (0.0, 1, 0.99, 3, 1)


@pytest.mark.parametrize("override,message", [
    ({"pooling": "avg"}, "The 'pooling' parameter of ModelConfig must be one of last, max, mean, max_mean. Got 'avg' instead."),
    ({"truncate": "middle"}, "The 'truncate' parameter of ModelConfig must be one of head, tail, head_tail. Got 'middle' instead."),
    ({"labels": "sentiment"}, "The 'labels' parameter of DataConfig must be one of binary, polarity, stars. Got 'sentiment' instead."),
    ({"format": "xml"}, "The 'format' parameter of DataConfig must be one of auto, yelp, jsonl, csv, tsv, parquet, tar. Got 'xml' instead."),
    ({"device": "tpu"}, "The 'device' parameter of TrainConfig must be one of auto, cpu, cuda. Got 'tpu' instead."),
    ({"precision": "fp16"}, "The 'precision' parameter of TrainConfig must be one of auto, fp32, bf16. Got 'fp16' instead."),
])
def test_bad_choices(override, message):
    with pytest.raises(ConfigError, match=rf"^{re.escape(message)}$"):
        Config.from_preset("default", **override)


def test_label_field_and_stars_field_together():
    with pytest.raises(ConfigError, match=re.escape("Give either --label-field or --stars-field, not both.")):
        DataConfig(label_field="sentiment", stars_field="rating")
    with pytest.raises(ConfigError, match=re.escape("Give either --label-field or --stars-field, not both.")):
        Config.from_preset("seed", label_field="sentiment", stars_field="rating")
    assert DataConfig(label_field="sentiment").stars_field is None


def test_category_needs_a_business_file_or_the_tar():
    with pytest.raises(ConfigError, match=re.escape("--category needs --business FILE (Yelp's business.json)")):
        DataConfig(paths=("reviews.json",), category="Restaurants")
    assert DataConfig(paths=("reviews.json",), business="business.json", category="Restaurants").category == "Restaurants"
    assert DataConfig(paths=("yelp_dataset.tar",), category="Restaurants").business is None


def test_configs_are_frozen():
    cfg = Config.from_preset("seed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.hidden_size = 10  # type: ignore[misc]


# --- JSON ----------------------------------------------------------------------------------------

def test_to_dict_from_dict_round_trip_through_json():
    cfg = Config.from_preset(
        "quick", paths=("a.json", "b.parquet"), test_data=("v.csv",), dense=(64, 32), label_field="y",
        limit=100, skip_bad=True, max_len=None, clip_norm=None, threads=2, lr=5e-4,
    )
    raw = json.loads(json.dumps(cfg.to_dict()))
    assert raw["model"]["dense"] == [64, 32]  # JSON has no tuples
    again = Config.from_dict(raw)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert hash(again) == hash(cfg)  # tuples, not lists: still hashable


def test_to_dict_layout():
    raw = Config.from_preset("seed").to_dict()
    assert set(raw) == {"data", "model", "train", "preset"}
    assert raw["preset"] == "seed"
    assert raw["model"]["hidden_size"] == 200 and raw["train"]["seed"] == 36
    assert set(raw["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_from_dict_json_lists_become_tuples():
    cfg = Config.from_dict({"data": {"paths": ["x.json", "y.json"]}, "model": {"dense": [8, 4]}, "train": {"test_data": ["v.json"]}})
    assert cfg.data.paths == ("x.json", "y.json") and type(cfg.data.paths) is tuple
    assert cfg.model.dense == (8, 4) and type(cfg.model.dense) is tuple
    assert cfg.train.test_data == ("v.json",) and type(cfg.train.test_data) is tuple


def test_from_dict_missing_sections_take_the_defaults():
    cfg = Config.from_dict({"model": {"hidden_size": 50}})
    assert cfg.model.hidden_size == 50
    assert cfg.model.vocab_size == ModelConfig().vocab_size
    assert cfg.train == TrainConfig() and cfg.data == DataConfig()
    assert cfg.preset == "default"


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=re.escape("Unknown Config setting(s): extra, version; known: data, lm, model, preset, train.")):
        Config.from_dict({"model": {}, "extra": 1, "version": 2})
    with pytest.raises(ConfigError, match=r"^Unknown ModelConfig setting\(s\): hiden_size; known: .*\bhidden_size\b"):
        Config.from_dict({"model": {"hiden_size": 10}})
    with pytest.raises(ConfigError, match=r"^Unknown TrainConfig setting\(s\): hidden_size; known: "):
        Config.from_dict({"train": {"hidden_size": 10}})  # a real field, in the wrong section


def test_from_dict_checks_types_and_values():
    with pytest.raises(ConfigError, match=re.escape("The 'epochs' parameter of TrainConfig must be of type int. Got '3' instead.")):
        Config.from_dict({"train": {"epochs": "3"}})
    with pytest.raises(ConfigError, match=re.escape("The 'dropout' parameter of ModelConfig must be a float in the range [0.0, 1.0). Got 1.5 instead.")):
        Config.from_dict({"model": {"dropout": 1.5}})
    with pytest.raises(ConfigError, match=re.escape("The ModelConfig section must be a JSON object. Got list instead.")):
        Config.from_dict({"model": [1, 2]})


def test_saved_models_from_before_ngram_hash_keep_hash_1():
    saved = Config.from_preset("default").to_dict()
    del saved["model"]["ngram_hash"]
    assert Config.from_dict(saved).model.ngram_hash == 1  # their weights were fitted on hash 1's slots
    assert Config.from_preset("default").model.ngram_hash == 2
    assert Config.from_dict(Config.from_preset("default").to_dict()).model.ngram_hash == 2
    seed = Config.from_preset("seed").to_dict()
    del seed["model"]["ngram_hash"]
    assert Config.from_dict(seed).model.ngram_hash == 2  # no wide branch: nothing to keep


def test_saved_models_from_before_whole_reviews_read_the_cut_in_their_ngrams():
    saved = Config.from_preset("default").to_dict()
    assert saved["model"]["ngram_whole"] is True
    del saved["model"]["ngram_whole"]
    assert Config.from_dict(saved).model.ngram_whole is False  # their n-gram branch was fitted on the cut
    assert Config.from_dict(Config.from_preset("default").to_dict()).model.ngram_whole is True


def test_ngram_settings_are_checked():
    from revsent.errors import ConfigError

    for bad in ({"ngram_order": 4}, {"ngram_weighting": "bm25"}, {"ngram_hash": 3}):
        with pytest.raises(ConfigError):
            Config.from_preset("default", **bad)
