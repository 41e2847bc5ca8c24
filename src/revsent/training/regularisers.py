"""The optional parts of a training step and of an epoch's end that regularise the model.

- Adversarial training (Miyato et al. 2017; ``--adversarial``): each batch's reviews again, their
  embedded inputs moved uphill along their loss gradient, a second backward pass.
- Weight averaging (``--average-weights``): the running mean of the trained parameters at the
  epochs' ends, validated beside the epoch's own weights (stochastic weight averaging).
"""
from __future__ import annotations

import contextlib

import torch

from ..model import SentimentLSTM


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

def adversarial_pass(model: SentimentLSTM, inputs: list[torch.Tensor], size: float, loss_of):
    """The second forward and backward pass of adversarial training: ``loss_of()`` (the batch's
    summed loss, scaled as the first pass's) with every recorded embedded input in ``inputs``
    moved uphill by ``size``."""
    with embedded_inputs(model, add=[uphill(x, size) for x in inputs]):
        loss_of().backward()


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
