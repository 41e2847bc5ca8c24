"""ULMFiT's fine-tuning schedule (training/schedule.py): the slanted triangular rate and gradual unfreezing."""
import numpy as np
import pytest
import torch

from revsent.config import Config
from revsent.errors import ConfigError
from revsent.model import SentimentLSTM
from revsent.progress import Progress
from revsent.training.loop import adam, fit, lr_factors
from revsent.training.schedule import RATIO, Schedule, layer_groups, slanted_triangular

from ..conftest import TINY
from .test_loop import _parts


def test_the_slanted_triangular_rate_rises_over_a_tenth_of_the_run_then_falls_to_a_32nd():
    done = np.linspace(0, 1, 1001)
    rates = np.array([slanted_triangular(d) for d in done])
    assert rates[0] == pytest.approx(1 / RATIO) and rates[-1] == pytest.approx(1 / RATIO)
    assert rates.max() == pytest.approx(1.0) and done[rates.argmax()] == pytest.approx(0.1)
    peak = rates.argmax()
    assert np.all(np.diff(rates[: peak + 1]) > 0) and np.all(np.diff(rates[peak:]) < 0)


def test_layer_groups_thaw_from_the_output_down_to_the_embedding():
    cfg = Config.from_preset("quick", vocab_size=50, embedding_dim=8, hidden_size=8, layers=2, dense=(4,),
                             ngram_buckets=0)
    model = SentimentLSTM(cfg.model, 2, 50)
    names = {id(p): name.split(".")[2:4] for name, p in model.named_parameters()}  # readers.0.<part>.<index>
    label = lambda p: ".".join(names[id(p)]) if "layers" in names[id(p)][0] else names[id(p)][0]  # noqa: E731
    groups = [{label(p) for p in group} for group in layer_groups(model)]
    assert groups == [{"dense", "out"}, {"forward_layers.1", "backward_layers.1"},
                      {"forward_layers.0", "backward_layers.0"}, {"embedding"}]
    trained = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(g) for g in layer_groups(model)) == len(trained)  # every trained parameter, once


def test_the_rates_follow_the_schedule_in_every_parameter_group():
    cfg = Config.from_preset("quick", vocab_size=50, embedding_dim=8, hidden_size=8, ngram_buckets=0, epochs=2,
                             lr=0.01, schedule="stlr", encoder_lr=0.5)
    model = SentimentLSTM(cfg.model, 2, 50)
    optimizer, schedule = adam(model, cfg.train), Schedule.of(model, cfg.train)
    rates = []
    for epoch in range(2):
        for step in range(10):
            schedule.set_rates(optimizer, lr_factors(cfg.train), epoch, step, 10)
            rates.append([group["lr"] for group in optimizer.param_groups])
    rates = np.array(rates)
    assert rates[:, 0] == pytest.approx(0.5 * rates[:, 1])  # the encoder's share kept
    assert rates[0, 1] == pytest.approx(0.01 / RATIO) and rates[2, 1] == pytest.approx(0.01)  # step 2 of 20: the peak
    assert rates[-1, 1] < rates[10, 1] < rates[2, 1]
    constant = Schedule.of(model, Config.from_preset("quick", lr=0.01).train)
    assert constant.rate(1, 5, 10) == 1.0


def test_gradual_unfreezing_trains_the_output_alone_first_then_one_group_more_each_epoch():
    cfg = Config.from_preset("seed", **{**TINY, "epochs": 3}, bidirectional=True, pooling="max_mean",
                             gradual_unfreezing=True, schedule="stlr")
    train, _ = _parts(cfg)
    torch.manual_seed(0)
    model = SentimentLSTM(cfg.model, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def hook(epoch, row):
        now = model.state_dict()
        seen.append({part: any(not torch.equal(now[k], start[k]) for k in now if k.startswith(f"readers.0.{part}."))
                     for part in ("out", "forward_layers", "backward_layers", "embedding")})

    fit(model, cfg, train, None, device=torch.device("cpu"), progress=Progress(False), on_epoch=hook)
    assert seen == [
        {"out": True, "forward_layers": False, "backward_layers": False, "embedding": False},
        {"out": True, "forward_layers": True, "backward_layers": True, "embedding": False},
        {"out": True, "forward_layers": True, "backward_layers": True, "embedding": True},
    ]


def test_early_stopping_waits_until_every_layer_group_has_trained(monkeypatch):
    import revsent.training.loop as loop

    cfg = Config.from_preset("seed", **{**TINY, "epochs": 5}, bidirectional=True, gradual_unfreezing=True,
                             patience=1, val_fraction=0.2)
    train, val = _parts(cfg)
    monkeypatch.setattr(loop, "out_of_patience", lambda state, patience: state.epoch >= 1)  # every epoch "worse"
    state = fit(SentimentLSTM(cfg.model, 2), cfg, train, val, device=torch.device("cpu"), progress=Progress(False))
    assert state.epoch == 3  # head; + the LSTMs; + the embedding: then patience applies


def test_an_unknown_schedule_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="constant, stlr"):
        Config.from_preset("default", schedule="cosine")
