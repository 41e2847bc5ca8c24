"""Experiment tracking: runs logged to a real local MLflow store and to TensorBoard event files, read back."""
import csv
import json
import shutil

import pytest
from typer.testing import CliRunner

from revsent import ArtifactError
from revsent.cli import app
from revsent.cli.common import optional_values
from revsent.tracking import log_model_dir, log_tune_dir

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

runner = CliRunner()
FLAGS = ["--preset", "seed", "--vocab-size", "100", "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "3",
         "--patience", "3", "--val-fraction", "0.25", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from .conftest import NEGATIVE, POSITIVE

    path = tmp_path_factory.mktemp("track") / "reviews.json"
    rows = [{"stars": 5, "text": t} for t in POSITIVE * 4] + [{"stars": 1, "text": t} for t in NEGATIVE * 4]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """MLflow puts a new experiment's artifacts in ./mlruns: the working directory is the test's own."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tracked(data, tmp_path_factory):
    """`revsent train ... --mlflow URI --tensorboard DIR`: the model directory, the store's URI, the TensorBoard dir."""
    import os

    folder = tmp_path_factory.mktemp("tracked")
    uri, tb = f"sqlite:///{folder / 'mlflow.db'}", folder / "tb"
    here = os.getcwd()
    os.chdir(folder)
    try:
        result = runner.invoke(app, ["train", str(data), "--out", str(folder / "m"), *FLAGS, "--baseline",
                                     "--mlflow", uri, "--tensorboard", str(tb)])
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return folder / "m", uri, tb, result.output


def _history(model):
    with open(model / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("revsent")
    return client, client.search_runs([experiment.experiment_id])


def test_a_trained_run_is_in_the_mlflow_store(tracked):
    model, uri, _, output = tracked
    client, runs = _runs(uri)
    (run,) = runs
    assert f"logged to MLflow: run {run.info.run_id}" in output
    config, metrics = json.loads((model / "config.json").read_text()), json.loads((model / "metrics.json").read_text())
    assert run.data.params["model.hidden_size"] == str(config["model"]["hidden_size"]) == "8"
    assert run.data.params["preset"] == "seed" and run.data.params["train.epochs"] == "3"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["baseline_accuracy"] == pytest.approx(metrics["baseline_tfidf_lr"]["accuracy"])
    assert run.data.metrics["validation_loss"] == pytest.approx(metrics["validation"]["loss"])
    losses = client.get_metric_history(run.info.run_id, "val_loss")
    history = _history(model)
    assert [m.step for m in sorted(losses, key=lambda m: m.step)] == [int(r["epoch"]) for r in history]
    assert [m.value for m in sorted(losses, key=lambda m: m.step)] == pytest.approx([float(r["val_loss"]) for r in history])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.safetensors", "model/training_curves.png", "model/metrics.json", "model/README.md"} <= names
    assert run.data.tags["versions.torch"] == config["versions"]["torch"] and run.info.status == "FINISHED"


def test_a_trained_run_is_in_tensorboard_event_files(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, _, tb, output = tracked
    assert f"TensorBoard logs in {tb / 'm'}" in output
    events = EventAccumulator(str(tb / "m"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    history = _history(model)
    for tag, column in (("train/loss", "train_loss"), ("validation/accuracy", "val_accuracy")):
        points = events.Scalars(tag)
        assert [p.step for p in points] == [int(r["epoch"]) for r in history]
        assert [p.value for p in points] == pytest.approx([float(r[column]) for r in history], rel=1e-6)
    metrics = json.loads((model / "metrics.json").read_text())
    assert events.Scalars("test/accuracy")[-1].value == pytest.approx(metrics["accuracy"])
    assert "baseline/accuracy" in tags["scalars"]
    assert {"plots/training_curves", "plots/confusion_matrix"} <= set(tags["images"])
    image = events.Images("plots/training_curves")[-1]
    assert image.width > 100 and image.height > 100 and image.encoded_image_string[:4] == b"\x89PNG"


def test_a_model_directory_is_logged_again_afterwards(tracked, tmp_path):
    model, *_ = tracked
    uri = f"sqlite:///{tmp_path / 'again.db'}"
    done = log_model_dir(model, mlflow=uri, run_name="again")
    client, (run,) = _runs(uri)
    assert done["mlflow"]["run_id"] == run.info.run_id and run.info.run_name == "again"
    assert "tensorboard" not in done


def test_not_a_model_directory_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ArtifactError, match="not a model directory written by `revsent train`"):
        log_model_dir(tmp_path, tensorboard=tmp_path / "tb")
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--tensorboard"])
    assert result.exit_code == 2 and "requires an argument" in result.output


def test_a_history_without_validation_logs_the_training_figures(tracked, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, *_ = tracked
    copy = shutil.copytree(model, tmp_path / "noval")
    rows = _history(copy)
    columns = [c for c in rows[0] if not c.startswith("val_")]
    with open(copy / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    uri = f"sqlite:///{tmp_path / 'noval.db'}"
    done = log_model_dir(copy, mlflow=uri, tensorboard=tmp_path / "tb")
    client, (run,) = _runs(uri)
    assert client.get_metric_history(run.info.run_id, "val_loss") == []
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.value for m in losses) == pytest.approx(sorted(float(r["train_loss"]) for r in rows))
    events = EventAccumulator(done["tensorboard"])
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and "validation/loss" not in events.Tags()["scalars"]


def test_unreadable_run_files_are_a_clear_error(tracked, tmp_path):
    model, *_ = tracked
    copy = shutil.copytree(model, tmp_path / "broken")
    (copy / "metrics.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"broken: unreadable run files \(Expecting property name"):
        log_model_dir(copy, tensorboard=tmp_path / "tb")
    assert not (tmp_path / "tb").exists()  # nothing half-logged


def test_not_a_tuning_directory_is_a_clear_error(tracked, tmp_path):
    model, *_ = tracked
    with pytest.raises(ArtifactError, match="not a tuning directory written by `revsent tune`"):
        log_tune_dir(model, tensorboard=tmp_path / "tb")
    tune = tmp_path / "tuned"
    shutil.copytree(model, tune / "model")
    (tune / "trials.csv").write_text("trial,state,val_loss\n,complete,0.5\n")
    with pytest.raises(ArtifactError, match="trials.csv: a row without a trial number"):
        log_tune_dir(tune, tensorboard=tmp_path / "tb")


def test_an_unusable_tracking_uri_is_a_clear_error(tracked):
    model, *_ = tracked
    with pytest.raises(ArtifactError, match=r"^MLflow tracking URI 'nosuch://store': cannot log there \("):
        log_model_dir(model, mlflow="nosuch://store")


def test_a_tuning_directory_logs_its_trials_as_child_runs(tracked, tmp_path):
    from PIL import Image
    import numpy as np

    model, *_ = tracked
    tune = tmp_path / "tuned"
    tune.mkdir()
    shutil.copytree(model, tune / "model")
    grey = (np.arange(48 * 64) % 256).astype("uint8").reshape(48, 64)  # a one-channel PNG, as some tools write
    Image.fromarray(grey, mode="L").save(tune / "history.png")
    (tune / "trials.csv").write_text("trial,state,val_loss,val_accuracy,best_epoch,seconds,lr\n"
                                     "0,complete,0.52,0.75,2,1.5,0.001\n1,pruned,0.69,,,0.4,0.01\n"
                                     "2,complete,0.41,0.8,3,1.2,0.003\n")
    uri = f"sqlite:///{tmp_path / 'tune.db'}"
    done = log_tune_dir(tune, mlflow=uri, tensorboard=tmp_path / "tb")
    client, runs = _runs(uri)
    parent = next(r for r in runs if r.info.run_id == done["mlflow"]["run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(children) == 4  # the parent, three trials, the final model
    assert parent.data.params["best.lr"] == "0.003" and parent.data.metrics["best_val_loss"] == pytest.approx(0.41)
    pruned = next(r for r in children if r.info.run_name == "trial 1")
    assert pruned.data.tags["state"] == "pruned" and pruned.data.params["lr"] == "0.01"
    final = next(r for r in children if r.info.run_name == "final model")
    assert "model/model.safetensors" in {a.path for a in client.list_artifacts(final.info.run_id, "model")}
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "study")} == {"study/trials.csv",
                                                                                  "study/history.png"}
    assert [r.info.status for r in sorted(children, key=lambda r: r.info.run_name)] == ["FINISHED"] * 4
    assert done["mlflow"]["model_run"] == final.info.run_id and len(done["mlflow"]["trial_runs"]) == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb" / "tuned"), size_guidance={"images": 0})
    events.Reload()
    assert [(p.step, round(p.value, 2)) for p in events.Scalars("trials/val_loss")] == [(0, 0.52), (1, 0.69), (2, 0.41)]
    (image,) = events.Images("study/history")
    assert (image.width, image.height) == (64, 48)
    assert "test/accuracy" in EventAccumulator(str(tmp_path / "tb" / "tuned" / "model")).Reload().Tags()["scalars"]


def test_mlflow_alone_takes_the_default_store():
    assert optional_values(["train", "d", "--mlflow"]) == ["train", "d", "--mlflow="]
    assert optional_values(["train", "--mlflow", "--epochs", "2"]) == ["train", "--mlflow=", "--epochs", "2"]
    assert optional_values(["train", "--mlflow", "http://host:5000"]) == ["train", "--mlflow", "http://host:5000"]


def test_mlflow_alone_logs_to_a_local_store_in_the_working_directory(data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = runner.invoke(app, ["train", str(data), "--out", "m", *FLAGS, "--epochs", "1", "--mlflow"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mlflow.db").exists()
    _, (run,) = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.data.params["train.epochs"] == "1"


def test_a_missing_tracking_package_is_named_before_training(data, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name.split(".")[0] == "mlflow":
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *FLAGS, "--mlflow", "x"])
    assert isinstance(result.exception, ImportError) and result.exception.name == "mlflow"
    assert not (tmp_path / "m").exists()  # stopped before any work


def test_tune_logs_its_study(data, tmp_path):
    pytest.importorskip("optuna")
    uri = f"sqlite:///{tmp_path / 'tune.db'}"
    result = runner.invoke(app, ["tune", str(data), "--out", str(tmp_path / "tuned"), "--trials", "2", "--preset",
                                 "quick", "--epochs", "1", "--vocab-size", "100", "--threads", "1", "--quiet",
                                 "--mlflow", uri])
    assert result.exit_code == 0, result.output
    _, runs = _runs(uri)
    assert sorted(r.info.run_name for r in runs) == ["final model", "trial 0", "trial 1", "tuned"]


def test_a_bad_tracking_uri_stops_train_before_any_work(data, tmp_path):
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *FLAGS, "--mlflow", "nosuch://store"])
    assert result.exit_code == 3 and "MLflow tracking URI 'nosuch://store': cannot log there" in result.output
    assert not (tmp_path / "m").exists()
