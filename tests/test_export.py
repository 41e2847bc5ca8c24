"""revsent export: the ONNX graph, its agreement with PyTorch, int8, and the onnx backend without PyTorch."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from revsent import ArtifactError, Classifier, ConfigError
from revsent.cli import app
from revsent.export import OnnxClassifier, export
from revsent.predict import predict
from revsent.serve import ServeConfig, create_app

from .conftest import NEGATIVE, POSITIVE, TINY

TEXTS, LABELS = POSITIVE * 4 + NEGATIVE * 4, ["pos"] * 24 + ["neg"] * 24
SHAPES = {  # every branch of the graph: one and two directions, each pooling, dense layers, the n-gram branch
    "seed": dict(preset="seed"),
    "wide": dict(preset="default", bidirectional=True, pooling="max_mean", dense=(8,), ngram_buckets=500,
                 ngram_order=3, layers=2, epochs=4, max_len=None),
    "bag": dict(preset="quick", members=3, ngram_buckets=500, epochs=2),  # three readers averaged in one graph
}


@pytest.fixture(scope="module", params=list(SHAPES))
def trained(request, tmp_path_factory):
    settings = {**TINY, **SHAPES[request.param]}
    clf = Classifier(**settings).fit(TEXTS, LABELS)
    path = tmp_path_factory.mktemp("export") / request.param
    clf.save(path)
    export(path)
    return clf, path


def _mixed_texts(n: int, rng: np.random.Generator) -> list[str]:
    """Reviews of 1 to 400 known words, lengths mixed in every batch."""
    vocabulary = " ".join(POSITIVE + NEGATIVE).split()
    lengths = rng.integers(1, 401, size=n)
    lengths[:3] = [1, 400, 2]
    return [" ".join(rng.choice(vocabulary, size=k)) for k in lengths]


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_onnx_agrees_with_torch(trained, batch_size):
    clf, path = trained
    texts = _mixed_texts(70, np.random.default_rng(batch_size))
    onnx_clf = OnnxClassifier.load(path, threads=1)
    expected = clf.predict_proba(texts, batch_size=batch_size)
    got = onnx_clf.predict_proba(texts, batch_size=batch_size)
    assert np.abs(got - expected).max() < 1e-4
    assert onnx_clf.predict(TEXTS) == clf.predict(TEXTS)


def test_graph_passes_the_checker_with_dynamic_axes(trained):
    _, path = trained
    proto = onnx.load(str(path / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert inputs == {"tokens": ["batch", "length"], "lengths": ["batch"]}
    assert not any(node.op_type == "Loop" for node in proto.graph.node)  # the LSTM is one fused op, not a loop


def test_int8_agrees_with_fp32_on_held_out_imdb(imdb_model, imdb_heldout, tmp_path):
    texts, _ = imdb_heldout
    fp32, int8 = tmp_path / "fp32", tmp_path / "int8"
    plain = export(imdb_model, fp32)
    result = export(imdb_model, int8, int8=True)
    assert result["precision"] == "int8" and result["bytes"] < plain["bytes"]
    a = OnnxClassifier.load(fp32).predict_proba(texts).argmax(axis=1)
    b = OnnxClassifier.load(int8)
    assert b.precision_ == "int8"
    agreement = float((b.predict_proba(texts).argmax(axis=1) == a).mean())
    print(f"int8 labels agree with fp32 on {agreement:.2%} of {len(texts)} held-out reviews")
    assert agreement >= 0.99


def test_cli_export_and_predict_without_torch(trained, tmp_path):
    _, path = trained
    out = tmp_path / "package"
    result = CliRunner().invoke(app, ["export", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "tokenizer.json", "model.onnx", "model.onnx.data"]
        + (["wide.safetensors"] if (path / "wide.safetensors").exists() else []))
    again = CliRunner().invoke(app, ["export", str(path), "--out", str(out)])
    assert again.exit_code != 0 and "exists; pass --force" in again.output
    assert CliRunner().invoke(app, ["export", str(path), "--out", str(out), "--force", "--int8"]).exit_code == 0
    # PyTorch made unimportable: the onnx backend must not need it
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['revsent', 'predict', sys.argv[1], '--backend', "
            "'onnx', 'great food', 'rude staff']; from revsent.cli import main; main()")
    run = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["label"] for line in run.stdout.splitlines()] == ["pos", "neg"]


def test_weights_sit_beside_the_graph_and_travel_with_the_package(trained, tmp_path):
    """The weights are ONNX external data in model.onnx.data (onnxruntime maps them instead of
    parsing them out of the graph), found relative to the graph: the package can move."""
    clf, path = trained
    result = export(path, tmp_path / "package")
    graph, data = tmp_path / "package" / "model.onnx", tmp_path / "package" / "model.onnx.data"
    inline = onnx.load(str(graph), load_external_data=False)
    sizes = {t.name: t.data_location for t in inline.graph.initializer if np.prod(t.dims) * 4 > 1024}
    assert sizes and set(sizes.values()) == {onnx.TensorProto.EXTERNAL}  # every large weight is in the data file
    assert result["bytes"] == graph.stat().st_size + data.stat().st_size
    moved = (tmp_path / "package").rename(tmp_path / "elsewhere")
    texts = _mixed_texts(20, np.random.default_rng(0))
    assert np.abs(OnnxClassifier.load(moved).predict_proba(texts) - clf.predict_proba(texts)).max() < 1e-4
    # a killed re-export leaves no graph beside half-replaced weights: refused, never mixed
    (moved / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="model.onnx: missing; run `revsent export"):
        OnnxClassifier.load(moved)
    export(path, moved, force=True)
    (moved / "model.onnx.data").write_bytes(b"")  # weights that are gone: the graph is named
    with pytest.raises(ArtifactError, match="model.onnx: cannot be loaded"):
        OnnxClassifier.load(moved)


def test_onnx_backend_errors(trained, tmp_path):
    clf, path = trained
    plain = tmp_path / "plain"
    clf.save(plain)
    with pytest.raises(ArtifactError, match="model.onnx: missing; run `revsent export"):
        OnnxClassifier.load(plain)
    with pytest.raises(ConfigError, match="'backend' parameter must be one of torch, onnx"):
        predict(path, ["x"], backend="tensorrt")
    with pytest.raises(ConfigError, match="--device cuda needs the torch backend"):
        predict(path, ["x"], backend="onnx", device="cuda")
    with pytest.raises(ConfigError, match="'format' parameter must be one of onnx"):
        export(path, tmp_path / "x", format="tflite")
    (plain / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ArtifactError, match="model.onnx: cannot be loaded"):
        OnnxClassifier.load(plain)
    # retraining into the directory replaces the export too: no stale graph beside new weights
    clf.save(plain, force=True)
    assert not (plain / "model.onnx").exists()


def test_serve_with_the_onnx_backend(trained):
    clf, path = trained
    with TestClient(create_app(ServeConfig(str(path), backend="onnx", threads=1))) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
        body = client.post("/v1/predict", json={"texts": TEXTS[:3]}).json()
        expected = clf.predict_proba(TEXTS[:3])
        got = np.array([[p["probabilities"][c] for c in clf.classes_] for p in body["predictions"]])
        assert np.abs(got - expected).max() < 1e-4
        explained = client.post("/v1/explain", json={"text": "great food"})
        assert explained.status_code == 501 and explained.json()["type"] == "not_supported"
        assert client.get("/v1/model").json()["backend"] == "onnx"
