"""Where a fit is: the state a checkpoint holds beside the weights, and the figures it chose."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    wide: dict | None = None  # what the n-gram branch's fit chose: its C (on the validation slice) and features

def chosen_figures(state: FitState) -> dict:
    """The validation figures of the weights a fit kept: its best epoch's, or the mean's there."""
    if not state.history or not state.best_epoch:
        return {}
    row = state.history[state.best_epoch - 1]
    if state.averaged:
        return {"val_loss": row.get("val_loss_mean"), "val_accuracy": row.get("val_accuracy_mean")}
    return row