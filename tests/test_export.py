"""revsent export: the ONNX graph, its agreement with PyTorch, int8, and the onnx backend without PyTorch."""
import dataclasses
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
    graph = lambda r: r["files"]["model.onnx"] + r["files"]["model.onnx.data"]  # noqa: E731
    # the embedding and the n-gram table are int8 too: most of the bytes
    assert result["precision"] == "int8" and graph(plain) >= 3 * graph(result), (graph(plain), graph(result))
    a = OnnxClassifier.load(fp32).predict_proba(texts).argmax(axis=1)
    b = OnnxClassifier.load(int8)
    assert b.precision_ == "int8"
    got = b.predict_proba(texts).argmax(axis=1)
    agreement = float((got == a).mean())
    accuracy = [float((labels == np.asarray(y)).mean()) for labels, y in ((a, imdb_heldout[1]), (got, imdb_heldout[1]))]
    print(f"int8 labels agree with fp32 on {agreement:.2%} of {len(texts)} held-out reviews; accuracy {accuracy}")
    assert agreement >= 0.99 and abs(accuracy[0] - accuracy[1]) <= 0.003 + 1e-9  # 0.3 points (3 of 1,000 reviews)


def test_cli_export_and_predict_without_torch(trained, tmp_path):
    _, path = trained
    out = tmp_path / "package"
    result = CliRunner().invoke(app, ["export", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx", "model.onnx.data", "tokenizer.json"]
    for name in ("model.onnx", "model.onnx.data", "config.json", "tokenizer.json"):  # every file, its size, the total
        assert f"wrote {out / name} ({(out / name).stat().st_size / 1e6:.2f} MB)" in result.output
    total = sum(p.stat().st_size for p in out.iterdir())
    assert f"fp32 ONNX package in {out}: 4 files, {total / 1e6:.2f} MB in all" in result.output
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
    assert result["files"]["model.onnx"] == graph.stat().st_size and result["files"]["model.onnx.data"] == data.stat().st_size
    assert result["bytes"] == sum(result["files"].values())
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


def test_one_graph_holds_the_whole_model(trained):
    """Token ids in, probabilities out: the n-gram branch and the calibration are inside the graph,
    nothing beside it but the tokenizer."""
    import onnxruntime as ort

    clf, path = trained
    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert not (path / "wide.safetensors").exists()
    seqs = clf.encoder_.encode(TEXTS[:5])
    from revsent.batching import pad

    tokens, lengths = pad(seqs, np.arange(5))
    proba = session.run(["probabilities"], {"tokens": tokens, "lengths": lengths})[0]
    assert np.abs(proba - clf.predict_proba(TEXTS[:5])).max() < 1e-4


def test_the_graph_drops_unknown_ids_and_truncates_as_the_encoder_does(tmp_path):
    """Given the raw ids of tokenizer.json ([UNK] for unknown words, whole reviews), the graph keeps
    what revsent's encoder keeps: unknown words dropped, --max-len words from the kept end."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    for side in ("tail", "head", "head_tail"):
        clf = Classifier(**{**TINY, "preset": "quick", "ngram_buckets": 300, "epochs": 1, "max_len": 6,
                            "truncate": side}).fit(TEXTS, LABELS)
        clf.save(tmp_path / side)
        export(tmp_path / side)
        texts = ["great food and the unknownword staff were friendly and the place was clean", "zzz qqq", "",
                 "rude slow cold"]
        encoded = Tokenizer.from_file(str(tmp_path / side / "tokenizer.json")).encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        tokens = np.array([e.ids + [0] * (width - len(e.ids)) for e in encoded], dtype=np.int64)
        session = ort.InferenceSession(str(tmp_path / side / "model.onnx"), providers=["CPUExecutionProvider"])
        proba = session.run(["probabilities"], {"tokens": tokens,
                                                "lengths": np.array([len(e.ids) for e in encoded], dtype=np.int64)})[0]
        assert np.abs(proba - clf.predict_proba(texts)).max() < 1e-4, side


def test_packages_of_earlier_releases_still_load(trained, tmp_path):
    """An earlier release's package: a graph of the LSTM's logits, the n-gram branch's dense idf,
    weight and bias in wide.safetensors beside it."""
    import torch
    from safetensors.numpy import save_file

    from revsent.batching import Batch

    clf, path = trained
    model = clf.model_
    if not model.cfg.ngram_buckets:
        pytest.skip("no n-gram branch")
    old = tmp_path / "old"
    old.mkdir()
    (old / "tokenizer.json").write_bytes((path / "tokenizer.json").read_bytes())
    saved = json.loads((path / "config.json").read_text())
    del saved["model"]["ngram_whole"]  # those releases' n-grams read what max_len left the LSTM
    (old / "config.json").write_text(json.dumps(saved))

    class LstmOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, tokens, lengths):
            return self.model.branches(Batch(tokens, lengths, None))[0] * self.model.mix[0]

    with torch.no_grad():
        torch.onnx.export(
            LstmOnly().eval(), (torch.tensor([[3, 4, 5]]), torch.tensor([3])), str(old / "model.onnx"),
            input_names=["tokens", "lengths"], output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={"tokens": {0: "b", 1: "t"}, "lengths": {0: "b"}})
    features = model.cfg.vocab_size + model.cfg.ngram_buckets
    idf = np.full(features, float(model.wide_unseen), dtype=np.float32)
    idf[model.wide_keys.numpy()] = model.wide_idf.numpy()
    weight = np.zeros((features, model.n_classes), dtype=np.float32)
    weight[model.wide_keys.numpy()] = model.wide_weight.numpy() * float(model.mix[1])
    save_file({"idf": idf, "weight": weight, "bias": model.wide_bias.numpy() * float(model.mix[1])}, old / "wide.safetensors")
    texts = _mixed_texts(20, np.random.default_rng(3))
    whole = model.cfg
    try:
        model.cfg = dataclasses.replace(whole, ngram_whole=False)
        expected = clf.predict_proba(texts)
    finally:
        model.cfg = whole
    assert np.abs(OnnxClassifier.load(old).predict_proba(texts) - expected).max() < 1e-4
    if whole.max_len is not None and max(len(t.split()) for t in texts) > whole.max_len:
        assert np.abs(expected - clf.predict_proba(texts)).max() > 1e-3  # whole reviews' n-grams differ
