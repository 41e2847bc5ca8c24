"""torchrun + DistributedDataParallel: shards of batches, the same update as one process, resume, failures."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from revsent import Config, ConfigError
from revsent.batching import train_order
from revsent.cli import app
from revsent.training.distributed import Ranks, shard
from revsent.training import train

# The seed model without dropout, so that runs can be compared weight for weight.
# float32: bf16 rounds the products of a half batch differently from those of a whole one
SETTINGS = ["--preset", "seed", "--dropout", "0", "--recurrent-dropout", "0", "--epochs", "2", "--precision", "fp32", "--quiet"]
TOLERANCE = 1e-5  # gradients all-reduced in another order than one process sums them: rounding apart


def test_every_review_once_per_epoch_and_the_same_steps_on_every_rank():
    lengths = np.random.default_rng(0).integers(1, 300, size=1001)
    for world in (1, 2, 3, 8):
        batches = train_order(lengths, 16 * world, np.random.default_rng(36))
        used, steps = [], []
        for rank in range(world):
            shares = [shard(index, Ranks(rank, world)) for index in batches]
            steps.append(len(shares))
            used += [i for part, padding in shares if not padding for i in part]
            assert all(len(part) <= 16 for part, _ in shares)
        assert len(set(steps)) == 1
        assert sorted(used) == list(range(len(lengths)))  # each review exactly once, padding excluded


def test_a_rank_without_a_review_gets_padding():
    part, padding = shard(np.array([7]), Ranks(1, 2))
    assert padding and list(part) == [7]
    part, padding = shard(np.array([7, 9, 11]), Ranks(1, 2))
    assert not padding and list(part) == [9]


def test_torchrun_needs_a_prepared_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="under torchrun, DATA must be a dataset made by `revsent prepare`"):
        train(Config.from_preset("seed", paths=("imdb",), limit=100), tmp_path / "m")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """602 real IMDB reviews prepared once: 481 train (an odd number: the epoch's last global batch
    of 32 holds one review, so rank 1 gets padding there), 121 test."""
    path = tmp_path_factory.mktemp("ddp") / "ds"
    result = CliRunner().invoke(app, ["prepare", "imdb", "--limit", "602", "--preset", "seed", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def torchrun(*args, processes=2, wait=True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "revsent", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_processes(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "two"
    run = torchrun("train", dataset, "--out", out, "--batch-size", "16", *SETTINGS)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run


def _workers(proc) -> list[int]:
    """The processes torchrun started (each in a session of its own)."""
    listed = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    return [int(pid) for pid in listed.stdout.split()]


def _weights(path):
    return load_file(path / "model.safetensors")


def _apart(a: dict, b: dict) -> dict[str, float]:
    """Each tensor's largest difference beyond one step of its stored precision (float16 weights
    round a difference of 1e-7 to a whole step of theirs: 3e-5 at 0.05; an int8 embedding row to a
    step of its scale); the calibration's scale, fitted on logits that far apart, beyond its
    solver's tolerance (1e-4 of log T)."""
    def gap(name, x, y):
        step = np.spacing(np.maximum(np.abs(x), np.abs(y))) if x.dtype == np.float16 else 0
        if x.dtype == np.int8:
            sx, sy = a[name + ".row_scale"][:, None], b[name + ".row_scale"][:, None]
            x, y, step = x * sx, y * sy, np.maximum(sx, sy) * (1 + 1e-6)
        if name == "mix":
            step = 1e-4 * np.abs(x)
        return float(np.maximum(np.abs(x.astype(np.float64) - y) - step, 0).max())
    return {k: gap(k, a[k], b[k]) for k in a if not k.endswith(".row_scale")}


def test_two_processes_match_one_with_the_same_global_batch(dataset, two_processes, tmp_path):
    out, run = two_processes
    assert "test metrics" in run.stdout and run.stdout.count("model written to") == 1  # rank 0 alone reports
    one = tmp_path / "one"
    result = CliRunner().invoke(app, ["train", str(dataset), "--out", str(one), "--batch-size", "32", "--threads", "1", *SETTINGS])
    assert result.exit_code == 0, result.output
    a, b = _weights(one), _weights(out)
    differences = _apart(a, b)
    print(f"largest difference after 2 epochs (32 steps): {max(differences.values()):.2e}")
    assert max(differences.values()) < TOLERANCE, differences
    for path in (one, out):  # every training review once per epoch
        rows = (path / "history.csv").read_text().splitlines()[1:]
        assert [int(r.split(",")[3]) for r in rows] == [481, 481]
    assert json.loads((out / "metrics.json").read_text())["processes"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one.iterdir())


def _two_against_one(dataset, tmp_path, settings):
    """The same run under torchrun with 2 processes (batch 16 each) and in one (batch 32): their
    model directories, once their weights are checked to be the same."""
    two = tmp_path / "two"
    run = torchrun("train", dataset, "--out", two, "--batch-size", "16", *settings)
    assert run.returncode == 0, run.stderr[-3000:]
    one = tmp_path / "one"
    result = CliRunner().invoke(app, ["train", str(dataset), "--out", str(one), "--batch-size", "32", "--threads", "1", *settings])
    assert result.exit_code == 0, result.output
    a, b = _weights(one), _weights(two)
    assert max(_apart(a, b).values()) < TOLERANCE
    return one, two


def test_two_processes_average_the_weights_as_one(dataset, tmp_path):
    """--average-weights under torchrun: every rank validates the mean the same way (rank 0's
    figures), keeps the same weights, and they are the one-process run's."""
    one, two = _two_against_one(dataset, tmp_path, [*SETTINGS, "--val-fraction", "0.25", "--average-weights"])
    rows = {path: (path / "history.csv").read_text().splitlines() for path in (one, two)}
    assert "val_loss_mean" in rows[one][0] and rows[one][0] == rows[two][0]
    m1, m2 = (json.loads((path / "metrics.json").read_text()) for path in (one, two))
    assert (m1["best_epoch"], m1["averaged"]) == (m2["best_epoch"], m2["averaged"])
    assert m2["validation"]["loss"] == pytest.approx(m1["validation"]["loss"], rel=1e-4)


def test_two_processes_train_adversarially_as_one(dataset, two_processes, tmp_path):
    """--adversarial under torchrun: each rank moves its own reviews' inputs (two backward passes
    a step, the gradients all-reduced once, after the second), as one process does."""
    _, two = _two_against_one(dataset, tmp_path, [*SETTINGS, "--adversarial", "0.05"])
    b, plain = _weights(two), _weights(two_processes[0])  # the same run without --adversarial
    assert max(float(np.abs(b[k].astype(np.float64) - plain[k]).max()) for k in b) > 100 * TOLERANCE


def _checkpoint_step(path):
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as handle:
            return json.loads(handle.metadata()["state"])["step"]
    except (OSError, KeyError, ValueError, Exception):
        return -1


def test_a_killed_torchrun_run_resumes(dataset, two_processes, tmp_path):
    out = tmp_path / "killed"
    args = ["train", dataset, "--out", out, "--batch-size", "16", "--checkpoint-minutes", "0", *SETTINGS]
    proc = torchrun(*args, wait=False)
    checkpoint = out / "checkpoint.safetensors"
    deadline = time.time() + 120
    while _checkpoint_step(checkpoint) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in _workers(proc) + [proc.pid]:  # torchrun and both ranks, in the middle of an epoch
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert checkpoint.exists() and not (out / "model.safetensors").exists()
    resumed = torchrun(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(two_processes[0]), _weights(out)
    assert max(_apart(a, b).values()) < TOLERANCE  # as if never killed
    assert not checkpoint.exists()


def test_resuming_mid_epoch_with_another_number_of_processes_is_refused(tiny_reviews, tmp_path, monkeypatch):
    import torch

    import revsent.training.checkpoint as checkpoint_module
    import revsent.training.loop as loop_module
    from revsent.model import SentimentLSTM

    real_save = loop_module.save_checkpoint

    def save_then_die(path, model, optimizer, state, *rest):
        real_save(path, model, optimizer, state, *rest)
        if state.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    cfg = Config.from_preset("seed", paths=(tiny_reviews,), vocab_size=100, embedding_dim=8, hidden_size=8,
                             batch_size=8, checkpoint_minutes=0.0, threads=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "m")
    model = SentimentLSTM(cfg.model, 2)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    with pytest.raises(ConfigError, match=r"written by 1 process\(es\) in the middle of epoch 1; resume it with 1"):
        checkpoint_module.load_checkpoint(tmp_path / "m" / "checkpoint.safetensors", model, optimizer, Ranks(0, 2))
    state, *_ = checkpoint_module.load_checkpoint(tmp_path / "m" / "checkpoint.safetensors", model, optimizer, Ranks(0, 1))
    assert state.step == 2


def test_a_rank_that_dies_stops_the_run(dataset, tmp_path):
    proc = torchrun("train", dataset, "--out", tmp_path / "dies", "--batch-size", "4", "--epochs", "20",
                    "--preset", "seed", "--quiet", wait=False)
    deadline = time.time() + 120
    workers = []
    while len(workers) < 2 and time.time() < deadline:
        workers = _workers(proc)
        time.sleep(0.2)
    time.sleep(3)  # training under way
    os.kill(max(workers), signal.SIGKILL)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in _workers(proc) + [proc.pid]:
            os.kill(pid, signal.SIGKILL)
        pytest.fail("the other rank hung after one died")
    assert proc.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr or "exitcode" in stderr, stderr[-2000:]
    assert not (tmp_path / "dies" / "model.safetensors").exists()
