"""Training: data -> vocabulary -> model -> epochs with validation, checkpoints and early stopping.

    revsent.train(config, out)          the whole run, model directory written at the end
    fit(model, ...)                     the plain epoch loop, resumable from a checkpoint
"""
from __future__ import annotations

import copy
import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from . import artifacts
from .batching import make_batch, train_order
from .config import Config
from .device import start_run
from .data import read_labelled, split
from .errors import ArtifactError, ConfigError, DataError
from .evaluate import classification_metrics, plot_confusion, plot_history, tfidf_baseline
from .model import SentimentLSTM, class_probabilities
from .ngrams import fit_linear, out_of_fold_logits
from .progress import Progress
from .text import Sequences, TextEncoder


@dataclass
class FitState:
    """What a checkpoint holds beside the weights: where the run is and what it has seen."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    seconds: float = 0.0


def fit(model: SentimentLSTM, cfg: Config, train_seqs: Sequences, train_y: np.ndarray,
        val_seqs: Sequences | None, val_y: np.ndarray | None, *, device: torch.device,
        progress: Progress, checkpoint: Path | None = None, resume: bool = False) -> FitState:
    """Train ``model`` in place; on return it holds the best weights (by validation loss)."""
    t = cfg.train
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    state = FitState()
    rng = np.random.default_rng(t.seed)
    best_weights = copy.deepcopy(model.state_dict())
    if resume and checkpoint is not None:
        state, best_weights, rng = _load_checkpoint(checkpoint, model, optimizer)
        for group in optimizer.param_groups:  # the settings given now, not the checkpoint's
            group.update(lr=t.lr, weight_decay=t.weight_decay)
        progress.log(f"resuming after epoch {state.epoch} ({checkpoint})")
    elif model.cfg.ngram_buckets:
        started = time.perf_counter()
        idf, weight, bias = fit_linear(train_seqs, train_y, model.out.out_features, model.cfg.vocab_size,
                                       model.cfg.ngram_buckets, model.cfg.ngram_c, t.seed)
        for name, value in (("wide_idf", idf), ("wide_weight", weight), ("wide_bias", bias)):
            getattr(model, name).copy_(torch.from_numpy(value))
        state.seconds += time.perf_counter() - started
        progress.log(f"wide branch: logistic regression on TF-IDF n-grams fitted in {time.perf_counter() - started:.1f}s")
        best_weights = copy.deepcopy(model.state_dict())
    offsets = torch.zeros(len(train_y), model.out.out_features)  # (n, C) added to the LSTM's logits
    if model.cfg.ngram_buckets:
        offsets = torch.from_numpy(out_of_fold_logits(train_seqs, train_y, model.out.out_features, model.cfg.vocab_size,
                                                      model.cfg.ngram_buckets, model.cfg.ngram_c, t.seed))
    loss_fn = nn.CrossEntropyLoss()
    train_y_t = torch.from_numpy(train_y)
    lengths = train_seqs.lengths
    pin = device.type == "cuda"
    while state.epoch < t.epochs and not (t.patience and state.bad_epochs >= t.patience):
        started = time.perf_counter()
        model.train()
        batches = train_order(lengths, t.batch_size, rng)
        total_loss = correct = seen = tokens = 0
        bar = progress.bar(len(batches), f"epoch {state.epoch + 1}/{t.epochs}")
        for index in batches:
            batch = make_batch(train_seqs, index, pin=pin).to(device)  # LSTM only: the wide part is in offsets
            target = train_y_t[batch.index].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch) + offsets[batch.index].to(device)
            loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
            optimizer.step()
            total_loss += loss.item() * len(index)
            correct += (logits.argmax(1) == target).sum().item()
            seen += len(index)
            tokens += int(batch.lengths.sum())
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", rev_s=f"{seen / elapsed:.0f}", refresh=False)
            bar.update()
        bar.close()
        train_seconds = time.perf_counter() - started
        state.epoch += 1
        state.seconds += train_seconds
        row = {"epoch": state.epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
               "seconds": round(train_seconds, 2), "reviews_per_s": round(seen / train_seconds, 1),
               "tokens_per_s": round(tokens / train_seconds, 1)}
        if val_seqs is not None and len(val_seqs):
            proba = class_probabilities(model, val_seqs, device=device)
            val_loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(proba).clamp_min(1e-12)), torch.from_numpy(val_y)))
            row.update(val_loss=val_loss, val_accuracy=float((proba.argmax(1) == val_y).mean()))
            if val_loss < state.best_val_loss:
                state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
                best_weights = copy.deepcopy(model.state_dict())
            else:
                state.bad_epochs += 1
            progress.log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                         f"val loss {val_loss:.4f} acc {row['val_accuracy']:.4f} | {train_seconds:.1f}s, "
                         f"{row['reviews_per_s']:.0f} reviews/s")
        else:
            state.best_epoch, best_weights = state.epoch, copy.deepcopy(model.state_dict())
            progress.log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | {train_seconds:.1f}s")
        state.history.append(row)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, state, best_weights, rng)
    model.load_state_dict(best_weights)
    return state


def _save_checkpoint(path: Path, model, optimizer, state: FitState, best_weights, rng) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_weights.items()})
    optim = optimizer.state_dict()
    for pid, slots in optim["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"state": json.dumps(state.__dict__), "numpy_rng": json.dumps(rng.bit_generator.state),
            "param_groups": json.dumps(optim["param_groups"])}
    artifacts.atomic_save_tensors(path, tensors, meta)


def _load_checkpoint(path: Path, model, optimizer):
    from safetensors import safe_open

    try:
        tensors = load_file(path)
        with safe_open(path, "pt") as handle:
            meta = handle.metadata()
        state = FitState(**json.loads(meta["state"]))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                slots.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
        torch.set_rng_state(tensors["rng.torch"])
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(meta["numpy_rng"])
    except Exception as exc:  # any damage makes the checkpoint unusable; say which file
        raise ArtifactError(f"{path}: unusable checkpoint ({type(exc).__name__}: {exc}); train again without --resume") from None
    return state, best, rng


@dataclass
class TrainResult:
    out: Path
    metrics: dict
    history: list[dict]


def train(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
          progress: Progress | None = None) -> TrainResult:
    """Read data, split it, fit the vocabulary and the model, evaluate and save ``out``."""
    progress = progress or Progress(False)
    out = artifacts.prepare_out(out, resume=resume, force=force)
    if resume:
        saved, _ = artifacts.read_config(out)
        same_split = (saved.train.seed, saved.train.val_split, saved.train.val_data) == \
            (cfg.train.seed, cfg.train.val_split, cfg.train.val_data)
        if saved.model != cfg.model or saved.data != cfg.data or not same_split:
            raise ConfigError(f"{out}: --resume needs the same data, split and model settings as the interrupted run "
                              f"(only training settings such as --epochs may change)")
    started = time.perf_counter()
    device = start_run(cfg.train)
    data = read_labelled(cfg)
    if cfg.train.val_data:
        train_idx, val_idx = np.arange(len(data.texts)), None
        val = read_labelled(cfg, cfg.train.val_data, classes=data.classes)
        val_texts, val_y = val.texts, val.y
    else:
        train_idx, val_idx = split(len(data.texts), cfg.train.val_split, cfg.train.seed)
        val_texts, val_y = [data.texts[i] for i in val_idx], data.y[val_idx]
    train_texts, train_y = [data.texts[i] for i in train_idx], data.y[train_idx]
    if len(np.unique(train_y)) < 2:
        raise DataError(data.source, f"the training split of {len(train_y)} records holds only one class; give more data")
    progress.log(f"{len(train_texts)} training and {len(val_texts)} validation reviews from {data.source}; "
                 f"classes: {', '.join(data.classes)}")
    m = cfg.model
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        encoder = TextEncoder.from_str_config((out / artifacts.TOKENIZER).read_text("utf-8"), m)
    else:
        encoder = TextEncoder.fit_config(train_texts, m)
        artifacts.atomic_write(out / artifacts.TOKENIZER, encoder.to_str())
        artifacts.write_json(out / artifacts.CONFIG, artifacts.config_document(cfg, data.classes))
    train_seqs, val_seqs = encoder.encode(train_texts), encoder.encode(val_texts)
    model = SentimentLSTM(m, len(data.classes)).to(device)
    state = fit(model, cfg, train_seqs, train_y, val_seqs, val_y, device=device, progress=progress,
                checkpoint=out / artifacts.CHECKPOINT, resume=resume)
    proba = class_probabilities(model, val_seqs, device=device)
    metrics = classification_metrics(val_y, proba, data.classes)
    metrics.update({
        "n_train": len(train_texts), "n_val": len(val_texts), "epochs_run": state.epoch,
        "best_epoch": state.best_epoch, "train_seconds": round(state.seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2), "device": device.type,
        "train_tokens": int(train_seqs.lengths.sum()), **data.tally.as_dict(),
    })
    if cfg.train.baseline:
        progress.log("fitting the TF-IDF + logistic regression baseline on the same split")
        metrics["baseline_tfidf_lr"] = tfidf_baseline(train_texts, train_y, val_texts, val_y, data.classes, cfg.train.seed)
    save_run(out, cfg, data.classes, encoder, model, metrics, state.history)
    (out / artifacts.CHECKPOINT).unlink(missing_ok=True)
    return TrainResult(out, metrics, state.history)


def save_run(out: Path, cfg: Config, classes: list[str], encoder: TextEncoder, model: SentimentLSTM,
             metrics: dict, history: list[dict]) -> None:
    """The model directory: weights, config, tokenizer, metrics, history and plots."""
    artifacts.save_model(out, cfg, classes, encoder, model)
    artifacts.write_json(out / artifacts.METRICS, metrics)
    if history:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
        writer.writeheader()
        writer.writerows(history)
        artifacts.atomic_write(out / artifacts.HISTORY, buffer.getvalue())
        if all("val_loss" in row for row in history):
            plot_history(history, out / "training_curves.png")
    plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png")
