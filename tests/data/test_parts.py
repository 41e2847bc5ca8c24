"""revsent.data.parts: the data of a run, built once (open or prepare, then the parts)."""
import dataclasses

import numpy as np
import pytest

from revsent.config import Config
from revsent.data import build, store
from revsent.data.parts import Part, RunData, open_run_data
from revsent.data.splits import member_masks, split
from revsent.errors import ConfigError
from revsent.text import TextEncoder

from ..conftest import TINY


def _cfg(path, **extra):
    return Config.from_preset("seed", paths=(str(path),), **{**TINY, **extra})


def test_files_are_prepared_once_and_cut_by_the_tutorial_split(tiny_reviews, tmp_path):
    data = open_run_data(_cfg(tiny_reviews, val_fraction=0.25), tmp_path / "cache")
    train_rows, test_rows = split(96, 0.2, 36)
    assert (len(data.train), len(data.test)) == (len(train_rows), len(test_rows))
    assert store.is_dataset(tmp_path / "cache") and data.dataset.path == tmp_path / "cache"
    assert len(data.fit) + len(data.validation) == len(data.train) and len(data.validation) == 19
    assert data.validation.y.dtype == np.int64 and data.test.y.dtype == np.int64
    np.testing.assert_array_equal(data.masks[0], member_masks(len(train_rows), 0.25, 36, 1)[0])


def test_a_value_of_run_data_is_immutable(tiny_reviews, tmp_path):
    data = open_run_data(_cfg(tiny_reviews), tmp_path / "cache")
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.cfg = None


def test_a_prepared_dataset_is_opened_and_its_settings_are_the_run_s(tiny_reviews, tmp_path):
    build.prepare(_cfg(tiny_reviews, vocab_size=30, test_split=0.25, seed=5), tmp_path / "ds")
    data = open_run_data(_cfg(tmp_path / "ds"), tmp_path / "unused")
    assert not (tmp_path / "unused").exists()
    assert (data.cfg.model.vocab_size, data.cfg.train.test_split, data.cfg.train.seed) == (30, 0.25, 5)
    assert len(data.test) == 24
    with pytest.raises(ConfigError, match="must be the only DATA"):
        open_run_data(_cfg(tmp_path / "ds").with_settings(paths=(str(tmp_path / "ds"), str(tiny_reviews))),
                      tmp_path / "unused")


def test_a_cached_dataset_is_reused_only_when_it_holds_the_same(tiny_reviews, tmp_path):
    cache = tmp_path / "cache"
    first = open_run_data(_cfg(tiny_reviews), cache)
    again = open_run_data(_cfg(tiny_reviews), cache, reuse=True)
    assert again.dataset.id == first.dataset.id
    assert again.dataset.manifest["created"] == first.dataset.manifest["created"]  # opened, not built again
    other = open_run_data(_cfg(tiny_reviews, vocab_size=40), cache, reuse=True)  # prepared again
    assert other.dataset.manifest["tokenizer"]["vocab_size"] == 40
    with pytest.raises(ConfigError, match="prepared from other data or settings"):
        open_run_data(_cfg(tiny_reviews), cache, reuse=True, refuse_other=True)
    named = open_run_data(_cfg(tiny_reviews, vocab_size=40), cache, reuse=True, cite_cache=True)
    assert named.cfg.data.paths == (str(cache),)


def test_members_validate_on_disjoint_slices_or_on_a_given_part():
    encoder = TextEncoder.fit_config(["good", "bad"], Config.from_preset("seed").model)
    train = Part(encoder.encode(["good", "bad"] * 20), np.array([1, 0] * 20))
    bag = RunData.of(Config.from_preset("seed", val_fraction=0.2, members=3), ["neg", "pos"], encoder, train)
    slices = [set(np.flatnonzero(mask)) for mask in bag.masks]
    assert all(len(s) == 8 for s in slices) and not (slices[0] & slices[1] or slices[1] & slices[2])
    fit, val = bag.member(2)
    assert (len(fit), len(val)) == (32, 8)
    given = Part(encoder.encode(["good"]), np.array([1]))
    with_val = RunData.of(Config.from_preset("seed", val_fraction=0.2), ["neg", "pos"], encoder, train, val=given)
    assert len(with_val.fit) == 40 and with_val.validation is given


def test_datasets_hold_whole_reviews_and_earlier_cut_ones_keep_their_reading(tiny_reviews, tmp_path):
    """max_len cuts only the LSTM's input: a prepared dataset holds whole reviews. One prepared by
    the releases before (ids cut to max_len) trains an n-gram branch on what it holds, and is not
    taken from a cache as if it held whole reviews."""
    import json

    cfg = _cfg(tiny_reviews, max_len=3, ngram_buckets=100)
    data = open_run_data(cfg, tmp_path / "cache")
    assert data.dataset.manifest["whole_reviews"] and int(data.train.seqs.lengths.max()) > 3
    assert data.cfg.model.ngram_whole and not data.dataset.cut
    manifest_path = tmp_path / "cache" / store.MANIFEST
    old = json.loads(manifest_path.read_text())
    del old["whole_reviews"]  # what an earlier release wrote (its ids were cut; here they merely say so)
    manifest_path.write_text(json.dumps(old))
    ds = store.Dataset.open(tmp_path / "cache")
    assert ds.cut and not ds.model_config(cfg.model).ngram_whole
    assert not store.prepared_with(ds, cfg)
    again = open_run_data(cfg, tmp_path / "cache", reuse=True)  # prepared again, whole
    assert again.dataset.manifest["whole_reviews"] and again.cfg.model.ngram_whole
