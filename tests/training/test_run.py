import json

import numpy as np
import pytest
from safetensors.torch import load_file

from revsent import artifacts
from revsent.config import Config
from revsent.errors import ArtifactError, ConfigError, DataError
from revsent.training import train

from ..conftest import TINY


def _cfg(path, **extra):
    return Config.from_preset("seed", paths=(path,), **{**TINY, **extra})


def test_train_writes_a_complete_model_directory(tiny_reviews, tmp_path):
    out = tmp_path / "model"
    result = train(_cfg(tiny_reviews), out)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "tokenizer.json", "model.safetensors", "metrics.json", "history.csv",
            "training_curves.png", "confusion_matrix.png", "README.md", "train_hashes.npy"} <= names
    assert "checkpoint.safetensors" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "n_train", "n_test", "epochs_run", "train_seconds", "records_read",
                "records_kept", "records_skipped"):
        assert key in metrics
    assert metrics["n_train"] + metrics["n_test"] == 96 and metrics["n_test"] == 20
    assert metrics["records_read"] == 96 and metrics["records_kept"] == 96 and metrics["records_skipped"] == {}
    assert metrics["epochs_run"] == 8
    assert result.metrics["accuracy"] == metrics["accuracy"]
    assert metrics["accuracy"] >= 0.9  # the tiny vocabulary is easily separable
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,train_accuracy") and len(history) == 9
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["negative", "positive"] and config["model"]["hidden_size"] == 16
    assert "torch" in config["versions"]


def test_same_seed_same_metrics(tiny_reviews, tmp_path):
    a = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=2), tmp_path / "a").history
    b = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=2), tmp_path / "b").history
    assert len(a) == 2 and [row["val_loss"] for row in a] == [row["val_loss"] for row in b]
    other = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=2, seed=37), tmp_path / "c").history
    assert [row["val_loss"] for row in other] != [row["val_loss"] for row in a]


def test_refuses_to_overwrite_without_force(tiny_reviews, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not empty; pass --force"):
        train(_cfg(tiny_reviews), out)
    with pytest.raises(ArtifactError, match="did not write"):
        train(_cfg(tiny_reviews), out, force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_bad_record_stops_before_anything_is_written(write_jsonl, tmp_path):
    path = write_jsonl("bad.json", [{"text": "good", "stars": 5}, "{not json", {"text": "bad", "stars": 1}])
    out = tmp_path / "model"
    with pytest.raises(DataError, match=r"bad\.json:2: malformed JSON"):
        train(_cfg(path), out)
    assert not out.exists()


def test_early_stopping_keeps_best_epoch(write_jsonl, tmp_path):
    """Noisy labels: the model overfits, validation loss rises, the best epoch's weights are kept."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    rows = [{"text": " ".join(rng.choice(words, 6)), "stars": float(rng.choice([1, 5]))} for _ in range(200)]
    path = write_jsonl("noisy.json", rows)
    result = train(_cfg(path, epochs=30, patience=2, lr=0.05, hidden_size=32, val_fraction=0.25), tmp_path / "m")
    losses = [row["val_loss"] for row in result.history]
    assert result.metrics["epochs_run"] < 30
    best = int(np.argmin(losses)) + 1
    assert result.metrics["best_epoch"] == best and best < len(losses)
    assert result.metrics["validation"]["loss"] == pytest.approx(min(losses), rel=1e-6)
    assert result.metrics["n_validation"] == 40 and result.metrics["n_train"] == 120 and result.metrics["n_test"] == 40
    assert losses[-1] > min(losses) * 1.01


def test_test_data_replaces_the_split(tiny_reviews, write_jsonl, tmp_path):
    val = write_jsonl("val.json", [{"text": "great food", "stars": 5}, {"text": "rude staff", "stars": 1}])
    result = train(_cfg(tiny_reviews, test_data=(val,)), tmp_path / "m")
    assert result.metrics["n_test"] == 2 and result.metrics["n_train"] == 96


def test_resume_continues_an_interrupted_run(tiny_reviews, tmp_path, monkeypatch):
    """Kill a run after epoch 2 of 4; --resume finishes it exactly as an uninterrupted run."""
    import revsent.training.loop as loop_module

    full = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4), tmp_path / "full")
    calls = {"n": 0}
    real_save = loop_module.save_checkpoint

    def save_then_die(*args):
        real_save(*args)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4), out)
    assert (out / "checkpoint.safetensors").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    with pytest.raises(ArtifactError, match="not empty"):
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4), out)
    with pytest.raises(ConfigError, match="same data, split and model settings"):
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4, hidden_size=8), out, resume=True)
    with pytest.raises(ConfigError, match="same data, split and model settings"):
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4, seed=1), out, resume=True)
    resumed = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=4), out, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["val_loss"] for r in resumed.history] == pytest.approx([r["val_loss"] for r in full.history], rel=1e-5)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


class _Log:
    """A progress that keeps the lines it is given."""

    def __init__(self):
        self.lines = []

    def log(self, message):
        self.lines.append(message)

    def bar(self, total, desc):
        from revsent.progress import Progress

        return Progress(False).bar(total, desc)


def test_resume_where_no_checkpoint_was_written_starts_afresh(tmp_path, tiny_reviews, monkeypatch):
    """A kill before the first checkpoint: --resume starts the run again in place, saying so, with no error loop."""
    import revsent.training.loop as loop_module

    def die(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_reviews, epochs=2), out)
    assert out.is_dir() and not artifacts.is_finished(out) and not artifacts.has_checkpoint(out)
    with pytest.raises(ArtifactError, match="not a finished model"):
        artifacts.load_model(out)
    monkeypatch.undo()
    log = _Log()
    result = train(_cfg(tiny_reviews, epochs=2), out, resume=True, progress=log)
    assert any("no checkpoint to resume from" in line and "starting the run afresh" in line for line in log.lines)
    assert [r["epoch"] for r in result.history] == [1, 2] and artifacts.is_finished(out)
    fresh = train(_cfg(tiny_reviews, epochs=2), tmp_path / "fresh")
    assert result.metrics["accuracy"] == fresh.metrics["accuracy"]  # the same run, from the start


def test_resume_into_an_empty_place_starts_the_run(tmp_path, tiny_reviews):
    log = _Log()
    train(_cfg(tiny_reviews, epochs=1), tmp_path / "new", resume=True, progress=log)
    assert artifacts.is_finished(tmp_path / "new") and any("afresh" in line for line in log.lines)


def test_resume_of_a_finished_model_is_a_clear_error(tmp_path, tiny_reviews):
    out = tmp_path / "m"
    train(_cfg(tiny_reviews, epochs=1), out)
    before = (out / artifacts.WEIGHTS).read_bytes()
    with pytest.raises(ArtifactError, match="holds a finished model and no checkpoint: there is nothing to resume"):
        train(_cfg(tiny_reviews, epochs=1), out, resume=True)
    assert (out / artifacts.WEIGHTS).read_bytes() == before


def test_a_run_killed_while_saving_leaves_no_finished_model(tmp_path, tiny_reviews, monkeypatch):
    """The weights are written last: a kill while the model directory is written leaves no weights."""
    real_save = artifacts.atomic_save_tensors

    def die_on_the_weights(path, *args, **kwargs):
        if path.name == artifacts.WEIGHTS:
            raise KeyboardInterrupt
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(artifacts, "atomic_save_tensors", die_on_the_weights)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_reviews, epochs=1), out)
    assert (out / artifacts.METRICS).exists() and (out / artifacts.CONFIG).exists()
    assert not artifacts.is_finished(out) and not list(out.glob(".*.tmp"))
    with pytest.raises(ArtifactError, match="not a finished model"):
        artifacts.load_model(out)


def test_the_training_part_is_fingerprinted(tmp_path, tiny_reviews):
    from revsent.data import store

    out = tmp_path / "m"
    result = train(_cfg(tiny_reviews, epochs=1), out)
    hashes = np.load(out / artifacts.TRAIN_HASHES, allow_pickle=False)
    assert result.metrics["train_hashes"] == {"reviews": result.metrics["n_train"], "kept": len(hashes), "bound": None}
    assert hashes.dtype == np.uint64 and np.all(hashes[1:] > hashes[:-1])  # sorted, distinct
    assert 0 < len(hashes) <= result.metrics["n_train"]


def test_a_hash_sample_keeps_the_smallest_and_its_bound():
    from revsent.data import store

    seqs = [np.array([i, i + 1], dtype=np.int32) for i in range(50)] * 2  # every review twice
    hashes = store.review_hashes(seqs)
    assert hashes[0] == hashes[50] and len(np.unique(hashes)) == 50
    every, bound = store.hash_sample(hashes)
    assert bound is None and len(every) == 50
    kept, bound = store.hash_sample(hashes, most=10)
    assert list(kept) == sorted(every)[:10] and bound == int(kept[-1])


def test_corrupt_checkpoint_is_named(tiny_reviews, tmp_path, monkeypatch):
    out = tmp_path / "m"
    train(_cfg(tiny_reviews, epochs=1), out)
    (out / artifacts.CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="checkpoint.safetensors: unusable checkpoint"):
        train(_cfg(tiny_reviews, epochs=1), out, resume=True)


def test_cuda_requested_without_gpu_is_a_clear_error(tiny_reviews, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(_cfg(tiny_reviews, device="cuda"), tmp_path / "m")


def test_baseline_on_the_same_split(tiny_reviews, tmp_path):
    result = train(_cfg(tiny_reviews, baseline=True, epochs=1), tmp_path / "m")
    base = result.metrics["baseline_tfidf_lr"]
    assert base["n"] == result.metrics["n_test"] and base["accuracy"] >= 0.9


def test_force_removes_the_old_model_first(tiny_reviews, tmp_path, monkeypatch):
    """A --force retrain that dies leaves no old weights beside the new vocabulary."""
    import revsent.training.members as members_module

    out = tmp_path / "m"
    train(_cfg(tiny_reviews, epochs=1), out)

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(members_module, "fit", die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_reviews, epochs=1, vocab_size=50), out, force=True)
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()


def test_training_split_with_one_class(write_jsonl, tmp_path):
    path = write_jsonl("r.json", [{"text": "good", "stars": 5}] * 9 + [{"text": "bad", "stars": 1}])
    with pytest.raises(DataError, match="training split of 8 records holds only one class"):
        train(_cfg(path, test_split=0.2, seed=1), tmp_path / "m")


@pytest.mark.parametrize("average", [False, True])
def test_resume_from_a_mid_epoch_checkpoint_continues_exactly(tiny_reviews, tmp_path, monkeypatch, average):
    """Checkpoints every batch (checkpoint_minutes=0); a kill in the middle of epoch 2 loses nothing
    (with --average-weights, the running mean of the epochs' weights is in the checkpoint too)."""
    import revsent.training.loop as loop_module

    full = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, average_weights=average), tmp_path / "full")
    real_save = loop_module.save_checkpoint
    saves = []

    def save_then_die(path, model, optimizer, state, best, mean, rng, *where):
        real_save(path, model, optimizer, state, best, mean, rng, *where)
        saves.append((state.epoch, state.step))
        if state.epoch == 1 and state.step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, checkpoint_minutes=0.0, average_weights=average), out)
    assert saves[-1] == (1, 4) and (0, 1) in saves and (1, 0) in saves  # mid-epoch and end-of-epoch saves
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    flag = "--average-weights" if average else "--no-average-weights"
    with pytest.raises(ConfigError, match=f"started with {flag}; resume it with {flag}"):  # the mean covers all epochs or none
        train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, average_weights=not average), out, resume=True)
    resumed = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, checkpoint_minutes=0.0, average_weights=average),
                    out, resume=True)
    assert [r["val_loss"] for r in resumed.history] == pytest.approx([r["val_loss"] for r in full.history], rel=1e-5)
    if average:
        means = [r["val_loss_mean"] for r in full.history[1:]]
        assert len(means) == 2 and [r["val_loss_mean"] for r in resumed.history[1:]] == pytest.approx(means, rel=1e-5)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in full.history], rel=1e-5)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_long_batches_go_in_parts_with_the_same_update(tiny_reviews, tmp_path, monkeypatch):
    """A batch over the TRAIN_TOKENS budget is run in parts and its gradients summed: with no
    dropout the weights match those of whole batches; with class weights the loss stays the batch's.
    In float32: bf16 rounds a product of another shape differently."""
    import revsent.training.loop as loop_module

    whole = train(_cfg(tiny_reviews, epochs=2, class_weight="balanced", precision="fp32"), tmp_path / "whole")
    monkeypatch.setattr(loop_module, "TRAIN_TOKENS", {"cpu": 8})  # every batch of 8 reviews goes in parts
    parts = train(_cfg(tiny_reviews, epochs=2, class_weight="balanced", precision="fp32"), tmp_path / "parts")
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "parts" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert np.allclose(a[key].numpy(), b[key].numpy(), atol=1e-5), key
    for row_a, row_b in zip(whole.history, parts.history):
        assert row_a["train_loss"] == pytest.approx(row_b["train_loss"], rel=1e-5)
        assert row_a["train_accuracy"] == row_b["train_accuracy"]


def test_token_parts_bound_the_padded_size():
    from revsent.batching import token_parts

    lengths = np.array([5, 50, 3, 40, 1, 0, 200])
    index = np.array([0, 1, 2, 3, 4, 5])
    assert token_parts(index, lengths, 1000) == [index]  # fits: untouched, same order
    parts = token_parts(index, lengths, 100)
    assert sorted(np.concatenate(parts).tolist()) == index.tolist()
    assert all(len(p) * lengths[p].max() <= 100 for p in parts)
    assert [p.tolist() for p in token_parts(np.array([6, 0]), lengths, 100)] == [[6], [0]]  # too long: alone


def _rss_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_gives_back_the_heaps_free_pages():
    from revsent.device import trim_heap

    del_me = np.ones(1 << 20)  # a freed 8 MB mapping raises glibc's mmap threshold: 1 MB blocks then come from the heap
    del del_me
    blocks = [np.ones(1 << 17) for _ in range(300)]  # 300 MB of heap
    top = blocks[-1]  # the last block pins the heap's top, so free() alone returns nothing
    del blocks
    before = _rss_mb()
    assert trim_heap() is True
    assert _rss_mb() < before - 200
    del top


def test_training_and_prediction_trim_the_heap_as_they_go(tiny_reviews, tmp_path, monkeypatch):
    import revsent.device as device

    calls = []
    monkeypatch.setattr(device, "TRIM_SECONDS", 0.0)  # every batch
    monkeypatch.setattr(device, "trim_heap", lambda: calls.append(1) or True)
    result = train(_cfg(tiny_reviews, epochs=1), tmp_path / "model")
    steps = -(-result.metrics["n_train"] // TINY["batch_size"])
    assert len(calls) == steps + 1  # each training step, and the one prediction batch of the 20 test reviews


@pytest.mark.parametrize("given, kept", [(None, "16"), ("64", "64")])
def test_onednn_keeps_few_compiled_shapes_unless_the_user_says(given, kept):
    """Length-sorted batches bring a new shape almost every batch; oneDNN's cache of one compiled
    LSTM per shape (1,024 by default) grew the RSS with the number of batches. revsent caps it
    before the first LSTM runs, and keeps a value the user set."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if given is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = given
    code = "import os, revsent.model; print(os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == kept


@pytest.mark.parametrize("flags, native", [("fpu sse avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", True),
                                           ("fpu sse avx2 avx512f avx512bw", False)])
def test_auto_precision_is_bf16_where_the_cpu_computes_it(tmp_path, flags, native):
    import torch

    from revsent.device import cpu_has_bf16, trains_in_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\n")
    assert cpu_has_bf16(str(cpuinfo)) is native
    assert cpu_has_bf16(str(tmp_path / "none")) is False  # no /proc/cpuinfo (macOS, Windows): float32
    cpu = torch.device("cpu")
    assert (trains_in_bf16("fp32", cpu), trains_in_bf16("bf16", cpu)) == (False, True)
    assert trains_in_bf16("auto", cpu) is cpu_has_bf16()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_runs_the_lstm_in_the_precision_asked(tiny_reviews, tmp_path, monkeypatch, precision):
    """The LSTM's outputs while training are bf16 under bf16 autocast; the weights stay float32 and
    prediction runs in float32 whatever was trained."""
    import torch

    from revsent import model as model_module

    seen, run = [], model_module.LSTMBranch._run

    def spy(self, lstm, x):
        out = run(self, lstm, x)
        seen.append((self.training, out.dtype))
        return out

    monkeypatch.setattr(model_module.LSTMBranch, "_run", spy)
    result = train(_cfg(tiny_reviews, epochs=1, precision=precision), tmp_path / "model")
    trained = {dtype for training, dtype in seen if training}
    assert trained == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}
    assert result.metrics["precision"] == precision
    weights = load_file(tmp_path / "model" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_member_masks_are_disjoint_slices_of_equal_size():
    from revsent.data.splits import member_masks, validation_mask

    masks = member_masks(1000, 0.1, 36, 4)
    assert len(masks) == 4 and np.array_equal(masks[0], validation_mask(1000, 0.1, 36))
    assert all(int(m.sum()) == 100 for m in masks)
    assert int(np.sum(masks, axis=0).max()) == 1  # no row validates two members
    assert not np.array_equal(member_masks(1000, 0.1, 37, 2)[1], masks[1])  # the seed draws them
    assert all(not m.any() for m in member_masks(50, 0.0, 36, 3))  # no slice: every member trains on every row
    with pytest.raises(DataError, match="no 3 separate validation slices"):
        member_masks(10, 0.4, 36, 3)
    with pytest.raises(ConfigError, match="--members 4 needs 4 separate validation slices"):
        Config.from_preset("default", members=4, val_fraction=0.3)


def test_a_bag_trains_each_member_on_its_own_slice(tiny_reviews, tmp_path, monkeypatch):
    """Members train apart (their own slice, their own seed); the bag's logits are their mean."""
    import torch

    import revsent.training.members as members_module
    from revsent.artifacts import load_model
    from revsent.data.splits import member_masks
    from revsent.model import SentimentLSTM
    from revsent.ngrams import NgramFeatures

    single = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, patience=1, ngram_buckets=200), tmp_path / "one")
    trained, real_fit = [], members_module.fit
    monkeypatch.setattr(members_module, "fit", lambda model, *a, **k: (trained.append(model), real_fit(model, *a, **k))[1])
    result = train(_cfg(tiny_reviews, val_fraction=0.25, epochs=3, patience=1, members=2, ngram_buckets=200),
                   tmp_path / "bag")
    m = result.metrics
    assert m["members"] == 2 and len(m["validation"]["members"]) == 2
    # member 0 is the single model of the same seed (same slice, same epochs), but for the idf of its
    # n-gram branch, which is the whole training part's in a bag
    assert m["validation"]["members"][0]["loss"] == pytest.approx(single.metrics["validation"]["loss"], rel=1e-2)
    assert m["epochs_run"][0] == single.metrics["epochs_run"] and m["best_epoch"][0] == single.metrics["best_epoch"]
    assert m["epochs_run"][1] <= m["best_epoch"][0]  # member 0's early stopping bounds the others
    assert m["validation"]["loss"] == pytest.approx(np.mean([v["loss"] for v in m["validation"]["members"]]))
    assert [row["member"] for row in result.history] == [1] * m["epochs_run"][0] + [2] * m["epochs_run"][1]
    assert not (tmp_path / "bag" / artifacts.MEMBERS).exists() and not (tmp_path / "bag" / artifacts.CHECKPOINT).exists()
    cfg, classes, encoder, model = load_model(tmp_path / "bag")
    assert isinstance(model, SentimentLSTM) and len(model.readers) == 2
    # the two members differ: they learned from other rows at other seeds
    a, b = (reader.embedding.weight.detach() for reader in model.readers)
    assert not torch.allclose(a, b)
    # the bag's logits are the mean of its readers'
    from revsent.batching import make_batch

    seqs = encoder.encode(["great food and friendly staff", "rude and slow"])
    batch = make_batch(seqs, np.arange(2), model.table(), NgramFeatures.of(cfg.model))
    assert len(trained) == 2 and all(np.array_equal(m.table().idf, model.table().idf)
                                     and np.array_equal(m.table().keys, model.table().keys) for m in trained)  # one table
    model.eval()
    with torch.no_grad():
        mean = (trained[0].eval()(batch) + trained[1].eval()(batch)) / 2
        assert torch.allclose(model(batch), mean, atol=1e-5)
        assert not torch.allclose(trained[0](batch), trained[1](batch))
    masks = member_masks(76, 0.25, 36, 2)
    assert m["validation"]["members"][1]["n"] == int(masks[1].sum())


def test_a_killed_bag_resumes_from_its_finished_members(tiny_reviews, tmp_path, monkeypatch):
    import revsent.training.members as members_module

    cfg = _cfg(tiny_reviews, val_fraction=0.25, epochs=2, members=2)
    full = train(cfg, tmp_path / "full")
    real_fit = members_module.fit
    calls = {"n": 0}

    def fit_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # member 1 starts: member 0 is kept, the run dies
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(members_module, "fit", fit_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out)
    assert (out / artifacts.MEMBERS / "member0.safetensors").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(members_module, "fit", real_fit)
    calls["n"] = 0
    counted = lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), real_fit(*a, **k))[1]  # noqa: E731
    monkeypatch.setattr(members_module, "fit", counted)
    resumed = train(cfg, out, resume=True)
    assert calls["n"] == 1  # only member 1 trained again
    assert [r["val_loss"] for r in resumed.history] == pytest.approx([r["val_loss"] for r in full.history], rel=1e-5)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def _drifting_reviews(write_jsonl):
    """One telling word among five neutral ones, a fifth of the labels flipped: at a high learning
    rate the epochs' weights overshoot around a good model, as on real data."""
    rng = np.random.default_rng(0)
    good, bad, neutral = [f"g{i}" for i in range(10)], [f"b{i}" for i in range(10)], [f"n{i}" for i in range(30)]
    rows = []
    for _ in range(300):
        y = int(rng.integers(2))
        ws = list(rng.choice(neutral, 5)) + list(rng.choice(good if y else bad, 1))
        y = 1 - y if rng.random() < 0.2 else y
        rng.shuffle(ws)
        rows.append({"text": " ".join(ws), "stars": 5.0 if y else 1.0})
    return write_jsonl("drifting.json", rows)




@pytest.mark.parametrize("lr, averaged", [(0.05, True), (0.02, False)])
def test_average_weights_keeps_whichever_validates_better(write_jsonl, tmp_path, monkeypatch, lr, averaged):
    """Each epoch's weights and the mean of epochs 1..e are validated; the lowest loss is kept, and
    the saved weights are exactly that epoch's, or that mean."""
    import torch

    import revsent.training.members as members_module
    from revsent.artifacts import load_model

    snapshots, real_fit = [], members_module.fit

    def fit(model, *args, on_epoch=None, **kwargs):
        def capture(epoch, row):
            snapshots.append({k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad})
        return real_fit(model, *args, on_epoch=capture, **kwargs)

    monkeypatch.setattr(members_module, "fit", fit)
    cfg = _cfg(_drifting_reviews(write_jsonl), epochs=6, lr=lr, val_fraction=0.25, average_weights=True)
    result = train(cfg, tmp_path / "m")
    history, m = result.history, result.metrics
    assert "val_loss_mean" not in history[0] and all("val_loss_mean" in row for row in history[1:])
    candidates = [(row["val_loss"], False, row["epoch"]) for row in history]
    candidates += [(row["val_loss_mean"], True, row["epoch"]) for row in history[1:]]
    loss, was_averaged, epoch = min(candidates)
    assert (m["averaged"], m["best_epoch"]) == (averaged, epoch) and was_averaged == averaged
    assert m["validation"]["loss"] == pytest.approx(loss, rel=1e-6)
    expected = snapshots[epoch - 1]
    if averaged:
        expected = {k: torch.stack([s[k] for s in snapshots[:epoch]]).mean(0) for k in expected}
    _, _, _, saved = load_model(tmp_path / "m", torch.device("cpu"))
    weights = dict(saved.named_parameters())
    assert all(torch.allclose(weights[k], v, atol=1e-6) for k, v in expected.items())


def test_average_weights_needs_a_validation_slice():
    with pytest.raises(ConfigError, match="--average-weights .* needs a validation slice"):
        Config.from_preset("seed", average_weights=True)
    assert Config.from_preset("default").train.average_weights




def test_adversarial_training_trains_on_moved_inputs_too(tiny_reviews, tmp_path, monkeypatch):
    """Every training batch also goes through with each reader's embedded input moved by
    ``uphill`` (a second pass); validation and prediction never do."""
    import revsent.training.regularisers as regularisers_module

    steps = []
    real = regularisers_module.uphill

    def counted(x, size):
        step = real(x, size)
        steps.append((x.detach().flatten(1).norm(dim=1), step.flatten(1).norm(dim=1), size))
        return step

    monkeypatch.setattr(regularisers_module, "uphill", counted)
    result = train(_cfg(tiny_reviews, adversarial=0.05, val_fraction=0.25), tmp_path / "adv")
    batches = sum(-(-row["reviews"] // 8) for row in result.history)  # batch size 8
    assert len(steps) == batches
    for x_norm, step_norm, size in steps:
        assert size == 0.05 and torch_allclose(step_norm, 0.05 * x_norm)
    plain = train(_cfg(tiny_reviews, val_fraction=0.25), tmp_path / "plain")
    assert [r["val_loss"] for r in plain.history] != [r["val_loss"] for r in result.history]
    assert result.metrics["accuracy"] >= 0.9
    with pytest.raises(ConfigError, match="adversarial"):
        _cfg(tiny_reviews, adversarial=-0.1)


def torch_allclose(a, b):
    import torch

    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))


def test_a_model_of_1000_reviews_is_the_size_of_what_it_learnt(tmp_path):
    """The default preset on 1,000 IMDB reviews, every word kept: the embedding holds the words
    its reviews had (in int8 rows), the n-gram branch the features they had; the whole directory's
    weights and JSON within 5 MB."""
    from safetensors import safe_open

    from revsent.artifacts import load_encoder, load_model
    from revsent.ngrams import NgramFeatures, document_frequencies

    cfg = Config.from_preset("default", paths=("imdb",), limit=1250, epochs=1, threads=2)
    result = train(cfg, tmp_path / "m")
    assert result.metrics["n_train"] + result.metrics["n_validation"] == 1000
    weights = tmp_path / "m" / "model.safetensors"
    size = sum(f.stat().st_size for f in (tmp_path / "m").iterdir() if f.suffix in (".safetensors", ".json"))
    assert size <= 5_000_000, size
    encoder = load_encoder(tmp_path / "m", load_model(tmp_path / "m")[0])
    with safe_open(weights, "pt") as f:
        embedding = f.get_slice("readers.0.embedding.weight")
        assert embedding.get_shape()[0] == encoder.rows < 40_000 and embedding.get_dtype() == "I8"  # of 100,000
        rows = f.get_slice("wide_keys").get_shape()[0]
    from revsent.data.parts import open_run_data

    data = open_run_data(cfg, tmp_path / "ds", reuse=False, refuse_other=False, progress=None)
    df = document_frequencies(data.fit.seqs, NgramFeatures.of(cfg.model))
    assert rows == int((df >= 2).sum()) < 100_000  # of 2,100,000 slots


def test_the_fingerprint_sample_in_chunks_is_the_whole_ones():
    from revsent.data import store

    seqs = [np.array([i % 70, i], dtype=np.int32) for i in range(300)] * 2
    for most in (10, 1000):
        whole = store.hash_sample(store.review_hashes(seqs), most)
        kept, bound = store.fingerprint_sample(seqs, most, chunk=37)
        assert list(kept) == list(whole[0]) and bound == whole[1]
