"""What each optimiser step trains, and at what rate: ULMFiT's fine-tuning schedule (Howard & Ruder 2018).

    slanted_triangular(done)        the rate's share when a fraction ``done`` of the run is done
    Schedule.of(model, settings)    a classifier's: each step's rates, and which layers train each epoch

``--schedule stlr``: the slanted triangular rate, rising over the first tenth of the planned
steps from lr / 32 to lr, then falling back to lr / 32 by the last (``constant``: lr throughout).
``--gradual-unfreezing``: the first epoch trains the layers above the encoder alone (the output
and dense layers), each later epoch one more group below them: the LSTM layers from the top
down, the embedding last. A frozen layer still passes gradients down to the inputs (adversarial
training needs them) but is not updated: its gradient is dropped before the optimiser's step.
Both are functions of (epoch, step), so a resumed run takes up the schedule where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainConfig

CUT, RATIO = 0.1, 32  # ULMFiT's: the share of the run spent rising, and the highest rate over the lowest


def slanted_triangular(done: float) -> float:
    """The slanted triangular rate's share of the highest rate, ``done`` (0..1) into the run."""
    p = done / CUT if done < CUT else 1 - (done - CUT) / (1 - CUT)
    return (1 + max(0.0, min(1.0, p)) * (RATIO - 1)) / RATIO


def layer_groups(model: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """The trained parameters of every LSTM reader in the order gradual unfreezing thaws them: the
    layers above the encoder (dense, output), then each LSTM layer (both directions) from the top
    down, then the embedding."""
    groups: dict[tuple[int, int], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = name.split(".", 2)[-1] if name.startswith("readers.") else name
        if part.startswith("embedding."):
            key = (2, 0)
        elif part.startswith(("forward_layers.", "backward_layers.")):
            key = (1, -int(part.split(".")[1]))
        else:
            key = (0, 0)
        groups.setdefault(key, []).append(p)
    return [groups[key] for key in sorted(groups)]


@dataclass(frozen=True)
class Schedule:
    """A classifier's schedule: the rate of each step and the parameters frozen in each epoch."""

    settings: TrainConfig
    groups: list[list[torch.nn.Parameter]]

    @classmethod
    def of(cls, model: torch.nn.Module, settings: TrainConfig) -> "Schedule":
        return cls(settings, layer_groups(model) if settings.gradual_unfreezing else [])

    def rate(self, epoch: int, step: int, steps: int) -> float:
        """The rate's share of lr at step ``step`` (0-based) of ``steps`` in epoch ``epoch`` (0-based)."""
        if self.settings.schedule == "constant":
            return 1.0
        return slanted_triangular((epoch + step / max(1, steps)) / self.settings.epochs)

    def set_rates(self, optimizer: torch.optim.Optimizer, factors: tuple[float, ...], epoch: int, step: int,
                  steps: int) -> None:
        """Each parameter group's rate for this step: lr x its share (``factors``) x the schedule's."""
        share = self.rate(epoch, step, steps)
        for group, factor in zip(optimizer.param_groups, factors):
            group["lr"] = self.settings.lr * factor * share

    def frozen(self, epoch: int) -> list[torch.nn.Parameter]:
        """The parameters not updated in epoch ``epoch`` (0-based): with gradual unfreezing, every
        group below the first ``epoch + 1``."""
        return [p for group in self.groups[epoch + 1:] for p in group]

    def thawing(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) runs whatever the patience: it leaves a group frozen, or is
        the first to train them all (early stopping waits for the whole model to have trained)."""
        return epoch < len(self.groups)

    def describe(self, epoch: int) -> str | None:
        """What an epoch's log line says of the schedule (None: nothing to say)."""
        if not self.groups:
            return None
        thawed = min(epoch + 1, len(self.groups))
        return "all layers train" if thawed == len(self.groups) else f"top {thawed} of {len(self.groups)} layer groups train"
