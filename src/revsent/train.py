"""Training: data -> vocabulary -> model -> epochs with validation, checkpoints and early stopping.

    revsent.train(config, out)          the whole run, model directory written at the end
    fit(model, ...)                     the plain epoch loop, resumable from a checkpoint

With ``train.init_from`` a run starts from a trained model (fine-tuning, :class:`Start`): its
vocabulary, model settings and LSTM weights; the n-gram branch is fitted afresh on the new data.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from . import artifacts, vectors
from .batching import make_batch, token_parts, train_order
from .config import Config, fixed_differences
from .device import HeapTrimmer, start_run, trains_in_bf16
from .distributed import SINGLE, Ranks, broadcast, dropout_seed, finish, from_main, gather, init, shard, sum_all, wrap
from .data import store
from .data.dataset import member_masks
from .errors import ArtifactError, ConfigError, DataError
from .baseline import BASELINE_MAX, tfidf_baseline
from .metrics import classification_metrics
from .plots import plot_confusion, plot_history
from .model import SentimentLSTM, class_probabilities
from .ngrams import Wide, fit_idf, fit_linear, out_of_fold_logits
from .progress import Progress
from .text import Sequences, TextEncoder


# Padded positions per forward/backward pass: a bigger batch goes through in parts. On the CPU
# 16k positions (about 0.2 GB of activations) are reached by a few batches of every corpus, so the
# peak memory of training is that bound, the same at 20k reviews as at 1M, at the same speed as
# 32k (measured side by side, bench/RESULTS.md). A GPU has the memory for the larger parts.
TRAIN_TOKENS = {"cpu": 1 << 14, "cuda": 1 << 15}


@dataclass
class Start:
    """A trained model that a run starts from (``--init-from``): fine-tuning it on new data."""

    path: str
    cfg: Config
    classes: list[str]
    encoder: TextEncoder
    model: SentimentLSTM

    @classmethod
    def load(cls, cfg: Config) -> "Start | None":
        """The model ``cfg.train.init_from`` names (None without one), checked against ``cfg``:
        the same fixed model settings (``config.fine_tuning`` makes them so)."""
        path = cfg.train.init_from
        if path is None:
            return None
        source, classes, encoder, model = artifacts.load_model(path)
        differ = fixed_differences(cfg.model, source.model)
        if differ:
            raise ConfigError(f"--init-from {path}: the run's {', '.join(differ)} differ from the model's; a fine-tuning "
                              f"run keeps its vocabulary and weights' settings (config.fine_tuning)")
        return cls(str(path), source, classes, encoder, model)

    def readers(self, classes: list[str]) -> list[dict[str, torch.Tensor]]:
        """Each reader's weights to start from. With other classes than the model's, the output
        layer is left out: it starts afresh."""
        states = [reader.state_dict() for reader in self.model.readers]
        if classes != self.classes:
            states = [{k: v for k, v in state.items() if not k.startswith("out.")} for state in states]
        return states

    def describe(self, classes: list[str]) -> dict:
        """What metrics.json says of it."""
        return {"model": self.path, "data": list(self.cfg.data.paths) or ["imdb"],
                "classes": self.classes, "output_layer": "kept" if classes == self.classes else "new (other classes)"}


def check_held_out(cfg: Config, start: Start | None) -> None:
    """Refuse a test part the started-from model trained on: its figures would not be held out."""
    if start is None:
        return
    source, path = start.cfg, start.path
    learned = _places(source.data.paths)
    for file in cfg.train.test_data:
        if _places([file]) & learned:
            raise ConfigError(f"--test-data {file}: the model of --init-from {path} was trained on it, so its figures "
                              f"would not be held out")
    same_split = (source.train.test_data, source.train.test_split, source.train.seed) == \
                 (cfg.train.test_data, cfg.train.test_split, cfg.train.seed)
    if not cfg.train.test_data and _places(cfg.data.paths) & learned and not same_split:
        theirs = (f"its test part was --test-data {', '.join(source.train.test_data)}" if source.train.test_data
                  else f"seed {source.train.seed}, test split {source.train.test_split}")
        raise ConfigError(f"--init-from {path}: that model was trained on this data with another split ({theirs}), "
                          f"so part of this run's test part trained it; use the same split, or --test-data")


def _places(paths) -> set[str]:
    """Data paths as comparable strings (no paths: the bundled IMDB sample)."""
    return {str(Path(p).resolve()) if Path(p).exists() else p for p in (paths or ("imdb",))}


@dataclass
class FitState:
    """What a checkpoint holds beside the weights: where the run is and what it has seen."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    averaged: bool = False  # the best weights are the mean of epochs 1..best_epoch's (--average-weights)
    bad_epochs: int = 0
    seconds: float = 0.0
    step: int = 0  # batches done in the epoch under way (a checkpoint taken mid-epoch)
    epoch_rng: dict | None = None  # the shuffling RNG as that epoch began, to draw its batch order again
    partial: dict = field(default_factory=dict)  # that epoch's running loss, accuracy and counts


def fit(model: SentimentLSTM, cfg: Config, train_seqs: Sequences, train_y: np.ndarray,
        val_seqs: Sequences | None, val_y: np.ndarray | None, *, device: torch.device,
        progress: Progress, checkpoint: Path | None = None, resume: bool = False,
        on_epoch: Callable[[int, dict], None] | None = None, ranks: Ranks = SINGLE,
        idf: np.ndarray | None = None) -> FitState:
    """Train ``model`` in place; on return it holds the best weights (by validation loss).

    ``idf``: the n-gram branch's, given (a bag's members share the whole training part's).

    ``on_epoch(epoch, row)`` sees each epoch's history row (tuning reports and prunes there).
    Under torchrun (``ranks``) every rank calls this with the whole training set; see distributed.py.
    """
    t = cfg.train
    # Keras' epsilon (PyTorch's default is 1e-8); parameters that do not train (a frozen bias) are left out.
    # Fused: one kernel over all parameters, where the default's 100k-word embedding made Adam's
    # elementwise steps a fifth of each batch's time on the CPU (the same update, 4x less time).
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                                 weight_decay=t.weight_decay, eps=1e-7, fused=True)
    bf16 = trains_in_bf16(t.precision, device)
    state = FitState()
    rng = np.random.default_rng(t.seed)  # the batch order: the same on every rank
    if ranks.enabled:  # the weights are rank 0's (DDP broadcasts them); dropout masks differ per rank
        torch.manual_seed(dropout_seed(t.seed, ranks))
    best_weights = copy.deepcopy(model.state_dict())
    mean_weights = None  # the running mean of the trained parameters at the epochs' ends (--average-weights)
    if resume and checkpoint is not None:
        state, best_weights, mean_weights, rng = _load_checkpoint(checkpoint, model, optimizer, ranks, device, t.seed)
        for group in optimizer.param_groups:  # the settings given now, not the checkpoint's
            group.update(lr=t.lr, weight_decay=t.weight_decay)
        progress.log(f"resuming after epoch {state.epoch} ({checkpoint})")
    n_classes = model.n_classes
    weights = class_weights(train_y, n_classes, t.class_weight)
    if model.cfg.ngram_buckets and not resume:
        started = time.perf_counter()
        if ranks.main:  # fitted once, then shared
            idf, weight, bias = fit_linear(train_seqs, train_y, n_classes, Wide.of(model.cfg), model.cfg.ngram_c, t.seed,
                                           weights, idf)
            for name, value in (("wide_idf", idf), ("wide_weight", weight), ("wide_bias", bias)):
                getattr(model, name).copy_(torch.from_numpy(value))
        for name in ("wide_idf", "wide_weight", "wide_bias"):
            getattr(model, name).copy_(broadcast(getattr(model, name), ranks, device))
        state.seconds += time.perf_counter() - started
        progress.log(f"wide branch: logistic regression on TF-IDF n-grams fitted in {time.perf_counter() - started:.1f}s")
        best_weights = copy.deepcopy(model.state_dict())
    if model.cfg.embedding_init == "ppmi" and not resume and t.init_from is None:  # fine-tuning keeps its embedding
        started = time.perf_counter()
        start_from_word_vectors(model, train_seqs, t.seed, ranks, device, progress)
        state.seconds += time.perf_counter() - started
        best_weights = copy.deepcopy(model.state_dict())
    offsets = None  # (n, C) added to the LSTM's logits: the wide branch's out-of-fold log-odds
    if model.cfg.ngram_buckets:
        offsets = torch.zeros(len(train_y), n_classes)
        if ranks.main:
            offsets = torch.from_numpy(out_of_fold_logits(train_seqs, train_y, n_classes, Wide.of(model.cfg),
                                                          model.cfg.ngram_c, t.seed, class_weights=weights))
        offsets = broadcast(offsets, ranks, device)
    weight_t = None if weights is None else torch.from_numpy(weights).float()
    loss_sum = nn.CrossEntropyLoss(weight=None if weight_t is None else weight_t.to(device), reduction="sum")
    train_y_t = torch.from_numpy(train_y)
    lengths = train_seqs.lengths
    pin = device.type == "cuda"
    budget = TRAIN_TOKENS.get(device.type, TRAIN_TOKENS["cpu"])
    net = wrap(model, ranks, device)

    def batch_loss(batch, target) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits (LSTM + the wide branch's offsets) and the summed loss of one batch."""
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(batch)
            if offsets is not None:
                out = out + offsets[batch.index].to(device)
        return out, loss_sum(out.float(), target)

    def all_reduced(final: bool):
        """Under DDP the gradients are all-reduced once a step, by its final backward pass."""
        return contextlib.nullcontext() if final or not ranks.enabled else net.no_sync()

    saved_at, trim = time.perf_counter(), HeapTrimmer()
    while state.epoch < t.epochs and not (t.patience and state.bad_epochs >= t.patience):
        if state.step:  # resuming mid-epoch: the same batch order, less the batches already done
            rng.bit_generator.state = state.epoch_rng
        state.epoch_rng = rng.bit_generator.state
        batches = train_order(lengths, t.batch_size * ranks.world, rng)  # global batches
        partial = state.partial or {"loss": 0.0, "correct": 0, "seen": 0, "tokens": 0, "seconds": 0.0}
        started = time.perf_counter() - partial["seconds"]
        if not ranks.main:  # a checkpoint's counts are the sums over all ranks: rank 0 carries them
            partial = {"loss": 0.0, "correct": 0, "seen": 0, "tokens": 0}
        total_loss, correct, seen, tokens = partial["loss"], partial["correct"], partial["seen"], partial["tokens"]
        model.train()
        bar = progress.bar(len(batches), f"epoch {state.epoch + 1}/{t.epochs}")
        bar.update(state.step)
        for step, global_index in enumerate(batches[state.step:], start=state.step + 1):
            index, padding = shard(global_index, ranks)  # this rank's reviews (all of them in one process)
            total_weight = len(global_index) if weights is None else float(weights[train_y[global_index]].sum())
            # DDP averages the ranks' gradients: each rank's share of the global batch's loss, times the world
            scale = 0.0 if padding else ranks.world / total_weight
            optimizer.zero_grad(set_to_none=True)
            # A batch of long reviews goes through in parts of at most budget padded positions,
            # their gradients summed: the same update, in memory bounded by the budget rather than
            # by the longest review of the corpus.
            parts = token_parts(index, lengths, budget)
            for k, part in enumerate(parts):
                batch = make_batch(train_seqs, part, pin=pin).to(device)  # LSTM only: the wide part is in offsets
                target = train_y_t[batch.index].to(device, non_blocking=True).long()
                last = k == len(parts) - 1
                with all_reduced(last and not t.adversarial):
                    with embedded_inputs(model, record=bool(t.adversarial)) as inputs:
                        logits, summed = batch_loss(batch, target)
                    (summed * scale).backward()
                if t.adversarial:  # the same reviews again, each input moved uphill: a second backward pass
                    with all_reduced(last), embedded_inputs(model, add=[uphill(x, t.adversarial) for x in inputs]):
                        _, adversarial_loss = batch_loss(batch, target)
                        (adversarial_loss * scale).backward()
                if not padding:
                    total_loss += summed.item() * len(global_index) / total_weight
                    correct += (logits.argmax(1) == target).sum().item()
                    tokens += int(batch.lengths.sum())
            if t.clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
            optimizer.step()
            seen += 0 if padding else len(index)
            elapsed = time.perf_counter() - started
            if seen:  # a rank whose first batch was padding has seen nothing yet
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", rev_s=f"{seen / elapsed:.0f}",
                                refresh=False)
            bar.update()
            trim()
            due = checkpoint is not None and step < len(batches) and time.perf_counter() - saved_at >= t.checkpoint_minutes * 60
            if ranks.enabled:  # rank 0's clock decides for all: saving is a collective (every rank's RNG)
                due = bool(from_main([float(due)], ranks, device)[0])
            if due:
                sums = sum_all([total_loss, correct, seen, tokens], ranks, device)
                state.step, state.partial = step, {"loss": sums[0], "correct": int(sums[1]), "seen": int(sums[2]),
                                                   "tokens": int(sums[3]), "seconds": elapsed}
                _save_checkpoint(checkpoint, model, optimizer, state, best_weights, mean_weights, rng, ranks, device)
                saved_at = time.perf_counter()
        bar.close()
        state.step, state.partial = 0, {}
        train_seconds = time.perf_counter() - started
        total_loss, correct, seen, tokens = sum_all([total_loss, correct, seen, tokens], ranks, device)
        correct, seen, tokens = int(correct), int(seen), int(tokens)
        state.epoch += 1
        state.seconds += train_seconds
        row = {"epoch": state.epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
               "reviews": seen, "seconds": round(train_seconds, 2), "reviews_per_s": round(seen / train_seconds, 1),
               "tokens_per_s": round(tokens / train_seconds, 1)}
        if val_seqs is not None and len(val_seqs):
            val_loss, val_accuracy = _validate(model, val_seqs, val_y, weight_t, device, ranks)
            row.update(val_loss=val_loss, val_accuracy=val_accuracy)
            candidates = [(val_loss, False)]
            if t.average_weights:
                mean_weights = running_mean(mean_weights, model, state.epoch)
                if state.epoch > 1:  # the mean of one epoch is that epoch
                    with swapped(model, mean_weights):
                        mean_loss, mean_accuracy = _validate(model, val_seqs, val_y, weight_t, device, ranks)
                    row.update(val_loss_mean=mean_loss, val_accuracy_mean=mean_accuracy)
                    candidates.append((mean_loss, True))
            loss, averaged = min(candidates)
            if loss < state.best_val_loss:
                state.best_val_loss, state.best_epoch, state.averaged, state.bad_epochs = loss, state.epoch, averaged, 0
                best_weights = copy.deepcopy(model.state_dict())
                if averaged:
                    best_weights.update({k: v.clone() for k, v in mean_weights.items()})
            else:
                state.bad_epochs += 1
            mean = (f" | mean of epochs 1-{state.epoch}: val loss {row['val_loss_mean']:.4f} acc {row['val_accuracy_mean']:.4f}"
                    if "val_loss_mean" in row else "")
            progress.log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                         f"val loss {val_loss:.4f} acc {row['val_accuracy']:.4f}{mean} | {train_seconds:.1f}s, "
                         f"{row['reviews_per_s']:.0f} reviews/s")
        else:
            state.best_epoch, best_weights = state.epoch, copy.deepcopy(model.state_dict())
            progress.log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | {train_seconds:.1f}s")
        state.history.append(row)
        if on_epoch is not None:
            on_epoch(state.epoch, row)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, state, best_weights, mean_weights, rng, ranks, device)
            saved_at = time.perf_counter()
    model.load_state_dict(best_weights)
    return state


@contextlib.contextmanager
def embedded_inputs(model: SentimentLSTM, record: bool = False, add: list[torch.Tensor] | None = None):
    """Within: with ``record``, each reader's embedded input (B, T, E) of the next forward pass,
    kept with its gradient (the list yielded); with ``add``, those tensors added to them."""
    inputs: list[torch.Tensor] = []

    def hook(index: int):
        def change(_module, _args, out):
            if add is not None:
                return out + add[index]
            out.retain_grad()
            inputs.append(out)
        return change

    handles = ([reader.embedding.register_forward_hook(hook(i)) for i, reader in enumerate(model.readers)]
               if record or add is not None else [])
    try:
        yield inputs
    finally:
        for handle in handles:
            handle.remove()


def uphill(x: torch.Tensor, size: float) -> torch.Tensor:
    """Adversarial training's step (Miyato et al. 2017): for each review, the direction of its
    loss gradient at its embedded input ``x`` (B, T, E), at ``size`` times that input's norm (a
    size relative to the embedding's scale, which training is free to grow)."""
    g = x.grad.detach().float()
    norm = lambda v: v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)  # noqa: E731
    return (size * norm(x.detach().float()) * g / norm(g)).to(x.dtype)


def start_from_word_vectors(model: SentimentLSTM, seqs: Sequences, seed: int, ranks: Ranks, device: torch.device,
                            progress: Progress) -> None:
    """Every reader's embedding starts from PPMI + SVD vectors of ``seqs`` (rank 0 counts, then shares)."""
    cfg = model.cfg
    rows = min(vectors.WORDS, cfg.vocab_size)
    table = torch.zeros(rows, cfg.embedding_dim)
    found = torch.zeros(1)
    if ranks.main:
        words, counted = vectors.ppmi_vectors(seqs, cfg.vocab_size, cfg.embedding_dim, seed)
        if words is not None:
            table, found = torch.from_numpy(words), torch.ones(1)
            progress.log(f"word vectors: PPMI + SVD of the {counted['words']} most frequent words' neighbours "
                         f"({counted['pairs']} pairs) in {counted['seconds']:.1f}s")
        else:
            progress.log("word vectors: too few words to factor; the embedding starts at random")
    if broadcast(found, ranks, device).item():
        table = broadcast(table, ranks, device)
        with torch.no_grad():
            for reader in model.readers:
                reader.embedding.weight[:rows].copy_(table.to(reader.embedding.weight.device))


def _validate(model: SentimentLSTM, seqs: Sequences, y: np.ndarray, weight: torch.Tensor | None,
              device: torch.device, ranks: Ranks) -> tuple[float, float]:
    """Validation loss and accuracy of the model as it is. Rank 0 validates; every rank takes its
    figures, so all make the same decisions."""
    loss = accuracy = 0.0
    if ranks.main:
        proba = class_probabilities(model, seqs, device=device)
        loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(proba).clamp_min(1e-12)),
                                            torch.from_numpy(y).long(), weight=weight))
        accuracy = float((proba.argmax(1) == y).mean())
    loss, accuracy = from_main([loss, accuracy], ranks, device)
    return loss, accuracy


def running_mean(mean: dict[str, torch.Tensor] | None, model: SentimentLSTM, epoch: int) -> dict[str, torch.Tensor]:
    """The mean of the trained parameters over epochs 1..``epoch``, given that over 1..``epoch - 1``
    (stochastic weight averaging at the epochs' ends). Frozen weights and buffers never change."""
    with torch.no_grad():
        params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
        if mean is None or epoch == 1:
            return {k: p.clone() for k, p in params.items()}
        for k, p in params.items():
            mean[k] += (p - mean[k]) / epoch
        return mean


@contextlib.contextmanager
def swapped(model: SentimentLSTM, weights: dict[str, torch.Tensor]):
    """The model with some parameters replaced by ``weights`` for the ``with`` block; then its own again."""
    params = dict(model.named_parameters())
    own = {k: params[k].detach().clone() for k in weights}
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v)
    try:
        yield model
    finally:
        with torch.no_grad():
            for k, v in own.items():
                params[k].copy_(v)


def class_weights(y: np.ndarray, n_classes: int, scheme: str | None) -> np.ndarray | None:
    """Per-class loss weights: None, or ``balanced`` as scikit-learn's ``n / (k * count)``."""
    if scheme is None:
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0).astype(np.float32)


def fit_members(cfg: Config, n_classes: int, seqs: Sequences, y: np.ndarray, masks: list[np.ndarray], *,
                device: torch.device, progress: Progress, out: Path | None = None, resume: bool = False,
                val: tuple[Sequences, np.ndarray] | None = None, ranks: Ranks = SINGLE,
                start: list[dict[str, torch.Tensor]] | None = None) -> tuple[SentimentLSTM, list[FitState]]:
    """The model of ``cfg``: ``cfg.model.members`` readers, each trained apart by :func:`fit`.

    Member i trains on the rows of ``seqs`` its mask (``member_masks``) leaves out, is validated
    on the rows it marks (or on ``val``), at seed + i. Early stopping runs on member 0, whose best
    epoch is then the most epochs the others run (each keeps its best on its own slice): the
    epochs past the best that patience costs are spent once, not once per member. One member is
    the model itself. Several are averaged (a bag): their n-gram branches share one idf, that of
    all of ``seqs`` (no labels are read for it), so the bag's logits, the mean of its readers'
    plus the mean of their n-gram branches, are exactly the mean of its members' logits. With
    ``out``, checkpoints go there and each finished member is kept in ``out/.members`` until the
    run ends, so that ``resume`` goes on from them. ``start`` (``Start.readers``): the weights each
    member's reader starts from (fine-tuning); what they leave out keeps its fresh initialisation.
    """
    k, t = cfg.model.members, cfg.train
    members, states = [], []
    wide = Wide.of(cfg.model)
    idf = fit_idf(seqs, wide) if k > 1 and wide is not None and wide.weighting == "tfidf" else None
    kept = None if out is None else out / artifacts.MEMBERS
    for i, in_val in enumerate(masks[:k]):
        member_cfg = cfg.with_settings(members=1, seed=t.seed + i)
        if i:  # member 0 starts from the run's seed, as a single model does
            torch.manual_seed(member_cfg.train.seed)
            if t.patience and states[0].best_epoch:  # member 0 found how long to train: no epochs spent to find it again
                member_cfg = member_cfg.with_settings(epochs=states[0].best_epoch)
        member = SentimentLSTM(member_cfg.model, n_classes)
        if start is not None:
            member.readers[0].load_state_dict(start[i], strict=False)
        member.to(device)
        done = None if kept is None else kept / f"member{i}.safetensors"
        if k > 1:
            progress.log(f"member {i + 1} of {k}: {int((in_val == 0).sum())} training, "
                         f"{int(in_val.sum()) if val is None else len(val[1])} validation reviews, seed {member_cfg.train.seed}")
        if resume and done is not None and done.exists():
            state = _load_member(done, member, device)
            progress.log(f"member {i + 1}: finished before, taken from {done}")
        else:
            fit_rows, val_rows = np.flatnonzero(in_val == 0), np.flatnonzero(in_val)
            member_val = val if val is not None else (seqs.take(val_rows), y[val_rows].astype(np.int64))
            checkpoint = None if out is None else out / artifacts.CHECKPOINT
            under_way = resume and checkpoint is not None and checkpoint.exists()  # this member's, half done
            state = fit(member, member_cfg, seqs.take(fit_rows), y[fit_rows], *member_val, device=device,
                        progress=progress, checkpoint=checkpoint, resume=under_way, ranks=ranks, idf=idf)
            if done is not None and k > 1 and ranks.main:
                done.parent.mkdir(exist_ok=True)
                artifacts.atomic_save_tensors(done, member.state_dict(), {"state": json.dumps(state.__dict__)})
                checkpoint.unlink(missing_ok=True)  # the next member's checkpoint starts afresh
        members.append(member)
        states.append(state)
    if k == 1:
        return members[0], states
    model = SentimentLSTM(cfg.model, n_classes).to(device)
    for reader, member in zip(model.readers, members):
        reader.load_state_dict(member.readers[0].state_dict())
    if wide is not None:  # one linear branch: the mean of the members' (their idf is the same)
        for name in ("wide_idf", "wide_weight", "wide_bias"):
            getattr(model, name).copy_(torch.stack([getattr(member, name) for member in members]).mean(dim=0))
    return model, states


def _load_member(path: Path, member: SentimentLSTM, device: torch.device) -> FitState:
    from safetensors import safe_open

    try:
        member.load_state_dict(load_file(path, device=str(device)))
        with safe_open(path, "pt") as handle:
            return FitState(**json.loads(handle.metadata()["state"]))
    except Exception as exc:  # any damage makes the member unusable; say which file
        raise ArtifactError(f"{path}: unusable member ({type(exc).__name__}: {exc}); train again without --resume") from None


def _save_checkpoint(path: Path, model, optimizer, state: FitState, best_weights, mean_weights, rng,
                     ranks: Ranks = SINGLE, device: torch.device = torch.device("cpu")) -> None:
    """Rank 0 writes the checkpoint, with every rank's RNG states (a collective: all ranks call it)."""
    rng_states = gather(torch.get_rng_state(), ranks, device)  # (world, L)
    cuda_states = gather(torch.cuda.get_rng_state(device), ranks, device) if device.type == "cuda" else None
    if not ranks.main:
        return
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_weights.items()})
    tensors.update({f"mean.{k}": v for k, v in (mean_weights or {}).items()})
    optim = optimizer.state_dict()
    for pid, slots in optim["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = rng_states
    if cuda_states is not None:
        tensors["rng.cuda"] = cuda_states
    meta = {"state": json.dumps(state.__dict__), "numpy_rng": json.dumps(rng.bit_generator.state),
            "param_groups": json.dumps(optim["param_groups"]), "world": str(ranks.world)}
    artifacts.atomic_save_tensors(path, tensors, meta)


def _load_checkpoint(path: Path, model, optimizer, ranks: Ranks = SINGLE, device: torch.device = torch.device("cpu"),
                     seed: int = 0):
    """The run where the checkpoint left it. Each rank takes back its own RNG states; with another
    number of processes than wrote it, only from an epoch's end (fresh dropout streams then; the
    batch order is the shared one), since the batches of an epoch under way were cut for the old one."""
    from safetensors import safe_open

    try:
        tensors = load_file(path)
        with safe_open(path, "pt") as handle:
            meta = handle.metadata()
        state = FitState(**json.loads(meta["state"]))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        mean = {k[5:]: v for k, v in tensors.items() if k.startswith("mean.")} or None
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                slots.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
        rng_states, cuda_states = tensors["rng.torch"], tensors.get("rng.cuda")
        world = int(meta.get("world", 1))
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(meta["numpy_rng"])
    except Exception as exc:  # any damage makes the checkpoint unusable; say which file
        raise ArtifactError(f"{path}: unusable checkpoint ({type(exc).__name__}: {exc}); train again without --resume") from None
    if world == ranks.world:
        # a copy of the row: set_rng_state reads a view's storage from its start, not from the view
        torch.set_rng_state(rng_states.reshape(world, -1)[ranks.rank].clone())
        if cuda_states is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda_states.reshape(world, -1)[ranks.rank].clone(), device)
    elif state.step:
        raise ConfigError(f"{path}: written by {world} process(es) in the middle of epoch {state.epoch + 1}; resume it "
                          f"with {world} (torchrun --nproc-per-node/--nnodes), or it goes on from the last epoch's end "
                          "only when written there")
    else:
        torch.manual_seed(dropout_seed(seed, ranks, state.epoch))
    return state, best, mean, rng


@dataclass
class TrainResult:
    out: Path
    metrics: dict
    history: list[dict]


def train(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
          progress: Progress | None = None) -> TrainResult:
    """Prepare (or open) the data, fit the model on the training split, evaluate and save ``out``.

    Data reaches the model one way only: a prepared dataset. ``cfg.data.paths`` is either one
    dataset directory (``revsent prepare``) or data files, which are prepared into ``out/.dataset``
    first (kept until the run ends, so that ``--resume`` need not read them again).
    """
    progress = progress or Progress(False)
    ranks = Ranks.from_environment()
    if ranks.enabled and not any(store.is_dataset(p) for p in cfg.data.paths):
        raise ConfigError("under torchrun, DATA must be a dataset made by `revsent prepare`, at the same path on every "
                          "machine: every process opens it (memory-mapped)")
    started = time.perf_counter()
    start = Start.load(cfg)  # before --out is touched: a mistake here leaves it as it was
    if start is not None and Path(out).resolve() == Path(start.path).resolve():
        raise ConfigError(f"--out {out} is the model of --init-from; write the fine-tuned model to another directory")
    prepared = any(store.is_dataset(p) for p in cfg.data.paths)
    if not prepared:  # before reading the data; a prepared dataset's split is known once it is open
        check_held_out(cfg, start)
    if not ranks.main:
        progress = Progress(False)
        out = Path(out)
    else:
        out = artifacts.prepare_out(out, resume=resume, force=force)
    ds, cfg = _open_dataset(cfg, out, resume, progress, start)
    if prepared:
        check_held_out(cfg, start)
    if resume and ranks.main:
        saved, _ = artifacts.read_config(out)
        split_of = lambda t: (t.seed, t.test_split, t.test_data, t.val_fraction)  # noqa: E731
        if saved.model != cfg.model or saved.data != cfg.data or split_of(saved.train) != split_of(cfg.train):
            raise ConfigError(f"{out}: --resume needs the same data, split and model settings as the interrupted run "
                              f"(only training settings such as --epochs may change)")
        if saved.train.init_from != cfg.train.init_from:  # its token ids and weights came from that model
            given = f"--init-from {saved.train.init_from}" if saved.train.init_from else "no --init-from"
            raise ConfigError(f"{out}: the interrupted run was started with {given}; resume it the same way")
        if saved.train.average_weights != cfg.train.average_weights:  # the running mean covers every epoch or none
            flag = "--average-weights" if saved.train.average_weights else "--no-average-weights"
            raise ConfigError(f"{out}: the interrupted run was started with {flag}; resume it with {flag}")
    ranks, device = init(start_run(cfg.train))
    try:
        return _train(cfg, out, ds, ranks, device, resume=resume, progress=progress, started=started, start=start)
    finally:
        finish()


def _train(cfg: Config, out: Path, ds: store.Dataset, ranks: Ranks, device: torch.device, *, resume: bool,
           progress: Progress, started: float, start: Start | None = None) -> TrainResult:
    t = cfg.train
    train_rows, test_rows = ds.rows(0), ds.rows(1)
    masks = member_masks(len(train_rows), t.val_fraction, t.seed, cfg.model.members)
    in_val = masks[0]
    fit_rows, val_rows = train_rows[in_val == 0], train_rows[in_val == 1]
    train_seqs, test_seqs = ds.seqs.take(train_rows), ds.seqs.take(test_rows)
    train_y, test_y = ds.y[train_rows], ds.y[test_rows].astype(np.int64)
    fit_y, val_y = ds.y[fit_rows], ds.y[val_rows].astype(np.int64)
    source = ", ".join(cfg.data.paths) or "imdb"
    if len(np.unique(fit_y)) < 2:
        raise DataError(source, f"the training split of {len(fit_y)} records holds only one class; give more data")
    progress.log(f"{len(fit_y)} training, {len(val_y)} validation and {len(test_y)} test reviews from {source}; "
                 f"classes: {', '.join(ds.classes)}")
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
    if ranks.main and not resume:
        artifacts.atomic_write(out / artifacts.TOKENIZER, ds.encoder.to_str())
        artifacts.write_json(out / artifacts.CONFIG, artifacts.config_document(cfg, ds.classes))
    if start is not None:
        progress.log(f"starting from {start.path}: its vocabulary and LSTM weights"
                     + ("" if ds.classes == start.classes else f"; a new output layer for {len(ds.classes)} classes"))
    model, states = fit_members(cfg, len(ds.classes), train_seqs, train_y, masks, device=device, progress=progress,
                                out=out, resume=resume, ranks=ranks,
                                start=None if start is None else start.readers(ds.classes))
    finish(together=True)  # the ranks part here: the rest is rank 0's alone
    history = member_history(states)
    if not ranks.main:  # rank 0 scores the test part and writes the model directory
        return TrainResult(out, {}, history)
    # The test part is scored once, here, with the weights chosen on the validation slice(s).
    proba = class_probabilities(model, test_seqs, device=device)
    metrics = classification_metrics(test_y, proba, ds.classes)
    chosen = [chosen_figures(state) for state in states]
    validation = None
    if len(val_y):
        validation = {"n": len(val_y), "loss": _mean(c.get("val_loss") for c in chosen),
                      "accuracy": _mean(c.get("val_accuracy") for c in chosen),
                      "chosen": "the epoch with the lowest validation loss (early stopping, best epoch)"}
        if t.average_weights:
            validation["chosen"] += ("; or, where its loss was lower, the mean of the weights of epochs 1 to that "
                                     "epoch (--average-weights; see 'averaged')")
        if len(states) > 1:
            validation["chosen"] += (f"; the mean of the {len(states)} members' figures, each on its own slice "
                                     "(the bag as a whole has no slice it did not learn from)")
            validation["members"] = [{"n": int(mask.sum()), "loss": c.get("val_loss"), "accuracy": c.get("val_accuracy")}
                                     for mask, c in zip(masks, chosen)]
    one = len(states) == 1
    metrics.update({
        "scored_on": "test: the held-out part, scored once after training; nothing was chosen on it",
        "n_train": len(fit_y), "n_validation": len(val_y), "n_test": len(test_y), "members": len(states),
        "validation": validation,
        "epochs_run": states[0].epoch if one else [s.epoch for s in states],
        "best_epoch": states[0].best_epoch if one else [s.best_epoch for s in states],
        "averaged": states[0].averaged if one else [s.averaged for s in states],
        "train_seconds": round(sum(s.seconds for s in states), 2),
        "total_seconds": round(time.perf_counter() - started, 2), "device": device.type,
        "precision": "bf16" if trains_in_bf16(t.precision, device) else "fp32", "processes": ranks.world,
        "train_tokens": ds.seqs.take(fit_rows).n_tokens, **ds.manifest["counts"],
        "dataset": {"id": ds.id, "n": ds.manifest["n"], "heldout_digest": store.digest(test_seqs, test_y)},
        "init_from": None if start is None else start.describe(ds.classes),
    })
    weights = class_weights(fit_y, len(ds.classes), t.class_weight)
    if weights is not None:
        metrics["class_weights"] = dict(zip(ds.classes, map(float, weights)))
    if t.baseline:
        progress.log("fitting the TF-IDF + logistic regression baseline on the same split"
                     + (" (C chosen on the validation slice)" if len(val_y) else ""))
        train_texts, test_texts = store.texts_by_part(ds, limit=BASELINE_MAX)
        metrics["baseline_tfidf_lr"] = tfidf_baseline(
            [x for x, v in zip(train_texts, in_val) if not v], fit_y, test_texts, test_y, ds.classes, t.seed,
            val=([x for x, v in zip(train_texts, in_val) if v], val_y) if len(val_y) else None)
        if start is not None:  # revsent also learnt from the started-from model's data; the baseline did not
            metrics["baseline_tfidf_lr"]["trained_on"] = (f"this run's training reviews only, not those of the "
                                                          f"--init-from model ({start.path})")
    save_run(out, cfg, ds.classes, ds.encoder, model, metrics, history)
    (out / artifacts.CHECKPOINT).unlink(missing_ok=True)
    shutil.rmtree(out / artifacts.DATASET, ignore_errors=True)
    shutil.rmtree(out / artifacts.MEMBERS, ignore_errors=True)
    return TrainResult(out, metrics, history)


def chosen_figures(state: FitState) -> dict:
    """The validation figures of the weights a fit kept: its best epoch's, or the mean's there."""
    if not state.history or not state.best_epoch:
        return {}
    row = state.history[state.best_epoch - 1]
    if state.averaged:
        return {"val_loss": row.get("val_loss_mean"), "val_accuracy": row.get("val_accuracy_mean")}
    return row


def member_history(states: list[FitState]) -> list[dict]:
    """The epochs' rows; with several members, each row says whose it is."""
    if len(states) == 1:
        return states[0].history
    return [{"member": i + 1, **row} for i, state in enumerate(states) for row in state.history]


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _open_dataset(cfg: Config, out: Path, resume: bool, progress: Progress,
                  start: Start | None = None) -> tuple[store.Dataset, Config]:
    """The run's dataset, and ``cfg`` with the dataset's own settings where it was prepared already.
    Fine-tuning (``start``), its words are numbered by the started-from model's vocabulary."""
    paths = cfg.data.paths
    if any(store.is_dataset(p) for p in paths):
        if len(paths) > 1:
            raise ConfigError(f"A prepared dataset must be the only DATA; got {', '.join(paths)}.")
        ds = store.Dataset.open(paths[0])
        progress.log(f"dataset {paths[0]}: {ds.manifest['n']} reviews, vocabulary {ds.manifest['tokenizer']['vocab_size']}")
        if start is not None and (ds.model_config(start.cfg.model) != start.cfg.model or ds.encoder.vocab != start.encoder.vocab):
            raise ConfigError(f"{paths[0]}: its vocabulary is not that of --init-from {start.path}; prepare the dataset "
                              f"with `revsent prepare ... --init-from {start.path}`")
        return ds, ds.run_config(cfg)
    cached = out / artifacts.DATASET
    if resume and store.is_dataset(cached):
        try:
            ds = store.Dataset.open(cached)
            if store.prepared_with(ds, cfg):
                return ds, cfg
        except ArtifactError:
            pass
    return store.prepare(cfg, cached, force=True, work_dir=out.parent, progress=progress,
                         encoder=None if start is None else start.encoder), cfg


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
        plot_history(history, out / "training_curves.png")
    plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png")
