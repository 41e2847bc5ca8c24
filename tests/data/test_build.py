"""revsent.data.build and revsent.data.store: prepared datasets (prepare, open and verify, train and
evaluate from them)."""
import json

import numpy as np
import pytest

import revsent.data.build as build
import revsent.data.store as store
from revsent.config import Config
from revsent.data import read_labelled, split
from revsent.errors import ArtifactError, ConfigError, DataError
from revsent.evaluate import evaluate
from revsent.text import TextEncoder
from revsent.training import train

from ..conftest import TINY


def _cfg(*paths, **extra):
    return Config.from_preset("seed", paths=tuple(str(p) for p in paths), **{**TINY, **extra})


def _prepare(path, out, **extra):
    return build.prepare(_cfg(path, **extra), out)


def test_prepare_writes_a_complete_dataset(tiny_reviews, tmp_path):
    ds = _prepare(tiny_reviews, tmp_path / "ds")
    names = {p.name for p in (tmp_path / "ds").iterdir()}
    assert names == {"manifest.json", "tokenizer.json", "ids.bin", "offsets.npy", "labels.npy", "split.npy"}
    assert {p.name for p in tmp_path.iterdir()} == {"reviews.json", "ds"}  # no build folder left behind
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert m["format"] == "revsent-dataset" and m["n"] == 96 and m["n_train"] == 76 and m["n_heldout"] == 20
    assert m["ids_dtype"] == "uint16" and m["classes"] == ["negative", "positive"]
    assert m["counts"] == {"records_read": 96, "records_kept": 96, "records_skipped": {}, "records_filtered": {},
                           "records_per_class": {"positive": 48, "negative": 48}}
    assert m["tokenizer"] == {"vocab_size": 100, "oov": False, "max_len": None, "truncate": "tail", "min_count": 1}
    assert m["split"] == {"test_split": 0.2, "seed": 36, "test_data": []}
    assert set(m["files"]) == names - {"manifest.json"} and all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert "revsent_version" in m
    assert isinstance(ds.seqs.ids.base, np.memmap) and ds.seqs.ids.dtype == np.uint16


def test_dataset_holds_what_the_in_memory_pipeline_gives(tiny_reviews, tmp_path):
    """Same records, labels, tutorial split and vocabulary (fitted on the training split only)."""
    cfg = _cfg(tiny_reviews)
    ds = build.prepare(cfg, tmp_path / "ds")
    data = read_labelled(cfg)
    train_idx, val_idx = split(len(data.texts), 0.2, 36)
    assert ds.rows(0).tolist() == train_idx.tolist() and ds.rows(1).tolist() == val_idx.tolist()
    assert ds.y.tolist() == data.y.tolist()
    encoder = TextEncoder.fit_config([data.texts[i] for i in train_idx], cfg.model)
    assert ds.encoder.vocab == encoder.vocab
    expected = encoder.encode(data.texts)
    assert [ds.seqs[i].tolist() for i in range(len(data.texts))] == [expected[i].tolist() for i in range(len(data.texts))]


def test_vocabulary_ignores_words_only_in_the_held_out_split(write_jsonl, tmp_path):
    rows = [{"text": f"good w{i}", "stars": 5} for i in range(8)] + [{"text": f"bad w{i}", "stars": 1} for i in range(8, 16)]
    ds = _prepare(write_jsonl("r.json", rows), tmp_path / "ds", vocab_size=1000)
    held_words = {f"w{i}" for i in ds.rows(1)}
    assert held_words and not held_words & set(ds.encoder.vocab)
    assert {f"w{i}" for i in ds.rows(0)} <= set(ds.encoder.vocab)


@pytest.mark.parametrize("oov,max_len,truncate", [(False, None, "tail"), (True, 2, "head"), (False, 2, "tail")])
def test_tokenizer_settings_are_applied(write_jsonl, tmp_path, oov, max_len, truncate):
    texts = ["a b c d", "a b", "c d e", "a a a a a"] * 5 + ["zzz a b c"]
    rows = [{"text": t, "label": "x" if i % 2 else "y"} for i, t in enumerate(texts)]
    path = write_jsonl("r.json", rows)
    ds = _prepare(path, tmp_path / "ds", vocab_size=4, oov=oov, max_len=max_len, truncate=truncate, test_split=0.1)
    encoder = TextEncoder.fit([texts[i] for i in ds.rows(0)], 4, oov, max_len, truncate)
    assert ds.encoder.vocab == encoder.vocab
    expected = encoder.encode(texts)
    assert [ds.seqs[i].tolist() for i in range(len(texts))] == [expected[i].tolist() for i in range(len(texts))]


def test_large_vocabulary_uses_uint32(write_jsonl, tmp_path):
    path = write_jsonl("r.json", [{"text": "good", "stars": 5}, {"text": "bad", "stars": 1}] * 5)
    ds = _prepare(path, tmp_path / "ds", vocab_size=100_000)
    assert ds.manifest["ids_dtype"] == "uint32" and ds.seqs.ids.dtype == np.uint32


def _count_pools(monkeypatch) -> list:
    """Records the size of every worker pool started (a spy on multiprocessing's Pool)."""
    import multiprocessing.context

    started, real = [], multiprocessing.context.BaseContext.Pool

    def pool(self, processes=None, *args, **kwargs):
        started.append(processes)
        return real(self, processes, *args, **kwargs)

    monkeypatch.setattr(multiprocessing.context.BaseContext, "Pool", pool)
    return started


def test_worker_processes_give_the_same_dataset(tiny_reviews, tmp_path, monkeypatch):
    """Small chunks and an early pool: the words numbered by several processes merge into one table."""
    whole = _prepare(tiny_reviews, tmp_path / "a")
    monkeypatch.setattr(build, "CHUNK", 7)
    monkeypatch.setattr(build, "POOL_AFTER", 1)
    monkeypatch.setattr(build, "TOKEN_CHUNK", 50)
    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    pools = _count_pools(monkeypatch)
    parts = _prepare(tiny_reviews, tmp_path / "b")
    assert pools == [2]  # the worker processes did run
    assert parts.encoder.vocab == whole.encoder.vocab
    assert np.array_equal(parts.seqs.ids, whole.seqs.ids) and np.array_equal(parts.seqs.offsets, whole.seqs.offsets)
    assert parts.y.tolist() == whole.y.tolist()


def test_word_tables_started_afresh_give_the_same_dataset(tiny_reviews, tmp_path, monkeypatch):
    """Workers empty their word tables beyond WORKER_WORDS (bounded memory on any corpus); the
    main table still merges every word once, so nothing changes in the dataset."""
    whole = _prepare(tiny_reviews, tmp_path / "a")
    monkeypatch.setattr(build, "CHUNK", 5)
    monkeypatch.setattr(build, "POOL_AFTER", 2)
    monkeypatch.setattr(build, "WORKER_WORDS", 10)
    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    pools, resets, real_reset = _count_pools(monkeypatch), [], build._reset_worker
    monkeypatch.setattr(build, "_reset_worker", lambda: (resets.append(1), real_reset()))
    reset = _prepare(tiny_reviews, tmp_path / "b")
    assert pools == [2] and len(resets) >= 2  # started afresh at least once beyond the first table
    assert reset.encoder.vocab == whole.encoder.vocab
    assert np.array_equal(reset.seqs.ids, whole.seqs.ids) and np.array_equal(reset.seqs.offsets, whole.seqs.offsets)
    assert reset.manifest["id"] == whole.manifest["id"]


def test_released_pages_read_back_the_same(tiny_reviews, tmp_path, monkeypatch):
    """Sequences.release() unmaps the pages read so far (RSS stays flat over an epoch); reading
    after it gives the same reviews, whether called by hand or every RELEASE_EVERY reviews."""
    import revsent.text as text

    ds = _prepare(tiny_reviews, tmp_path / "ds")
    before = [ds.seqs[i].copy() for i in range(len(ds.seqs))]
    ds.seqs.release()
    monkeypatch.setattr(text, "RELEASE_EVERY", 3)
    calls = []
    monkeypatch.setattr(text.Sequences, "release", lambda self, real=text.Sequences.release: (calls.append(1), real(self)))
    view = ds.seqs.take(ds.rows(1))
    assert all(np.array_equal(view[k], before[row]) for k, row in enumerate(ds.rows(1)))
    assert len(calls) == len(view) // 3
    assert view.lengths.dtype == np.int32 and view.lengths.tolist() == [len(before[row]) for row in ds.rows(1)]


def test_test_data_becomes_the_held_out_part(tiny_reviews, write_jsonl, tmp_path):
    val = write_jsonl("val.json", [{"text": "great food", "stars": 5}, {"text": "rude staff", "stars": 1}])
    ds = _prepare(tiny_reviews, tmp_path / "ds", test_data=(val,))
    assert ds.manifest["n_train"] == 96 and ds.manifest["n_heldout"] == 2
    assert ds.rows(1).tolist() == [96, 97] and ds.y[96:].tolist() == [1, 0]
    assert ds.manifest["heldout_counts"]["records_kept"] == 2


def test_bad_record_stops_prepare_and_publishes_nothing(write_jsonl, tmp_path):
    path = write_jsonl("bad.json", [{"text": "good", "stars": 5}, "{not json", {"text": "bad", "stars": 1}])
    with pytest.raises(DataError, match=r"bad\.json:2: malformed JSON"):
        _prepare(path, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the build folder is gone too


def test_skip_bad_counts_per_reason(write_jsonl, tmp_path):
    rows = [{"text": "good", "stars": 5}, "{not json", {"text": "", "stars": 1}, {"text": "bad", "stars": "five"},
            {"text": "bad", "stars": 1}, {"text": "meh", "stars": 3}] * 3
    ds = _prepare(write_jsonl("r.json", rows), tmp_path / "ds", skip_bad=True, labels="polarity", test_split=0.3)
    counts = ds.manifest["counts"]
    assert counts["records_skipped"] == {"malformed_json": 3, "empty_text": 3, "bad_label": 3}
    assert counts["records_filtered"] == {"neutral_3_stars": 3}
    assert ds.manifest["n"] == counts["records_kept"] == 6


def test_existing_dataset_needs_force_and_other_folders_are_never_touched(tiny_reviews, tmp_path):
    out = tmp_path / "ds"
    first = _prepare(tiny_reviews, out)
    with pytest.raises(ArtifactError, match="already there; pass --force"):
        _prepare(tiny_reviews, out)
    again = build.prepare(_cfg(tiny_reviews, vocab_size=50), out, force=True)
    assert again.manifest["tokenizer"]["vocab_size"] == 50 and first.manifest["tokenizer"]["vocab_size"] == 100
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ArtifactError, match="holds no dataset"):
        build.prepare(_cfg(tiny_reviews), mine, force=True)
    assert (mine / "notes.txt").read_text() == "keep"


def test_killed_prepare_leaves_no_dataset(tiny_reviews, tmp_path, monkeypatch):
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "_train_counts", die)  # killed between reading and writing the ids
    with pytest.raises(KeyboardInterrupt):
        _prepare(tiny_reviews, tmp_path / "ds")
    assert not (tmp_path / "ds").exists() and {p.name for p in tmp_path.iterdir()} == {"reviews.json"}


def test_full_disk_is_a_clear_error_and_publishes_nothing(tiny_reviews, tmp_path, monkeypatch):
    import errno

    real_save = np.save

    def full(handle, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build.np, "save", full)
    with pytest.raises(ArtifactError, match="ds: cannot be written \\(No space left on device\\); no dataset was published"):
        _prepare(tiny_reviews, tmp_path / "ds")
    monkeypatch.setattr(build.np, "save", real_save)
    assert not (tmp_path / "ds").exists() and {p.name for p in tmp_path.iterdir()} == {"reviews.json"}


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "ids.bin").write_bytes((d / "ids.bin").read_bytes()[:-2]), "ids.bin: .* bytes, the manifest says"),
    (lambda d: (d / "ids.bin").write_bytes(bytes(reversed((d / "ids.bin").read_bytes()))), "ids.bin: contents differ"),
    (lambda d: (d / "labels.npy").unlink(), "labels.npy: missing from the dataset"),
    (lambda d: (d / "manifest.json").write_text("{oops"), "manifest.json: corrupt JSON"),
    (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing"),
    (lambda d: _edit_manifest(d, format_version=99), "dataset format 99 is not supported"),
    (lambda d: _edit_manifest(d, n=5), "files disagree in size"),
])
def test_damaged_dataset_is_refused_naming_the_file(tiny_reviews, tmp_path, damage, message):
    out = tmp_path / "ds"
    _prepare(tiny_reviews, out)
    damage(out)
    with pytest.raises(ArtifactError, match=message):
        store.Dataset.open(out)


def _edit_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_train_from_a_file_equals_train_from_its_dataset(tiny_reviews, tmp_path):
    ds_path = tmp_path / "ds"
    _prepare(tiny_reviews, ds_path)
    from_file = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3), tmp_path / "a")
    from_dataset = train(_cfg(ds_path, val_fraction=0.25, epochs=3), tmp_path / "b")
    assert [r["val_loss"] for r in from_file.history] == [r["val_loss"] for r in from_dataset.history]
    for key in ("accuracy", "log_loss", "n_train", "n_test", "records_read", "confusion_matrix"):
        assert from_file.metrics[key] == from_dataset.metrics[key]
    assert from_file.metrics["dataset"]["heldout_digest"] == from_dataset.metrics["dataset"]["heldout_digest"]
    assert not (tmp_path / "a" / ".dataset").exists()  # the run's own prepared copy goes when it ends
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["data"]["paths"] == [str(ds_path)] and saved["model"]["vocab_size"] == 100


def test_train_from_a_dataset_uses_its_tokenizer_and_split(tiny_reviews, tmp_path):
    ds_path = tmp_path / "ds"
    build.prepare(_cfg(tiny_reviews, vocab_size=30, test_split=0.25, seed=5), ds_path)
    result = train(_cfg(ds_path, epochs=1), tmp_path / "m")  # the preset says vocab 100, split 0.2 / 36
    assert result.metrics["n_test"] == 24
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["model"]["vocab_size"] == 30 and saved["train"]["test_split"] == 0.25 and saved["train"]["seed"] == 5


def test_given_settings_that_contradict_the_dataset_are_refused(tiny_reviews, tmp_path):
    ds_path = tmp_path / "ds"
    _prepare(tiny_reviews, ds_path)
    with pytest.raises(ConfigError, match="--vocab-size 50 differs from the dataset's 100"):
        store.check_settings(ds_path, _cfg(ds_path, vocab_size=50), {"vocab_size"})
    with pytest.raises(ConfigError, match="--limit: a prepared dataset's records were chosen"):
        store.check_settings(ds_path, _cfg(ds_path, limit=5), {"limit"})
    store.check_settings(ds_path, _cfg(ds_path, vocab_size=100, hidden_size=8), {"vocab_size", "hidden_size"})


def test_a_dataset_must_be_the_only_data(tiny_reviews, tmp_path):
    _prepare(tiny_reviews, tmp_path / "ds")
    with pytest.raises(ConfigError, match="must be the only DATA"):
        train(_cfg(tmp_path / "ds", tiny_reviews), tmp_path / "m")


def test_evaluate_on_datasets(tiny_reviews, write_jsonl, tmp_path):
    ds_path = tmp_path / "ds"
    _prepare(tiny_reviews, ds_path)
    model = tmp_path / "m"
    trained = train(_cfg(ds_path, epochs=3), model).metrics
    own = evaluate(model)  # no DATA: the held-out part of the dataset it was trained on
    assert own["n"] == 20 and own["accuracy"] == trained["accuracy"]
    again = evaluate(model, [str(ds_path)])  # the same dataset given: still only its held-out part
    assert again["n"] == 20 and again["accuracy"] == own["accuracy"] and again["data"].startswith("test split (held out)")
    other = tmp_path / "other"
    build.prepare(_cfg(tiny_reviews, test_split=0.5), other)  # same records, another split: another dataset
    with pytest.raises(DataError, match="another vocabulary"):
        evaluate(model, [str(other)])
    with_baseline = evaluate(model, baseline=True)
    assert with_baseline["baseline"]["n"] == 20 and with_baseline["accuracy"] == own["accuracy"]
    assert with_baseline["baseline"]["accuracy"] >= 0.9 and with_baseline["baseline"]["C"] == 10.0  # no slice: the default C


def test_evaluate_without_data_refuses_changed_files(tiny_reviews, tmp_path):
    model = tmp_path / "m"
    trained = train(_cfg(tiny_reviews, epochs=2), model).metrics
    assert evaluate(model)["accuracy"] == trained["accuracy"]
    lines = open(tiny_reviews).read().splitlines()
    lines[3], lines[50] = lines[50], lines[3]  # two records change places: another held-out split
    open(tiny_reviews, "w").write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="no longer holds the data this model was trained on"):
        evaluate(model)


def test_evaluate_streams_a_file_in_chunks(tiny_reviews, tmp_path, monkeypatch):
    import revsent.evaluate as evaluate_module

    model = tmp_path / "m"
    train(_cfg(tiny_reviews, epochs=3), model)
    whole = evaluate(model, [tiny_reviews])
    monkeypatch.setattr(evaluate_module, "SCORE_CHUNK", 10)
    chunked = evaluate(model, [tiny_reviews])
    assert chunked["n"] == whole["n"] == 96
    assert chunked["confusion_matrix"] == whole["confusion_matrix"]
    assert chunked["log_loss"] == pytest.approx(whole["log_loss"], rel=1e-6)


def test_class_weight_balanced_is_recorded(write_jsonl, tmp_path):
    rows = [{"text": "great tasty food", "stars": 5}] * 30 + [{"text": "awful cold food", "stars": 1}] * 10
    result = train(_cfg(write_jsonl("r.json", rows), class_weight="balanced", epochs=1), tmp_path / "m")
    weights = result.metrics["class_weights"]
    n_pos = round(result.metrics["n_train"] / (2 * weights["positive"]))
    assert weights["negative"] > 1 > weights["positive"]
    assert weights["negative"] * (result.metrics["n_train"] - n_pos) == pytest.approx(weights["positive"] * n_pos)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["train"]["class_weight"] == "balanced"
    with pytest.raises(ConfigError, match="'class_weight' parameter of TrainConfig must be one of balanced"):
        _cfg("x.json", class_weight="inverse")


def test_baseline_above_its_size_limit_is_a_clear_error(tiny_reviews, tmp_path):
    ds = _prepare(tiny_reviews, tmp_path / "ds")
    with pytest.raises(ConfigError, match="up to 10 training reviews; this dataset has 76"):
        store.texts_by_part(ds, limit=10)
    train_texts, held_texts = store.texts_by_part(ds, limit=1000)
    assert len(train_texts) == 76 and len(held_texts) == 20


def test_a_killed_prepares_leftovers_are_removed_by_the_next(tiny_reviews, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ds.building-{dead.stdout.strip()}-abc123"  # what a SIGKILL leaves
    stale.mkdir()
    (stale / "spool.bin").write_bytes(b"\0" * 64)
    _prepare(tiny_reviews, tmp_path / "ds")
    assert not stale.exists() and store.is_dataset(tmp_path / "ds")


def test_prepare_from_a_script_without_a_main_guard(tiny_reviews, tmp_path):
    """Worker processes must not re-run the calling script (as spawned ones would)."""
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(
        "import revsent.data.build as build\n"
        "from revsent.config import Config\n"
        "build.CHUNK, build.POOL_AFTER = 7, 1\n"
        "build.os.cpu_count = lambda: 2\n"
        f"ds = build.prepare(Config.from_preset('seed', paths=({str(tiny_reviews)!r},)), {str(tmp_path / 'ds')!r})\n"
        "print('prepared', ds.manifest['n'])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("prepared 96") == 1
