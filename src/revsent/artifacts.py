"""The model directory: ``config.json``, ``tokenizer.json``, ``model.safetensors``, ``metrics.json``,
``history.csv`` and plots. Everything is written atomically (temp file + rename) and loads
without executing code: JSON and safetensors only, never pickle.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from .config import Config
from .errors import ArtifactError, ConfigError
from .text import TextEncoder

if TYPE_CHECKING:  # PyTorch is imported where weights are read or written: the ONNX runtime path never loads it
    import torch

    from .model import SentimentLSTM

FORMAT_VERSION = 1
CONFIG, TOKENIZER, WEIGHTS, METRICS, HISTORY = "config.json", "tokenizer.json", "model.safetensors", "metrics.json", "history.csv"
CHECKPOINT = "checkpoint.safetensors"
TRAIN_HASHES = "train_hashes.npy"  # a fingerprint of each training review (data.store.review_hashes), sorted
UNLABELLED_HASHES = "unlabelled_hashes.npy"  # the texts a classifier read without labels (--unlabelled, its language model's)
LM_KIND = "language_model"  # config.json's "kind" in a language model's directory (`revsent pretrain`)
ONNX, ONNX_DATA, WIDE = "model.onnx", "model.onnx.data", "wide.safetensors"  # written by `revsent export` (export.py)
DATASET = ".dataset"  # the prepared training data of a run from files, kept until it ends (for --resume)
UNLABELLED = ".unlabelled"  # the --unlabelled reviews of a run, prepared, kept until it ends
MEMBERS = ".members"  # the finished members of a bag (--members), kept until the run ends (for --resume)
OUR_FILES = (CONFIG, TOKENIZER, WEIGHTS, METRICS, HISTORY, CHECKPOINT, TRAIN_HASHES, UNLABELLED_HASHES, ONNX, ONNX_DATA, WIDE,
             "training_curves.png", "confusion_matrix.png", "reliability.png")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to ``path`` with ordinary permissions (mkstemp's are owner-only)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~umask())
    return fd, tmp


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        os.chmod(tmp, 0o666 & ~umask())  # safetensors writes a file of its own, owner-only
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Rows of dicts as a CSV file, atomically; the columns are every key in order of appearance."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def write_npy(path: str | Path, array) -> None:
    """One NumPy array as a .npy file (no pickle), atomically."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write(path, buffer.getvalue())


def write_json(path: str | Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def versions() -> dict[str, str]:
    from importlib import metadata  # here: a twentieth of a second that `revsent predict` need not pay

    names = ("revsent", "torch", "tokenizers", "numpy", "scikit-learn", "safetensors")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def check_writable(path: str | Path, option: str = "--out") -> Path:
    """``path``, once it is known that it can be written, before any work: an empty name, a file
    where a folder is needed, or a folder it may not write in is a one-line error naming ``option``."""
    if str(path).strip() == "":
        raise ArtifactError(f"{option} is empty; name the {'file' if option == '--output' else 'directory'} to write")
    path = Path(path)
    for folder in (path.parent, *path.parent.parents) if option == "--output" or not path.is_dir() else (path,):
        if folder.exists():
            break
    if not folder.is_dir():
        raise ArtifactError(f"{option} {path}: {folder} is a file, not a folder; choose another {option}")
    try:  # the one test that holds for every user, mount and ACL: write a file there
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".revsent-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ArtifactError(f"{option} {path}: cannot write in {folder} ({exc.strerror or exc}); "
                            f"choose another {option}") from None
    return path


@contextlib.contextmanager
def removed_on_failure(out: Path | None, resumable=None):
    """Around a command that writes the new directory ``out``: when it fails for any reason (a bad
    record, a full disk, a permission), what it wrote goes with the directory; nothing is left
    behind. A run that was interrupted, or left something to continue from (``resumable(out)``;
    a checkpoint by default), is kept, to be continued with ``--resume``; a directory that existed
    before is never removed."""
    existed = out is None or out.exists()
    try:
        yield
    except KeyboardInterrupt:  # a kill: what was prepared is kept for --resume
        raise
    except BaseException:
        if not existed and out.is_dir() and not (resumable or has_checkpoint)(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def has_checkpoint(out: str | Path) -> bool:
    """Whether a run in ``out`` left something to resume from: a checkpoint, or a bag's finished member."""
    out = Path(out)
    return (out / CHECKPOINT).exists() or any((out / MEMBERS).glob("*.safetensors"))


def is_finished(out: str | Path) -> bool:
    """Whether ``out`` holds a finished model: its weights are the last file a run writes."""
    return (Path(out) / WEIGHTS).exists()


def prepare_out(out: str | Path, *, resume: bool = False, force: bool = False, keep_dataset: bool = False) -> Path:
    """Check that ``out`` may be written; nothing a user wrote is overwritten by surprise.

    ``resume`` needs a checkpoint (``has_checkpoint``); ``force`` clears a model revsent wrote
    (but its prepared data, with ``keep_dataset``: a restarted run reuses it).
    """
    out = check_writable(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a directory; choose another --out")
    if resume:
        if not has_checkpoint(out):
            raise ArtifactError(f"{out / CHECKPOINT}: no checkpoint to resume from")
        return out
    if out.exists() and any(out.iterdir()) and not force:
        raise ArtifactError(f"{out}: directory is not empty; pass --force to replace the model in it, or --resume to continue its run")
    if force and out.exists():
        from .modelcard import CARD, is_ours

        ours = OUR_FILES + ((CARD,) if is_ours(out / CARD) else ())  # a README.md is ours if it is our model card
        strangers = [p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith(".")]
        if strangers:
            raise ArtifactError(f"{out}: holds files revsent did not write ({', '.join(strangers[:5])}); choose another --out")
        for name in ours:  # the old model goes first: no mix of old weights and new vocabulary
            (out / name).unlink(missing_ok=True)
        if not keep_dataset:
            shutil.rmtree(out / DATASET, ignore_errors=True)
        shutil.rmtree(out / MEMBERS, ignore_errors=True)
        shutil.rmtree(out / UNLABELLED, ignore_errors=True)
    return out


def config_document(cfg: Config, classes: list[str]) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "classes": classes,
        "preprocessing": "lowercase; punctuation deleted ([\\]^_` split words); white-space split; "
                         "Keras Tokenizer(num_words) vocabulary",
        "versions": versions(),
        **cfg.to_dict(),
    }


def save_model(out: str | Path, cfg: Config, classes: list[str], encoder: TextEncoder, model: SentimentLSTM) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / TOKENIZER, encoder.to_str())
    write_json(out / CONFIG, config_document(cfg, classes))
    from .model import stored_state

    # Last, so that a directory with weights is a whole model (``is_finished``). The embedding in
    # int8 rows, other large float tensors in float16; training rounded the model to them before scoring it.
    stored = stored_state(model.state_dict())
    atomic_save_tensors(out / WEIGHTS, stored, {"format": "pt", "revsent_format": str(FORMAT_VERSION),
                                                "sha256": tensors_digest(stored),
                                                "tokenizer_sha256": hashlib.sha256((out / TOKENIZER).read_bytes()).hexdigest()})
    from .modelcard import write_model_card

    write_model_card(out)  # README.md, from the files just written (and metrics.json, where a run wrote it)


def lm_config_document(cfg: Config) -> dict:
    return {"format_version": FORMAT_VERSION, "kind": LM_KIND, **{k: v for k, v in config_document(cfg, []).items()
                                                                  if k not in ("format_version", "classes")}}


def _raw_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / CONFIG
    if not Path(model_dir).is_dir():
        raise ArtifactError(f"{model_dir}: no such model directory")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; is {model_dir} a revsent model directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        found = raw.get("format_version") if isinstance(raw, dict) else None
        raise ArtifactError(f"{path}: model format {found!r} is not supported (this revsent reads format {FORMAT_VERSION})")
    for key in ("format_version", "preprocessing", "versions"):
        raw.pop(key, None)
    return raw


def read_metrics(model_dir: str | Path) -> dict:
    """metrics.json of a model directory (empty where there is none, or it is unreadable)."""
    try:
        record = json.loads((Path(model_dir) / METRICS).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def is_language_model(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds a language model (``revsent pretrain``) rather than a classifier."""
    try:
        return json.loads((Path(model_dir) / CONFIG).read_text(encoding="utf-8")).get("kind") == LM_KIND
    except (OSError, ValueError, AttributeError):
        return False


def _config_of(raw: dict, path: Path) -> Config:
    try:
        return Config.from_dict(raw)
    except ConfigError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def read_config(model_dir: str | Path) -> tuple[Config, list[str]]:
    """A classifier's config and classes; a language model is refused, saying what it is for."""
    raw, path = _raw_config(model_dir), Path(model_dir) / CONFIG
    if raw.get("kind") == LM_KIND:
        raise ArtifactError(f"{model_dir}: is a language model (made by `revsent pretrain`), not a classifier; train "
                            f"one from it: `revsent train DATA --init-from {model_dir} --out MODEL`")
    classes = raw.pop("classes", None)
    if not isinstance(classes, list) or len(classes) < 2:
        raise ArtifactError(f"{path}: 'classes' must list at least two class names")
    return _config_of(raw, path), [str(c) for c in classes]


def read_lm_config(model_dir: str | Path) -> Config:
    """A language model's config; a classifier is refused, saying what a language model is."""
    raw, path = _raw_config(model_dir), Path(model_dir) / CONFIG
    if raw.pop("kind", None) != LM_KIND:
        raise ArtifactError(f"{model_dir}: is a classifier, not a language model; make one with "
                            "`revsent pretrain TEXTS --out LM`")
    return _config_of(raw, path)


def load_encoder(model_dir: str | Path, cfg: Config) -> TextEncoder:
    """The tokenizer of a model directory, checked against its config."""
    tok_path, m = Path(model_dir) / TOKENIZER, cfg.model
    try:
        encoder = TextEncoder.from_str_config(tok_path.read_text(encoding="utf-8"), m)
    except FileNotFoundError:
        raise ArtifactError(f"{tok_path}: missing") from None
    except ValueError as exc:  # bad JSON, or not a word-level tokenizer file
        raise ArtifactError(f"{tok_path}: corrupt tokenizer ({str(exc).splitlines()[0]})") from None
    top = encoder.largest_id  # a max over the vocabulary: once
    if any(not isinstance(i, int) or i < 0 for i in encoder.vocab.values()):
        raise ArtifactError(f"{tok_path}: holds negative or non-integer token ids; the file is damaged")
    if top is None or top >= m.vocab_size:
        raise ArtifactError(f"{tok_path}: its ids do not fit config.json's vocab_size {m.vocab_size}; "
                            "the tokenizer belongs to another model")
    return encoder


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, types, shapes and bytes in name order: what a weights file holds,
    whatever the layout safetensors gave it. Saved in the file's header, checked on load."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{list(tensors[name].shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()


def _header(weights_path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Each tensor's shape and the file's metadata, from the safetensors header alone (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(weights_path, "pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights_path}: corrupt or truncated ({exc})") from None


def check_checksums(model_dir: Path, metadata: dict[str, str], state: dict[str, torch.Tensor]) -> None:
    """The weights and the tokenizer are what was saved: their SHA-256 digests, written in the weights'
    header when the model was saved, agree (models saved before there were digests have none to check)."""
    weights, tokenizer = model_dir / WEIGHTS, model_dir / TOKENIZER
    if "sha256" in metadata and tensors_digest(state) != metadata["sha256"]:
        raise ArtifactError(f"{weights}: its tensors differ from the checksum saved with them (the file was edited "
                            "or damaged); restore it from a copy or train again")
    if "tokenizer_sha256" in metadata and hashlib.sha256(tokenizer.read_bytes()).hexdigest() != metadata["tokenizer_sha256"]:
        raise ArtifactError(f"{tokenizer}: differs from the tokenizer this model was saved with (checksum in {WEIGHTS}); "
                            "restore it from a copy or train again")


def check_sizes(weights_path: Path, cfg: Config, n_classes: int) -> tuple[int | None, dict[str, str]]:
    """That config.json's sizes are those of the weights, checked on an unallocated model (PyTorch's
    meta device) so that a damaged or tampered config cannot ask for terabytes; the embedding's rows
    (the words the model learnt, which the weights decide) and the file's metadata."""
    import torch

    from .model import SentimentLSTM

    header, metadata = _header(weights_path)
    rows = next((shape[0] for name, shape in header.items() if name.endswith("embedding.weight")), None)
    try:
        with torch.device("meta"):
            expected = SentimentLSTM(cfg.model, n_classes, rows).state_dict()
    except (RuntimeError, ValueError, OverflowError) as exc:
        raise ArtifactError(f"{weights_path.parent / CONFIG}: sizes no model can have ({str(exc).splitlines()[0]})") from None
    for name, tensor in expected.items():
        saved = header.get(name, header.get(name.removeprefix("readers.0.")))  # (weights of one reader, before bags)
        if name.startswith(("wide_", "mix", "threshold")) or saved is None:
            continue  # sized by the training data, or filled in for older files (load_state_dict checks the rest)
        if saved != tuple(tensor.shape):
            raise ArtifactError(f"{weights_path}: does not match config.json ({name} is {list(saved)} in the weights, "
                                f"{list(tensor.shape)} by config.json)")
    return rows, metadata


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Config, list[str], TextEncoder, SentimentLSTM]:
    """Rebuild a trained model from its directory alone."""
    from safetensors.torch import load_file

    from .model import SentimentLSTM, loaded_state

    cfg, classes = read_config(model_dir)
    model_dir = Path(model_dir)
    encoder = load_encoder(model_dir, cfg)
    weights_path = model_dir / WEIGHTS
    if not weights_path.exists():
        # a run writes its config first and its weights last: this is one that stopped in between
        raise ArtifactError(f"{model_dir}: not a finished model (no {WEIGHTS}); if its training was interrupted, "
                            f"continue it with `revsent train ... --out {model_dir} --resume`")
    rows, metadata = check_sizes(weights_path, cfg, len(classes))  # before allocating what config.json asks for
    try:
        state = load_file(weights_path, device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights_path}: corrupt or truncated ({exc})") from None
    bad = next((name for name, t in state.items() if t.is_floating_point() and not bool(t.isfinite().all())), None)
    if bad is not None:
        raise ArtifactError(f"{weights_path}: {bad} holds NaN or infinite values; the file is damaged")
    model = SentimentLSTM(cfg.model, len(classes), rows)
    try:
        model.load_state_dict(loaded_state(state))
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ArtifactError(f"{weights_path}: does not match config.json ({first})") from None
    if encoder.largest_id is not None and encoder.largest_id >= model.words:
        raise ArtifactError(f"{weights_path}: its embedding has {model.words} rows, too few for the ids of "
                            f"{model_dir / TOKENIZER}; the tokenizer belongs to another model")
    check_checksums(model_dir, metadata, state)  # last: the checks above say more precisely what is wrong
    model.to(device).eval()
    return cfg, classes, encoder, model


def save_lm(out: str | Path, cfg: Config, encoder: TextEncoder, state: dict[str, torch.Tensor]) -> None:
    """A language model's directory: config.json (``kind``), tokenizer.json, then its weights, last
    (stored as a classifier's are: the embedding in int8 rows, other large tensors in float16)."""
    from .model import stored_state

    out = Path(out)
    atomic_write(out / TOKENIZER, encoder.to_str())
    write_json(out / CONFIG, lm_config_document(cfg))
    stored = stored_state(state)
    atomic_save_tensors(out / WEIGHTS, stored, {"format": "pt", "revsent_format": str(FORMAT_VERSION), "kind": LM_KIND,
                                                "sha256": tensors_digest(stored),
                                                "tokenizer_sha256": hashlib.sha256((out / TOKENIZER).read_bytes()).hexdigest()})


def load_lm(model_dir: str | Path) -> tuple[Config, TextEncoder, dict[str, torch.Tensor]]:
    """A language model's config, tokenizer and weights (float32, on the CPU), each checked as a
    classifier's are: its sizes, finite values and the checksums saved with it."""
    from safetensors.torch import load_file

    from .model import loaded_state

    cfg, model_dir = read_lm_config(model_dir), Path(model_dir)
    encoder = load_encoder(model_dir, cfg)
    weights_path = model_dir / WEIGHTS
    if not weights_path.exists():
        raise ArtifactError(f"{model_dir}: not a finished language model (no {WEIGHTS}); if its training was "
                            f"interrupted, continue it with `revsent pretrain ... --out {model_dir} --resume`")
    header, metadata = _header(weights_path)
    rows = header.get("embedding.weight", (0, 0))
    if tuple(rows[1:]) != (cfg.model.embedding_dim,) or rows[0] <= (encoder.largest_id or 0):
        raise ArtifactError(f"{weights_path}: does not match config.json and tokenizer.json (embedding {list(rows)})")
    try:
        stored = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights_path}: corrupt or truncated ({exc})") from None
    bad = next((name for name, t in stored.items() if t.is_floating_point() and not bool(t.isfinite().all())), None)
    if bad is not None:
        raise ArtifactError(f"{weights_path}: {bad} holds NaN or infinite values; the file is damaged")
    check_checksums(model_dir, metadata, stored)
    return cfg, encoder, {k: v.float() for k, v in loaded_state(stored).items()}
