"""The training loop: epochs -> batches -> step -> validate -> keep the best.

    fit(model, cfg, train, val)     one model trained in place, resumable from a checkpoint

What can be prepared before the loop is (:mod:`.inputs`); the optional parts of a step and an
epoch are in their own modules: the adversarial pass and weight averaging (:mod:`.regularisers`),
the best weights and patience (:mod:`.selection`), timed checkpoints (:mod:`.checkpoint`).
Under torchrun every rank runs this loop over the whole training set (see :mod:`.distributed`).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..batching import make_batch, token_parts, train_order
from ..config import Config, TrainConfig
from ..data.parts import Part
from ..device import HeapTrimmer, trains_in_bf16
from ..model import SentimentLSTM
from ..ngrams import NgramFeatures, WideTable
from ..progress import Progress
from ..text import Cut, Sequences
from .checkpoint import Clock, load_checkpoint, save_checkpoint
from .distributed import SINGLE, Ranks, dropout_seed, shard, sum_all, wrap
from .inputs import FitInputs, prepare_inputs
from .regularisers import adversarial_pass, embedded_inputs, unlabelled_loss
from .schedule import Schedule
from .selection import Keeper, epoch_line, out_of_patience
from .state import FitState

# Padded positions per forward/backward pass: a bigger batch goes through in parts, so the peak
# memory of training is this bound whatever the longest review of the corpus, at the speed of a
# larger bound (bench/JOURNAL.md). A GPU has the memory for the larger parts.
TRAIN_TOKENS = {"cpu": 1 << 14, "cuda": 1 << 15}


def fit(model: SentimentLSTM, cfg: Config, train: Part, val: Part | None, *, device: torch.device,
        progress: Progress, checkpoint: Path | None = None, resume: bool = False,
        on_epoch: Callable[[int, dict], None] | None = None, ranks: Ranks = SINGLE,
        table: WideTable | None = None, unlabelled: Sequences | None = None) -> FitState:
    """Train ``model`` in place; on return it holds the best weights (by validation loss).

    ``on_epoch(epoch, row)`` sees each epoch's history row (tuning reports and prunes there).
    ``table``: the n-gram branch's features and idf, given (a bag's members share the whole training part's).
    ``unlabelled``: reviews without labels, a batch of them beside each labelled batch (``--unlabelled``).
    """
    settings = cfg.train
    optimizer = adam(model, settings)
    state, rng = FitState(), np.random.default_rng(settings.seed)  # the batch order: the same on every rank
    if ranks.enabled:  # the weights are rank 0's (DDP broadcasts them); dropout masks differ per rank
        torch.manual_seed(dropout_seed(settings.seed, ranks))
    keeper = Keeper(model, averaging=settings.average_weights)
    if resume and checkpoint is not None:
        state, keeper.best, keeper.mean, rng = load_checkpoint(checkpoint, model, optimizer, ranks, device,
                                                               settings.seed)
        for group in optimizer.param_groups:  # the settings given now (the rates: Schedule.set_rates, each step)
            group["weight_decay"] = settings.weight_decay
        progress.log(f"resuming after epoch {state.epoch} ({checkpoint})")
    inputs = prepare_inputs(model, cfg, train, val, fresh=not resume, ranks=ranks, device=device, progress=progress,
                            table=table, wide=state.wide)
    state.seconds, state.wide = state.seconds + inputs.seconds, inputs.wide
    if not resume:
        keeper.snapshot()  # the n-gram branch and the word vectors are part of every epoch's weights
    step = Step(model, optimizer, settings, train, inputs, ranks, device, unlabelled)
    schedule, factors = Schedule.of(model, settings), lr_factors(settings)
    clock, trim = Clock(checkpoint, settings.checkpoint_minutes, ranks, device), HeapTrimmer()
    save = lambda: save_checkpoint(checkpoint, model, optimizer, state, keeper.best, keeper.mean, rng,  # noqa: E731
                                   ranks, device)
    while state.epoch < settings.epochs and (schedule.thawing(state.epoch) or
                                             not out_of_patience(state, settings.patience)):
        batches = epoch_batches(state, rng, step.lengths, settings.batch_size * ranks.world)
        tally = Tally.resumed(state.partial, ranks)
        model.train()
        step.frozen = schedule.frozen(state.epoch)
        thawed = schedule.describe(state.epoch)
        if thawed:
            progress.log(f"epoch {state.epoch + 1}: {thawed} (gradual unfreezing)")
        bar = progress.bar(len(batches), f"epoch {state.epoch + 1}/{settings.epochs}")
        bar.update(state.step)
        for number, global_index in enumerate(batches[state.step:], start=state.step + 1):
            schedule.set_rates(optimizer, factors, state.epoch, number - 1, len(batches))
            tally.add(*step(global_index))
            if tally.seen:  # a rank whose first batch was padding has seen nothing yet
                bar.set_postfix(**tally.postfix(), refresh=False)
            bar.update()
            trim()
            if clock.due(mid_epoch=number < len(batches)):
                state.step, state.partial = number, tally.summed(ranks, device)
                save()
                clock.saved()
        bar.close()
        row, seconds = end_epoch(state, tally, ranks, device)
        keeper.judge(state, row, val, step.weight, device, ranks)
        progress.log(epoch_line(state, row, seconds))
        state.history.append(row)
        if on_epoch is not None:
            on_epoch(state.epoch, row)
        if checkpoint is not None:
            save()
            clock.saved()
    model.load_state_dict(keeper.best)
    return state


ENCODER = ("embedding.", "forward_layers.", "backward_layers.")  # an LSTM branch's encoder, below its pooling


def lr_factors(settings: TrainConfig) -> tuple[float, ...]:
    """Each parameter group's share of ``lr``: the encoder's (``encoder_lr``) and the rest's."""
    return (1.0,) if settings.encoder_lr == 1.0 else (settings.encoder_lr, 1.0)


def adam(model: SentimentLSTM, settings: TrainConfig) -> torch.optim.Optimizer:
    """Adam with Keras' epsilon (PyTorch's default is 1e-8), over the parameters that train (a
    frozen bias is left out). Fused: one kernel over all parameters, where a large embedding made
    Adam's elementwise steps a large share of each batch's time on the CPU. With ``encoder_lr``
    the embedding and LSTMs learn at that share of the rate (ULMFiT's discriminative rates: a
    pretrained encoder changes less than the layers above it)."""
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if settings.encoder_lr == 1.0:
        groups = [{"params": [p for _, p in trained]}]
    else:
        encoder = [p for name, p in trained if name.split(".", 2)[-1].startswith(ENCODER)]
        rest = [p for name, p in trained if not name.split(".", 2)[-1].startswith(ENCODER)]
        groups = [{"params": encoder}, {"params": rest}]
    for group, factor in zip(groups, lr_factors(settings)):
        group["lr"] = settings.lr * factor
    return torch.optim.Adam(groups, lr=settings.lr, weight_decay=settings.weight_decay, eps=1e-7, fused=True)


def epoch_batches(state: FitState, rng: np.random.Generator, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The epoch's global batches of reviews that the LSTM reads ``lengths`` of. Resuming mid-epoch,
    the same order as before the kill (its RNG state is in the checkpoint); the loop then skips
    the batches already done."""
    if state.step:
        rng.bit_generator.state = state.epoch_rng
    state.epoch_rng = rng.bit_generator.state
    return train_order(lengths, batch_size, rng)


def end_epoch(state: FitState, tally: "Tally", ranks: Ranks, device: torch.device) -> tuple[dict, float]:
    """Close the epoch in ``state``: its history row (summed over the ranks) and its training time."""
    state.step, state.partial = 0, {}
    seconds = time.perf_counter() - tally.started
    total_loss, correct, seen, tokens = sum_all([tally.loss, tally.correct, tally.seen, tally.tokens], ranks, device)
    correct, seen, tokens = int(correct), int(seen), int(tokens)
    state.epoch += 1
    state.seconds += seconds
    row = {"epoch": state.epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
           "reviews": seen, "seconds": round(seconds, 2), "reviews_per_s": round(seen / seconds, 1),
           "tokens_per_s": round(tokens / seconds, 1)}
    return row, seconds


@dataclass
class Tally:
    """An epoch's running sums on this rank: loss, correct predictions, reviews, tokens."""

    loss: float
    correct: int
    seen: int
    tokens: int
    started: float  # perf_counter at the epoch's start (earlier by the time done before a resume)

    @classmethod
    def resumed(cls, partial: dict, ranks: Ranks) -> "Tally":
        """A fresh epoch's tally, or that of a checkpoint taken mid-epoch. Its counts are the sums
        over all ranks: rank 0 carries them, the others start from zero."""
        started = time.perf_counter() - partial.get("seconds", 0.0)
        if not partial or not ranks.main:
            return cls(0.0, 0, 0, 0, started)
        return cls(partial["loss"], partial["correct"], partial["seen"], partial["tokens"], started)

    def add(self, loss: float, correct: int, seen: int, tokens: int) -> None:
        self.loss, self.correct = self.loss + loss, self.correct + correct
        self.seen, self.tokens = self.seen + seen, self.tokens + tokens

    def postfix(self) -> dict:
        elapsed = time.perf_counter() - self.started
        return {"loss": f"{self.loss / self.seen:.4f}", "acc": f"{self.correct / self.seen:.4f}",
                "rev_s": f"{self.seen / elapsed:.0f}"}

    def summed(self, ranks: Ranks, device: torch.device) -> dict:
        """What a mid-epoch checkpoint keeps of the epoch: the sums over all ranks (a collective)."""
        sums = sum_all([self.loss, self.correct, self.seen, self.tokens], ranks, device)
        return {"loss": sums[0], "correct": int(sums[1]), "seen": int(sums[2]), "tokens": int(sums[3]),
                "seconds": time.perf_counter() - self.started}


class Step:
    """One optimiser step over a global batch: this rank's share, forward and backward in parts of
    at most ``TRAIN_TOKENS`` padded positions (their gradients summed: the same update in bounded
    memory), the adversarial pass where asked, one clipped Adam update."""

    def __init__(self, model: SentimentLSTM, optimizer: torch.optim.Optimizer, settings: TrainConfig, train: Part,
                 inputs: FitInputs, ranks: Ranks, device: torch.device, unlabelled: Sequences | None = None):
        self.model, self.optimizer, self.settings, self.train, self.inputs = model, optimizer, settings, train, inputs
        self.unlabelled = unlabelled if unlabelled is not None and len(unlabelled) else None
        self.drawn = np.random.default_rng([settings.seed, 1])  # which unlabelled reviews go with each batch
        self.ranks, self.device = ranks, device
        self.cut = Cut.of(model.cfg)
        self.lengths = self.cut.lengths(train.seqs.lengths)  # what the LSTM reads of each review
        self.weight = None if inputs.weights is None else torch.from_numpy(inputs.weights).float()
        self.loss_sum = nn.CrossEntropyLoss(weight=None if self.weight is None else self.weight.to(device),
                                            reduction="sum")
        self.y = torch.from_numpy(train.y)
        self.bf16 = trains_in_bf16(settings.precision, device)
        self.budget = TRAIN_TOKENS.get(device.type, TRAIN_TOKENS["cpu"])
        self.net = wrap(model, ranks, device)
        self.frozen: list[nn.Parameter] = []  # this epoch's (Schedule.frozen)
        if self.unlabelled is not None:  # reviews of like lengths go together, as the labelled batches do
            self.u_lengths = self.cut.lengths(self.unlabelled.lengths)
            self.by_length = np.argsort(self.u_lengths, kind="stable")

    def __call__(self, global_index: np.ndarray) -> tuple[float, int, int, int]:
        """Train on one global batch; this rank's (loss, correct, reviews, tokens) of it."""
        index, padding = shard(global_index, self.ranks)  # this rank's reviews (all of them in one process)
        weights = self.inputs.weights
        total_weight = len(global_index) if weights is None else float(weights[self.train.y[global_index]].sum())
        # DDP averages the ranks' gradients: each rank's share of the global batch's loss, times the world
        scale = 0.0 if padding else self.ranks.world / total_weight
        self.optimizer.zero_grad(set_to_none=True)
        loss = correct = tokens = 0
        parts = token_parts(index, self.lengths, self.budget)
        for k, part in enumerate(parts):
            logits, summed, target, batch = self.backward(part, scale, last=k == len(parts) - 1)
            if not padding:
                loss += summed.item() * len(global_index) / total_weight
                correct += (logits.argmax(1) == target).sum().item()
                tokens += int(batch.lengths.sum())
        if self.unlabelled is not None:
            self.unlabelled_pass(len(global_index))
        for p in self.frozen:  # gradual unfreezing: not updated this epoch (Adam skips a parameter without one)
            p.grad = None
        if self.settings.clip_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_norm)
        self.optimizer.step()
        return loss, correct, 0 if padding else len(index), tokens

    def backward(self, part: np.ndarray, scale: float, last: bool):
        """Forward and backward over one part of the batch (and its adversarial twin)."""
        batch = make_batch(self.train.seqs, part, pin=self.device.type == "cuda", cut=self.cut).to(self.device)
        target = self.y[batch.index].to(self.device, non_blocking=True).long()
        size = self.settings.adversarial
        with self.all_reduced(last and not size):
            with embedded_inputs(self.model, record=bool(size)) as inputs:
                logits, summed = self.loss_of(batch, target)
            (summed * scale).backward()
        if size:  # the same reviews again, each input moved uphill: a second backward pass
            with self.all_reduced(last):
                adversarial_pass(self.model, inputs, size, lambda: self.loss_of(batch, target)[1] * scale)
        return logits, summed, target, batch

    def unlabelled_pass(self, size: int) -> None:
        """As many unlabelled reviews as the batch has, drawn at random: their semi-supervised
        loss's mean, backward (the n-gram branch's logits beside the LSTM's, as it predicts them)."""
        size = min(size, len(self.by_length))
        first = int(self.drawn.integers(0, len(self.by_length) - size + 1))
        index = self.by_length[first: first + size]
        model = self.model
        for part in token_parts(index, self.u_lengths, self.budget):
            batch = make_batch(self.unlabelled, part, model.table(), NgramFeatures.of(model.cfg), cut=self.cut,
                               pin=self.device.type == "cuda").to(self.device)

            def forward(batch=batch):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    return model(batch)

            loss = unlabelled_loss(model, forward, self.settings.vat, self.settings.entropy_weight)
            (loss / len(index)).backward()

    def loss_of(self, batch, target) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits (LSTM + the n-gram branch's out-of-fold offsets) and the summed loss of a batch."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(batch)
            if self.inputs.offsets is not None:
                out = out + self.inputs.offsets[batch.index].to(self.device)
        return out, self.loss_sum(out.float(), target)

    def all_reduced(self, final: bool):
        """Under DDP the gradients are all-reduced once a step, by its final backward pass."""
        return contextlib.nullcontext() if final or not self.ranks.enabled else self.net.no_sync()
