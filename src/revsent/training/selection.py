"""Choosing on the validation slice at each epoch's end: the epoch's validation figures, the best
weights so far (the epoch's own or, with weight averaging, the mean of the epochs' weights,
whichever has the lower validation loss), and patience (early stopping).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..data.parts import Part
from ..model import SentimentLSTM, class_probabilities
from .distributed import Ranks, from_main
from .regularisers import running_mean, swapped
from .state import FitState


def validate(model: SentimentLSTM, val: Part, weight: torch.Tensor | None, device: torch.device,
             ranks: Ranks) -> tuple[float, float]:
    """Validation loss and accuracy of the model as it is. Rank 0 validates; every rank takes its
    figures, so all make the same decisions."""
    loss = accuracy = 0.0
    if ranks.main:
        proba = class_probabilities(model, val.seqs, device=device)
        loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(proba).clamp_min(1e-12)),
                                            torch.from_numpy(val.y).long(), weight=weight))
        accuracy = float((proba.argmax(1) == val.y).mean())
    loss, accuracy = from_main([loss, accuracy], ranks, device)
    return loss, accuracy


def out_of_patience(state: FitState, patience: int | None) -> bool:
    """Early stopping: ``patience`` epochs in a row without a lower validation loss."""
    return bool(patience) and state.bad_epochs >= patience


class Keeper:
    """The weights a fit returns: the best by validation loss (every epoch's, without a slice).

    ``best`` and ``mean`` (the running mean of the epochs' weights, with ``averaging``) travel in
    checkpoints, so a resumed run chooses as the uninterrupted one would have.
    """

    def __init__(self, model: SentimentLSTM, averaging: bool):
        self.model, self.averaging = model, averaging
        self.best = copy.deepcopy(model.state_dict())
        self.mean: dict[str, torch.Tensor] | None = None

    def snapshot(self) -> None:
        """The model's weights as they are now become the best (before any epoch)."""
        self.best = copy.deepcopy(self.model.state_dict())

    def judge(self, state: FitState, row: dict, val: Part | None, weight: torch.Tensor | None,
              device: torch.device, ranks: Ranks) -> None:
        """Validate the epoch just ended (``state.epoch``), add its figures to ``row``, keep the
        better weights and count an epoch without progress for patience."""
        if val is None or not len(val):
            state.best_epoch = state.epoch
            self.snapshot()
            return
        row["val_loss"], row["val_accuracy"] = validate(self.model, val, weight, device, ranks)
        candidates = [(row["val_loss"], False)]
        if self.averaging:
            self.mean = running_mean(self.mean, self.model, state.epoch)
            if state.epoch > 1:  # the mean of one epoch is that epoch
                with swapped(self.model, self.mean):
                    row["val_loss_mean"], row["val_accuracy_mean"] = validate(self.model, val, weight, device, ranks)
                candidates.append((row["val_loss_mean"], True))
        loss, averaged = min(candidates)
        if loss < state.best_val_loss:
            state.best_val_loss, state.best_epoch, state.averaged, state.bad_epochs = loss, state.epoch, averaged, 0
            self.snapshot()
            if averaged:
                self.best.update({k: v.clone() for k, v in self.mean.items()})
        else:
            state.bad_epochs += 1


def epoch_line(state: FitState, row: dict, seconds: float) -> str:
    """The progress line of an epoch's end (``seconds``: its training time)."""
    line = f"epoch {state.epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
    if "val_loss" not in row:
        return line + f"{seconds:.1f}s"
    mean = (f" | mean of epochs 1-{state.epoch}: val loss {row['val_loss_mean']:.4f} acc {row['val_accuracy_mean']:.4f}"
            if "val_loss_mean" in row else "")
    return (line + f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}{mean} | {seconds:.1f}s, "
            f"{row['reviews_per_s']:.0f} reviews/s")
