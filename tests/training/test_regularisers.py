"""revsent.training.regularisers: adversarial training's step and weight averaging, alone."""
import numpy as np
import pytest
import torch

from revsent.config import Config
from revsent.model import SentimentLSTM
from revsent.training.regularisers import adversarial_pass, embedded_inputs, running_mean, swapped, uphill

from ..conftest import TINY


def test_running_mean_is_the_mean_of_the_epochs_weights():
    model = SentimentLSTM(Config.from_preset("seed", **TINY).model, 2)
    seen, mean = [], None
    for epoch in (1, 2, 3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * p.requires_grad)
        seen.append({k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad})
        mean = running_mean(mean, model, epoch)
        for k in seen[0]:
            assert torch.allclose(mean[k], torch.stack([s[k] for s in seen]).mean(0), atol=1e-6)
    assert "readers.0.embedding.weight" in mean and not any(k.startswith("wide_") for k in mean)


def test_uphill_is_the_loss_gradient_at_a_fraction_of_each_inputs_norm():
    x = torch.randn(3, 5, 4, requires_grad=True)
    weights = torch.randn(5, 4)
    loss = (x * weights).sum(dim=(1, 2)).pow(2).sum()
    loss.backward()
    step = uphill(x, 0.1)
    for b in range(3):
        assert step[b].norm().item() == pytest.approx(0.1 * x[b].detach().norm().item(), rel=1e-5)
        cosine = torch.nn.functional.cosine_similarity(step[b].flatten(), x.grad[b].flatten(), dim=0)
        assert cosine.item() == pytest.approx(1.0, abs=1e-5)
    moved = ((x.detach() + step) * weights).sum(dim=(1, 2)).pow(2).sum()
    assert moved > loss  # uphill: a small step along the gradient raises the loss


def test_swapped_puts_the_model_s_own_weights_back():
    model = SentimentLSTM(Config.from_preset("seed", **TINY).model, 2)
    own = {k: p.detach().clone() for k, p in model.named_parameters()}
    other = {k: torch.zeros_like(v) for k, v in own.items() if k.endswith("out.weight")}
    with swapped(model, other):
        assert all(torch.equal(dict(model.named_parameters())[k], v) for k, v in other.items())
    assert all(torch.equal(p, own[k]) for k, p in model.named_parameters())


def test_the_adversarial_pass_adds_the_gradient_at_the_moved_inputs():
    """After the first pass recorded the embedded inputs, the second adds the gradient of the loss
    at those inputs moved ``uphill``: the sum of both passes' gradients."""
    from revsent.batching import make_batch
    from revsent.text import Sequences

    torch.manual_seed(0)
    model = SentimentLSTM(Config.from_preset("seed", **TINY).model, 2)
    batch = make_batch(Sequences(np.array([1, 2, 3, 4, 5, 6], dtype=np.int32), np.array([0, 3, 6])), np.arange(2))
    target = torch.tensor([0, 1])
    loss_of = lambda: torch.nn.functional.cross_entropy(model(batch), target, reduction="sum")  # noqa: E731
    grads = lambda: {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}  # noqa: E731
    with embedded_inputs(model, record=True) as inputs:
        first = loss_of()
    first.backward()
    once, steps = grads(), [uphill(x, 0.5).detach() for x in inputs]
    assert len(inputs) == 1 and inputs[0].shape == (2, 3, TINY["embedding_dim"])
    adversarial_pass(model, inputs, 0.5, loss_of)
    both = grads()
    model.zero_grad()
    with embedded_inputs(model, add=steps):
        loss_of().backward()
    second = grads()
    assert any(not torch.allclose(second[k], once[k]) for k in once)
    for k in once:
        torch.testing.assert_close(both[k], once[k] + second[k], atol=1e-6, rtol=1e-5)
