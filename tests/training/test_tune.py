"""revsent tune: Optuna search on the validation slice, the study continued, the best model trained once."""
import csv
import json

import pytest

from revsent.artifacts import load_model
from revsent.config import Config
from revsent.errors import ArtifactError, ConfigError
from revsent.training.tune import tune

# 400 real IMDB reviews, a small model: a trial takes seconds.
SMALL = dict(paths=("imdb",), limit=400, vocab_size=2000, max_len=100, epochs=2, val_fraction=0.2, threads=1,
             ngram_buckets=20000)


def _cfg(**extra):
    return Config.from_preset("quick", **{**SMALL, **extra})


@pytest.mark.slow
def test_tune_searches_continues_and_trains_the_best(tmp_path):
    out = tmp_path / "tune"
    first = tune(_cfg(), out, trials=3)
    assert first.n_trials == 3
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    complete = [r for r in rows if r["state"] == "complete"]
    assert complete and min(float(r["val_loss"]) for r in complete) == pytest.approx(first.best_val_loss)
    assert {"lr", "hidden_size", "dropout", "word_dropout", "ngram_c", "embedding_init", "adversarial"} <= set(rows[0])
    assert (out / "history.png").stat().st_size > 0

    # the best settings are the final model's; the test part (20% of 400) was scored once, by it
    saved = json.loads((out / "model" / "config.json").read_text())
    for name, value in first.best_params.items():
        section = next(s for s in ("model", "train") if name in saved[s])
        assert saved[section][name] == value
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["n_test"] == 80 and metrics["n_validation"] == 64 and metrics["n_train"] == 256
    assert metrics == first.metrics | {"total_seconds": metrics["total_seconds"]}
    cfg, classes, _, _ = load_model(out / "model")
    assert classes == ["negative", "positive"] and cfg.train.lr == first.best_params["lr"]

    again = tune(_cfg(), out, trials=1)  # the study goes on in the same SQLite file
    assert again.n_trials == 4
    assert again.best_val_loss <= first.best_val_loss
    with open(out / "trials.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_tune_needs_a_budget(tmp_path):
    with pytest.raises(ConfigError, match="--trials N or --minutes M"):
        tune(_cfg(), tmp_path / "a")


def test_tune_chooses_a_validation_slice_where_the_preset_has_none(tmp_path, capsys):
    from revsent.progress import Progress

    small = {key: value for key, value in SMALL.items() if key != "val_fraction"}
    cfg = Config.from_preset("seed", **{**small, "vocab_size": 500, "hidden_size": 16, "embedding_dim": 16})
    assert cfg.train.val_fraction == 0
    result = tune(cfg, tmp_path / "seed", trials=1, progress=Progress(True))
    assert "10% of the training part" in capsys.readouterr().err
    saved = json.loads((result.out / "model" / "config.json").read_text())
    assert saved["train"]["val_fraction"] == 0.1


def test_tune_never_writes_into_a_folder_of_other_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="notes.txt"):
        tune(_cfg(), out, trials=1)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_continuing_with_other_data_is_refused(tmp_path):
    out = tmp_path / "tune"
    tune(_cfg(limit=200, epochs=1), out, trials=1)
    with pytest.raises(ConfigError, match="prepared from other data"):
        tune(_cfg(limit=300, epochs=1), out, trials=1)


def test_the_log_line_of_a_pruned_trial_gives_its_last_loss_and_no_accuracy():
    import optuna

    from revsent.training.tune import trial_line

    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    complete = optuna.trial.create_trial(params={"lr": 2e-3}, distributions=space, value=0.4915,
                                         intermediate_values={1: 0.52, 2: 0.4915},
                                         user_attrs={"val_accuracy": 0.7672, "best_epoch": 2})
    pruned = optuna.trial.create_trial(params={"lr": 4e-3}, distributions=space, value=0.5074,
                                       state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.5074})
    study = optuna.create_study()
    study.add_trials([complete, pruned])
    assert trial_line(study.trials[0]) == "trial 0: complete (val loss 0.4915, acc 0.7672) {'lr': 0.002}"
    assert trial_line(study.trials[1]) == "trial 1: pruned (val loss 0.5074 after epoch 1) {'lr': 0.004}"
