"""revsent.training.loop and its seams: fit with a hook, the tally, the clock, the keeper, patience."""
import numpy as np
import pytest
import torch

from revsent.config import Config
from revsent.data.parts import Part
from revsent.model import SentimentLSTM
from revsent.progress import Progress
from revsent.text import TextEncoder
from revsent.training.checkpoint import Clock
from revsent.training.distributed import SINGLE
from revsent.training.loop import Tally, fit
from revsent.training.selection import Keeper, out_of_patience
from revsent.training.state import FitState

from ..conftest import NEGATIVE, POSITIVE, TINY


def _parts(cfg):
    texts = (POSITIVE + NEGATIVE) * 4
    y = np.array(([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * 4, dtype=np.int64)
    encoder = TextEncoder.fit_config(texts, cfg.model)
    return Part(encoder.encode(texts), y), Part(encoder.encode(texts[:12]), y[:12])


def test_fit_calls_the_hook_each_epoch_and_returns_the_best_weights():
    cfg = Config.from_preset("seed", **{**TINY, "epochs": 4}, val_fraction=0.2)
    train, val = _parts(cfg)
    torch.manual_seed(0)
    model = SentimentLSTM(cfg.model, 2)
    rows, weights = [], []

    def hook(epoch, row):
        rows.append((epoch, dict(row)))
        weights.append({k: v.clone() for k, v in model.state_dict().items()})

    state = fit(model, cfg, train, val, device=torch.device("cpu"), progress=Progress(False), on_epoch=hook)
    assert [epoch for epoch, _ in rows] == [1, 2, 3, 4] and state.epoch == 4
    assert all({"train_loss", "val_loss", "val_accuracy", "reviews"} <= set(row) for _, row in rows)
    assert rows[0][1]["reviews"] == len(train)
    best = min(range(4), key=lambda i: rows[i][1]["val_loss"])
    assert state.best_epoch == best + 1 and state.best_val_loss == rows[best][1]["val_loss"]
    assert all(torch.equal(v, weights[best][k]) for k, v in model.state_dict().items())


def test_a_hook_can_stop_the_fit():
    """Tuning prunes by raising from the hook: the loop does not swallow it."""
    cfg = Config.from_preset("seed", **TINY, val_fraction=0.2)
    train, val = _parts(cfg)

    def stop(epoch, row):
        raise RuntimeError(f"stopped after {epoch}")

    with pytest.raises(RuntimeError, match="stopped after 1"):
        fit(SentimentLSTM(cfg.model, 2), cfg, train, val, device=torch.device("cpu"), progress=Progress(False),
            on_epoch=stop)


def test_the_tally_resumes_a_checkpoint_s_sums_on_rank_0_only():
    partial = {"loss": 2.0, "correct": 3, "seen": 4, "tokens": 50, "seconds": 10.0}
    tally = Tally.resumed(partial, SINGLE)
    assert (tally.loss, tally.correct, tally.seen, tally.tokens) == (2.0, 3, 4, 50)
    tally.add(1.0, 1, 2, 10)
    assert tally.summed(SINGLE, torch.device("cpu"))["seen"] == 6
    assert tally.summed(SINGLE, torch.device("cpu"))["seconds"] >= 10.0
    from revsent.training.distributed import Ranks

    other = Tally.resumed(partial, Ranks(1, 2))
    assert (other.loss, other.seen) == (0.0, 0)
    assert Tally.resumed({}, SINGLE).seen == 0


def test_the_clock_is_due_only_mid_epoch_after_its_minutes(tmp_path):
    assert not Clock(None, 0.0, SINGLE, torch.device("cpu")).due(mid_epoch=True)  # no checkpoint file
    clock = Clock(tmp_path / "c", 0.0, SINGLE, torch.device("cpu"))
    assert clock.due(mid_epoch=True) and not clock.due(mid_epoch=False)
    later = Clock(tmp_path / "c", 10.0, SINGLE, torch.device("cpu"))
    assert not later.due(mid_epoch=True)
    later.saved_at -= 601
    assert later.due(mid_epoch=True)
    later.saved()
    assert not later.due(mid_epoch=True)


def test_the_keeper_keeps_the_lower_validation_loss_and_counts_patience(monkeypatch):
    import revsent.training.selection as selection

    cfg = Config.from_preset("seed", **TINY)
    model = SentimentLSTM(cfg.model, 2)
    losses = iter([0.5, 0.4, 0.45, 0.6])
    monkeypatch.setattr(selection, "validate", lambda *a: (next(losses), 0.5))
    keeper, state, val = Keeper(model, averaging=False), FitState(), Part(None, np.zeros(3))
    seen = []
    for epoch in range(1, 5):
        with torch.no_grad():
            model.readers[0].out.bias.fill_(epoch)
        state.epoch, row = epoch, {}
        keeper.judge(state, row, val, None, torch.device("cpu"), SINGLE)
        seen.append((row["val_loss"], state.best_epoch, state.bad_epochs, out_of_patience(state, 2)))
    assert seen == [(0.5, 1, 0, False), (0.4, 2, 0, False), (0.45, 2, 1, False), (0.6, 2, 2, True)]
    assert torch.all(keeper.best["readers.0.out.bias"] == 2)
    assert not out_of_patience(state, None)


def test_without_a_validation_slice_every_epoch_is_the_best():
    model = SentimentLSTM(Config.from_preset("seed", **TINY).model, 2)
    keeper, state, row = Keeper(model, averaging=True), FitState(epoch=3), {}
    keeper.judge(state, row, None, None, torch.device("cpu"), SINGLE)
    assert state.best_epoch == 3 and row == {}
