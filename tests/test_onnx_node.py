"""The exported package on a second runtime: onnxruntime-node (npm), given only the ids of
tokenizer.json (Hugging Face's tokenizers), matches revsent in Python on held-out reviews.

CI installs Node.js and the pinned onnxruntime-node (``make onnx-node``) and sets
REVSENT_REQUIRE_NODE=1, so that there a missing runtime fails the test instead of skipping it.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from revsent import Classifier
from revsent.export import export

HERE = Path(__file__).parent / "onnx_node"
NODE = shutil.which("node")
READY = NODE is not None and (HERE / "node_modules" / "onnxruntime-node").is_dir()
if not READY and os.environ.get("REVSENT_REQUIRE_NODE") == "1":
    raise RuntimeError("REVSENT_REQUIRE_NODE=1 but node or tests/onnx_node/node_modules is missing: run `make onnx-node`")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not READY, reason="needs node and `make onnx-node`")]


def _node_probabilities(package: Path, texts: list[str], tmp_path: Path) -> np.ndarray:
    from tokenizers import Tokenizer

    encoded = Tokenizer.from_file(str(package / "tokenizer.json")).encode_batch(texts)
    ids, out = tmp_path / "ids.json", tmp_path / "out.json"
    ids.write_text(json.dumps({"ids": [e.ids for e in encoded]}))
    run = subprocess.run([NODE, str(HERE / "predict.mjs"), str(package), str(ids), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["classes"] == json.loads((package / "config.json").read_text())["classes"]
    return np.array(result["probabilities"])


def _python_onnxruntime(package: Path, texts: list[str]) -> np.ndarray:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    encoded = Tokenizer.from_file(str(package / "tokenizer.json")).encode_batch(texts)
    width = max(len(e.ids) for e in encoded)
    tokens = np.array([e.ids + [0] * (width - len(e.ids)) for e in encoded], dtype=np.int64)
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    lengths = np.array([len(e.ids) for e in encoded], dtype=np.int64)
    return session.run(["probabilities"], {"tokens": tokens, "lengths": lengths})[0]


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_node_runs_the_package_as_python_does(imdb_model, imdb_heldout, tmp_path, int8):
    texts = imdb_heldout[0][:400] + ["", "zzzq qqqz", "great " * 500]  # empty, unknown words only, long
    package = tmp_path / "package"
    export(imdb_model, package, int8=int8)
    got = _node_probabilities(package, texts, tmp_path)
    # fp32: against revsent's own PyTorch model; int8: against the same graph on Python's onnxruntime,
    # given the same one batch (int8 scales its activations by what each batch holds)
    expected = _python_onnxruntime(package, texts) if int8 else Classifier.load(imdb_model).predict_proba(texts)
    print(f"{'int8' if int8 else 'fp32'}: node vs Python, largest difference {np.abs(got - expected).max():.2e}")
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
