"""Export a trained model to ONNX, and run the export on onnxruntime without PyTorch.

    MODEL/model.safetensors ──torch.onnx.export──► OUT/model.onnx      tokens (B, T), lengths (B,) → logits,
                                                                       probabilities (B, C): the whole model
                                                   OUT/model.onnx.data its weights (ONNX external data)
                            ──(--int8)───────────► int8 weights: the LSTM, dense layers, embedding and n-gram table
    MODEL/config.json, tokenizer.json, metrics.json ──copied──► OUT/

One graph (``onnx_graph.ModelGraph``): the ids of ``tokenizer.json`` (Hugging Face's format) in,
right-padded, and probabilities out, the n-gram branch and the calibration inside, so any
onnxruntime (C++, Java, C#, JavaScript) runs a revsent model with the tokenizer file alone.
``OnnxClassifier`` loads the package with JSON and onnxruntime only: no code executed, no
PyTorch imported. Packages of earlier releases (the n-gram branch in ``wide.safetensors`` beside
a graph of the LSTM alone) still load.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .artifacts import (CONFIG, METRICS, ONNX, ONNX_DATA, TOKENIZER, WEIGHTS, WIDE, atomic_write, load_encoder,
                        check_writable, read_config, removed_on_failure)
from .batching import inference_order, pad
from .errors import ArtifactError, ConfigError, DataError
from .metrics import decide
from .ngrams import NgramFeatures, WideTable, linear_logits
from .text import Cut, Sequences

OPSET = 18  # BitwiseAnd, for the n-gram hash
FORMATS = ("onnx",)
BACKENDS = ("torch", "onnx")


def export(model_dir: str | Path, out: str | Path | None = None, *, format: str = "onnx", int8: bool = False,
           force: bool = False) -> dict:
    """Write ``model.onnx`` (and the n-gram branch's ``wide.safetensors``) for ``model_dir``.

    ``out`` is a new package directory (config and tokenizer copied in), or the model directory
    itself (the default), which then serves both backends. Existing files are kept unless ``force``.
    """
    # Both imported first, as the steps below import them again: without either, export fails
    # before it reads or writes a file.
    import onnx  # noqa: F401
    import torch  # noqa: F401

    from .artifacts import load_model

    if format not in FORMATS:
        raise ConfigError(f"The 'format' parameter must be one of {', '.join(FORMATS)}. Got {format!r} instead.")
    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir
    _, classes, _, model = load_model(model_dir, "cpu")
    inside = _check_out(model_dir, out, force)
    written = [ONNX, ONNX_DATA]
    with removed_on_failure(out):  # a new package directory goes if anything fails (a full disk)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="revsent-export.") as scratch:
            graph = Path(scratch) / ONNX
            _trace(model, graph)
            if int8:
                graph = _quantize(graph, Path(scratch))
            _write_graph(graph, Path(scratch), out, classes, int8, model.decision_threshold)
        (out / WIDE).unlink(missing_ok=True)  # an earlier release's n-gram branch beside the graph: inside it now
        if not inside:
            for name in (CONFIG, TOKENIZER, METRICS):
                if (model_dir / name).exists():
                    atomic_write(out / name, (model_dir / name).read_bytes())
                    written.append(name)
    files = {name: (out / name).stat().st_size for name in written if (out / name).exists()}
    return {"out": str(out), "onnx": str(out / ONNX), "precision": "int8" if int8 else "fp32", "files": files,
            "bytes": sum(files.values())}


def _check_out(model_dir: Path, out: Path, force: bool) -> bool:
    """Whether ``out`` is the model directory itself. Refuses, before anything is written, an ``out``
    that is a file or (without ``force``) already holds a file the export writes."""
    check_writable(out)
    inside = out.exists() and out.resolve() == model_dir.resolve()
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a directory; choose another --out")
    targets = [ONNX, ONNX_DATA, WIDE] if inside else [ONNX, ONNX_DATA, WIDE, CONFIG, TOKENIZER, METRICS]
    if not force:
        present = [name for name in targets if (out / name).exists()]
        if present:
            raise ArtifactError(f"{out / present[0]}: exists; pass --force to replace it")
    return inside


def _trace(model, graph: Path) -> None:
    """The whole model, traced on a small batch, as an fp32 ONNX graph at ``graph``."""
    import torch

    from .onnx_graph import ModelGraph

    whole = ModelGraph(model).eval()
    tokens, lengths = torch.randint(1, max(model.words, 2), (3, 11)), torch.tensor([11, 6, 1])
    with torch.no_grad(), warnings.catch_warnings():
        # its advice (export with batch 1 or pass h0/c0) is for packed LSTMs; the tests run batches 1..32
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # nn.LSTM's checks of fixed sizes
        # The TorchScript exporter, on purpose: it maps nn.LSTM to ONNX's fused LSTM operator, which
        # onnxruntime's int8 quantiser knows (DynamicQuantizeLSTM); the newer exporter needs onnxscript.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(whole, (tokens, lengths), str(graph), input_names=["tokens", "lengths"],
                          output_names=["logits", "probabilities"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"tokens": {0: "batch", 1: "length"}, "lengths": {0: "batch"},
                                        "logits": {0: "batch"}, "probabilities": {0: "batch"}})


def _quantize(graph: Path, scratch: Path) -> Path:
    """``graph`` with dynamic int8 weights, written in ``scratch``; returns its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = scratch / "prepared.onnx", scratch / "int8.onnx"
    # shapes inferred and the graph simplified, as onnxruntime advises (ONNX's own inference: the symbolic one
    # cannot follow Unique)
    quant_pre_process(graph, prepared, skip_symbolic_shape=True)
    # The LSTM and dense weights, and the tables read by Gather: the embedding and the n-gram
    # branch's weights, most of a model's bytes
    quantize_dynamic(prepared, quantized, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["LSTM", "MatMul", "Gemm", "Gather"])
    return quantized


def _write_graph(graph: Path, scratch: Path, out: Path, classes: list[str], int8: bool,
                 threshold: float | None) -> None:
    """Check ``graph``, record its precision and classes in it, and write it to ``out`` with its weights beside it."""
    import onnx

    proto = onnx.load(str(graph))
    onnx.checker.check_model(proto, full_check=True)
    onnx.helper.set_model_props(proto, {"revsent_precision": "int8" if int8 else "fp32",
                                        "revsent_classes": ",".join(classes),
                                        "revsent_threshold": "" if threshold is None else repr(threshold)})
    # The weights go to a file of their own beside the graph (ONNX external data): onnxruntime
    # maps it into memory instead of parsing them out of the protobuf, so a session starts
    # several times faster.
    onnx.save_model(proto, str(scratch / ONNX), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=ONNX_DATA, size_threshold=1024)
    (out / ONNX).unlink(missing_ok=True)  # a torn export leaves no graph beside half-replaced weights
    data = scratch / ONNX_DATA
    if data.exists():
        atomic_write(out / ONNX_DATA, data.read_bytes())
    else:  # a graph without large weights keeps them inline
        (out / ONNX_DATA).unlink(missing_ok=True)
    atomic_write(out / ONNX, (scratch / ONNX).read_bytes())


class OnnxClassifier:
    """An exported model on onnxruntime: ``predict`` / ``predict_proba`` as :class:`revsent.Classifier`."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        self.config_, self.classes_ = read_config(path)
        graph = path / ONNX
        if not graph.exists():
            raise ArtifactError(f"{graph}: missing; run `revsent export {path} --format onnx` first")
        self.encoder_ = load_encoder(path, self.config_)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        try:
            self.session_ = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ArtifactError(f"{graph}: cannot be loaded ({str(exc).splitlines()[0]})") from None
        props = self.session_.get_modelmeta().custom_metadata_map
        if props.get("revsent_classes", ",".join(self.classes_)) != ",".join(self.classes_):
            raise ArtifactError(f"{graph}: exported from a model with other classes than {path / CONFIG}; export again")
        self.precision_ = props.get("revsent_precision", "fp32")
        self.threshold_ = float(props["revsent_threshold"]) if props.get("revsent_threshold") else None
        # one graph (this release's), or an earlier release's: the LSTM's logits, the n-grams beside
        self.whole_ = "probabilities" in {o.name for o in self.session_.get_outputs()}
        self.wide_ = None if self.whole_ else NgramFeatures.of(self.config_.model)
        if self.wide_ is not None:
            self.table_, self.weight_, self.bias_ = self._wide(path)

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> "OnnxClassifier":
        return cls(path, threads)

    def _wide(self, path: Path):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        for name, prefix in ((WIDE, ""), (WEIGHTS, "wide_")):
            if (path / name).exists():
                try:
                    arrays = load_file(path / name)
                    idf, weight, bias = (arrays[prefix + k] for k in ("idf", "weight", "bias"))
                    if prefix + "keys" not in arrays:  # the first releases' dense table
                        table = WideTable.dense(idf, weight)
                        return table, weight[table.keys], bias
                    unseen = float(np.asarray(arrays[prefix + "unseen"]).reshape(-1)[0])
                    return WideTable(arrays[prefix + "keys"], idf, unseen), weight, bias
                except (SafetensorError, OSError, KeyError, IndexError) as exc:
                    raise ArtifactError(f"{path / name}: corrupt or incomplete ({exc})") from None
        raise ArtifactError(f"{path / WIDE}: missing (the model has an n-gram branch); export again")

    def probabilities(self, seqs: Sequences, batch_size: int = 256) -> np.ndarray:
        """Softmax probabilities (n, C) in the input order; batches sorted by length."""
        out = np.zeros((len(seqs), len(self.classes_)), dtype=np.float32)
        if not self.whole_:  # an earlier release's graph reads the reviews cut, as its encoder cut them
            seqs = Cut.of(self.config_.model)(seqs)
        for index in inference_order(seqs.lengths, batch_size):
            tokens, lengths = pad(seqs, index)  # (B, T), (B,)
            if self.whole_:
                out[index] = self.session_.run(["probabilities"], {"tokens": tokens, "lengths": lengths})[0]
                continue
            logits = self.session_.run(None, {"tokens": tokens, "lengths": lengths})[0]
            if self.wide_ is not None:
                logits = logits + linear_logits(seqs, index, self.table_, self.weight_, self.bias_, self.wide_)
            logits = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            out[index] = e / e.sum(axis=1, keepdims=True)
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if isinstance(texts, str):
            raise DataError("texts", "expected a list of texts, got one string; wrap it in a list")
        return self.probabilities(self.encoder_.encode(list(texts)), batch_size)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes_[i] for i in decide(self.predict_proba(texts), self.threshold_)]

    def explain(self, texts: Sequence[str]) -> list:
        raise ConfigError("explanations need gradients, which the onnx backend has not; "
                          "serve or load with the torch backend")
