"""LanguageModel: a classifier's encoder trained to predict words (``revsent pretrain``).

The embedding and one LSTM each way, as an LSTM branch of :mod:`revsent.model` has them and under
the same names (``embedding.weight``, ``forward_layers.0.*``, ``backward_layers.0.*``), so that a
classifier starts from them as they are (``train --init-from``). The forward LSTM predicts each
next word of a window of review text, the backward LSTM each previous word; both read the same
embedding, which is also their output layer (tied input and output embeddings).

Regularisation as AWD-LSTM (Merity et al. 2018), each strength a setting: whole words dropped
from the embedding (``word_dropout``), locked dropout on the LSTM's inputs (``dropout``) and
outputs (``lm.output_dropout``), recurrent units dropped for a whole batch (``recurrent_dropout``,
the classifier's DropConnect on the recurrent weights). The softmax over a large vocabulary stays
cheap in training: a sampled softmax over the true word and ``lm.negatives`` words drawn from the
unigram distribution to the power 0.75, shared by the batch, corrected by their log-probability
(Jean et al. 2015); the embedding's gradient is then sparse (the rows a step touched), for
SparseAdam. Perplexity is measured with the full softmax (:meth:`LanguageModel.log_likelihood`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import LMConfig, ModelConfig
from .model import run_lstm

DIRECTIONS = ("forward", "backward")


class LanguageModel(nn.Module):
    """Embedding(V, E) -> LSTM(H) forward and backward -> (a projection to E where H differs) -> the
    tied embedding as the output layer."""

    def __init__(self, cfg: ModelConfig, lm: LMConfig, words: int):
        super().__init__()
        self.cfg, self.lm = cfg, lm
        self.embedding = nn.Embedding(words, cfg.embedding_dim, padding_idx=0)
        self.forward_layers = nn.ModuleList([nn.LSTM(cfg.embedding_dim, cfg.hidden_size)])
        self.backward_layers = nn.ModuleList([nn.LSTM(cfg.embedding_dim, cfg.hidden_size)])
        # the LSTM's states in the embedding's space, where the sizes differ (tied output layer)
        self.project = nn.Linear(cfg.hidden_size, cfg.embedding_dim, bias=False) \
            if cfg.hidden_size != cfg.embedding_dim else None
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.sparse = False  # the embedding's gradient: sparse rows (SparseAdam), or dense (DDP)
        self.log_noise: torch.Tensor | None = None

    def set_noise(self, counts: np.ndarray) -> None:
        """The sampled softmax's noise distribution: the training words' counts to the power 0.75
        (padding never drawn; a word never seen, at the weight of one seen once)."""
        weights = np.maximum(np.asarray(counts, dtype=np.float64), 1.0) ** 0.75
        weights[0] = 0.0
        noise = torch.from_numpy(weights / weights.sum()).float().to(self.embedding.weight.device)
        self.noise, self.log_noise = noise, noise.clamp_min(1e-30).log()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """The sampled-softmax loss of (B, T + 1) token windows, the mean of both directions'."""
        tokens = windows.t()  # (T + 1, B), time-major as the fused LSTMs read it
        sampled = torch.multinomial(self.noise, self.lm.negatives, replacement=True)  # shared by the batch
        losses = [self._sampled_loss(self.states(layers, seq[:-1]), seq[1:], sampled)
                  for layers, seq in ((self.forward_layers, tokens), (self.backward_layers, tokens.flip(0)))]
        return (losses[0] + losses[1]) / 2

    def states(self, layers: nn.ModuleList, tokens: torch.Tensor) -> torch.Tensor:
        """(T, B, E): each position's state in the output embedding's space, regularised while training."""
        x = nn.functional.embedding(tokens, self.embedding.weight, 0, sparse=self.sparse)  # (T, B, E)
        cfg, training = self.cfg, self.training
        if training and cfg.word_dropout:  # whole words, every occurrence in this batch
            keep = 1.0 - cfg.word_dropout
            rows = torch.bernoulli(x.new_full((self.embedding.num_embeddings,), keep)) / keep
            x = x * rows[tokens][..., None]
        x = _locked(x, cfg.dropout if training else 0.0)
        h = run_lstm(layers[0], x, cfg.recurrent_dropout if training else 0.0)  # (T, B, H)
        h = _locked(h, self.lm.output_dropout if training else 0.0)
        return h if self.project is None else self.project(h)

    def _sampled_loss(self, h: torch.Tensor, target: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
        h, y = h.reshape(-1, h.shape[-1]), target.reshape(-1)  # (N, E), (N,)
        weight = self.embedding.weight
        true = (h * nn.functional.embedding(y, weight, sparse=self.sparse)).sum(1, keepdim=True)
        noise = h @ nn.functional.embedding(sampled, weight, sparse=self.sparse).t()  # (N, K)
        logits = torch.cat([true.float() - self.log_noise[y][:, None], noise.float() - self.log_noise[sampled][None, :]], 1)
        logits[:, 1:].masked_fill_(sampled[None, :] == y[:, None], float("-inf"))  # the true word drawn as noise
        return -nn.functional.log_softmax(logits, dim=1)[:, 0].mean()

    @torch.no_grad()
    def log_likelihood(self, windows: torch.Tensor, rows: int = 1024) -> tuple[float, float, int]:
        """Summed negative log-likelihood of each direction's predictions over (B, T + 1) windows
        under the full softmax, and how many predictions that is per direction."""
        tokens, weight, sums = windows.t(), self.embedding.weight.float(), []
        for layers, seq in ((self.forward_layers, tokens), (self.backward_layers, tokens.flip(0))):
            h, y = self.states(layers, seq[:-1]).float(), seq[1:]
            h, y = h.reshape(-1, h.shape[-1]), y.reshape(-1)
            sums.append(sum(float(nn.functional.cross_entropy(h[i:i + rows] @ weight.t(), y[i:i + rows],
                                                              reduction="sum"))
                            for i in range(0, len(y), rows)))
        return sums[0], sums[1], int(tokens.shape[1] * (tokens.shape[0] - 1))

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """What a classifier starts from, under an LSTM branch's names (the projection, an output
        layer's part, is not among them)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("project.")}


def _locked(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout with one mask per sequence and feature, the same at every step (T, B, D)."""
    if not p:
        return x
    return x * (torch.bernoulli(x.new_full((1, x.shape[1], x.shape[2]), 1.0 - p)) / (1.0 - p))
