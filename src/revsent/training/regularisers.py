"""The optional parts of a training step and of an epoch's end that regularise the model.

- Adversarial training (Miyato et al. 2017; ``--adversarial``): each batch's reviews again, their
  embedded inputs moved uphill along their loss gradient, a second backward pass.
- Semi-supervised training (``--unlabelled``): on a batch of unlabelled reviews beside each
  labelled one, virtual adversarial training (Miyato et al. 2017; ``--vat``: the KL divergence of
  the prediction from itself with the embedded inputs moved where it changes most, found by one
  power iteration) and entropy minimisation (``--entropy-weight``; Sachan et al. 2019).
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


XI = 1e-3  # the power iteration's probe, relative to each review's embedded norm (Miyato et al.'s small xi)


def _per_review(size: float, x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``direction`` (B, T, E) scaled, review by review, to ``size`` times the norm of ``x``."""
    norm = lambda v: v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)  # noqa: E731
    return size * norm(x.detach().float()) * direction.float() / norm(direction)


def _kl(clean: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """Summed KL(p || q) of the clean predictions p (fixed) and the moved ones q, logits (B, C)."""
    p = clean.detach().float().log_softmax(1)
    return (p.exp() * (p - moved.float().log_softmax(1))).sum()


def unlabelled_loss(model: SentimentLSTM, forward, vat: float, entropy_weight: float) -> torch.Tensor:
    """The summed semi-supervised loss of one batch of unlabelled reviews: ``forward()`` gives its
    logits (B, C). Entropy of the clean predictions x ``entropy_weight``, plus (``vat`` > 0) the
    KL divergence of the predictions with each embedded input moved ``vat`` of its norm along the
    direction one power iteration finds (a random probe, its KL's gradient)."""
    with embedded_inputs(model, record=True) as inputs:
        clean = forward()
    log_p = clean.float().log_softmax(1)
    loss = -(log_p.exp() * log_p).sum() * entropy_weight
    if not vat:
        return loss
    probes = [_per_review(XI, x, torch.randn_like(x, dtype=torch.float32)).requires_grad_() for x in inputs]
    with embedded_inputs(model, add=[p.to(x.dtype) for p, x in zip(probes, inputs)]):
        grads = torch.autograd.grad(_kl(clean, forward()), probes)
    with embedded_inputs(model, add=[_per_review(vat, x, g).to(x.dtype) for x, g in zip(inputs, grads)]):
        return loss + _kl(clean, forward())


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
