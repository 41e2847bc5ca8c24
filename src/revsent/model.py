"""SentimentLSTM: Embedding -> LSTM -> pooling over time -> dense layers -> class logits.

A model holds ``members`` such LSTM branches in ``readers`` (one by default; several form a bag,
trained apart by ``training.members.fit_members``) and averages their logits. The name
``readers`` is kept because the weight files name their tensors by it (``readers.0.embedding...``).

Batches are right-padded and every direction of every layer runs as a fused one-layer LSTM over
the padded batch: padding comes after each review, so it never reaches the forward direction's
states at real positions, and the backward direction reads each review reversed within its own
length. The result is exactly what running each review alone would give, at the speed of the
fused kernels (PyTorch's packed-sequence backward on the CPU is quadratic in length).

With ``ngram_buckets`` a wide branch, a logistic regression on TF-IDF word and hashed-bigram
features fitted before the LSTM (``ngrams.py``), adds its log-odds to the LSTM's at prediction:
a product of two experts, one reading word order, one remembering every phrase.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .batching import Batch, inference_order, make_batch
from .config import ModelConfig
from .device import HeapTrimmer
from .ngrams import NgramFeatures, WideTable
from .text import Cut, Sequences

HALF_ABOVE = 1024  # float tensors of more values than this are stored in float16 (the model file's size)
ROW_SCALE = ".row_scale"  # beside an int8 embedding in the file: each row's float32 scale


def as_stored(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as the model file stores it: float16 when it is a large float tensor."""
    return tensor.half() if tensor.is_floating_point() and tensor.numel() > HALF_ABOVE else tensor


def _int8_rows(name: str, tensor: torch.Tensor) -> bool:
    """Whether the file stores ``tensor`` as int8 rows with a scale each: a large embedding (most of
    a model's bytes, one row per word kept; a quarter of float32's size)."""
    return name.endswith("embedding.weight") and tensor.is_floating_point() and tensor.numel() > HALF_ABOVE


def _quantized_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: ``weight`` ≈ q x scale[:, None]; an all-zero row (padding) stays zero."""
    scale = weight.float().abs().amax(dim=1) / 127
    q = torch.round(weight.float() / torch.where(scale > 0, scale, 1)[:, None]).clamp(-127, 127)
    return q.to(torch.int8), scale


def _rows_back(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def stored_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A model's state as its file holds it: large embeddings as int8 rows (each with its scale),
    other large float tensors in float16. Training rounds the model to these before scoring it
    (``round_as_stored``), so the file predicts what metrics.json says."""
    stored = {}
    for name, tensor in state.items():
        if _int8_rows(name, tensor):
            stored[name], stored[name + ROW_SCALE] = _quantized_rows(tensor)
        else:
            stored[name] = as_stored(tensor)
    return stored


def loaded_state(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`stored_state`: int8 rows back to float32 (files without them unchanged)."""
    state = {}
    for name, tensor in stored.items():
        if name.endswith(ROW_SCALE):
            continue
        scale = stored.get(name + ROW_SCALE)
        state[name] = tensor if scale is None else _rows_back(tensor, scale)
    return state


class SentimentLSTM(nn.Module):
    """``cfg.members`` LSTM branches (Embedding -> LSTM -> pooling -> dense -> logits) whose logits
    are averaged, plus the wide branch's. One branch is the tutorial's model; several are a bag,
    each trained apart on its own validation slice (``training.members.fit_members``)."""

    def __init__(self, cfg: ModelConfig, n_classes: int, words: int | None = None, wide_rows: int = 0):
        super().__init__()
        self.cfg = cfg
        self.n_classes = n_classes
        self.readers = nn.ModuleList(LSTMBranch(cfg, n_classes, words) for _ in range(cfg.members))
        if cfg.ngram_buckets:
            self.set_wide(WideTable(np.zeros(wide_rows, np.int64), np.zeros(wide_rows, np.float32), 0.0),
                          np.zeros((wide_rows, n_classes), np.float32), np.zeros(n_classes, np.float32))
        # How the two experts' logits are mixed at prediction, fitted on the validation slice after
        # training (training/calibration.py): LSTM x mix[0] + wide x mix[1]. 1, 1 until then.
        self.register_buffer("mix", torch.ones(2))
        # Two classes: classes[1] from this probability on (--threshold); -1: the most probable class.
        self.register_buffer("threshold", torch.tensor(-1.0))
        self._register_load_state_dict_pre_hook(_saved_layout, with_module=True)

    def set_wide(self, table: WideTable, weight: np.ndarray, bias: np.ndarray) -> None:
        """The wide branch's table, weight (S, C) and bias (C,), on the model's device."""
        device = self.readers[0].out.weight.device
        for name, value in (("wide_keys", table.keys), ("wide_idf", table.idf), ("wide_unseen", table.unseen),
                            ("wide_weight", weight), ("wide_bias", bias)):
            dtype = np.float32
            if name == "wide_keys":  # feature ids: 4 bytes each where they fit
                dtype = np.int32 if NgramFeatures.of(self.cfg).n_features < 1 << 31 else np.int64
            self.register_buffer(name, torch.from_numpy(np.array(value, dtype=dtype)).to(device))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Class logits (B, C) for a right-padded batch: the LSTM's plus, where the batch carries
        n-grams, the wide branch's (as trained; ``calibrated`` mixes them as fitted)."""
        lstm, wide = self.branches(batch)
        return lstm if wide is None else lstm + wide

    def branches(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LSTM branches' mean logits (B, C) and the wide branch's (None without n-grams in the batch)."""
        logits = self.readers[0](batch)  # (B, C)
        if len(self.readers) > 1:
            logits = torch.stack([logits, *(reader(batch) for reader in self.readers[1:])]).mean(dim=0)
        if not (self.cfg.ngram_buckets and batch.ngrams is not None):
            return logits, None
        return logits, self.wide_bias + nn.functional.embedding_bag(
            batch.ngrams, self.wide_weight, batch.ngram_offsets, mode="sum", per_sample_weights=batch.ngram_weights)

    @torch.no_grad()
    def round_as_stored(self) -> "SentimentLSTM":
        """This model's weights rounded as its file stores them (:func:`stored_state`): what is
        calibrated and scored after training is then what is saved and loaded."""
        self.load_state_dict(loaded_state(stored_state(self.state_dict())))  # copied into the tensors in place
        return self

    def table(self) -> WideTable | None:
        """The wide branch's table in NumPy (None without one), for batching."""
        if not self.cfg.ngram_buckets:
            return None
        return WideTable(self.wide_keys.cpu().numpy(), self.wide_idf.cpu().numpy(), float(self.wide_unseen))

    @property
    def decision_threshold(self) -> float | None:
        """The binary decision threshold (None: the most probable class)."""
        value = float(self.threshold)
        return value if value >= 0 else None

    @property
    def words(self) -> int:
        """The embedding's rows: the ids the vocabulary gives."""
        return self.readers[0].embedding.num_embeddings


WIDE_BUFFERS = ("wide_keys", "wide_idf", "wide_unseen", "wide_weight", "wide_bias")


def _sparse_wide(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dense wide idf (F,) and weight (F, C) of the first releases as a sparse table."""
    weight = state.pop("wide_weight").float()
    table = WideTable.dense(state.pop("wide_idf").float().cpu().numpy(), weight.cpu().numpy())
    keys = torch.from_numpy(table.keys).to(weight.device)
    return {"wide_keys": keys, "wide_idf": torch.from_numpy(table.idf).to(weight.device),
            "wide_unseen": torch.tensor(table.unseen, dtype=torch.float32), "wide_weight": weight[keys]}


def _saved_layout(model: SentimentLSTM, state_dict, prefix, *_args) -> None:
    """Saved weights as this model holds them, and this model shaped as they are: the embedding's
    rows and the wide table's are what the training data filled. Weights saved before readers
    existed (``embedding.weight``...) are reader 0's; a dense wide table (the first releases') is
    made sparse."""
    if f"{prefix}wide_weight" in state_dict and f"{prefix}wide_keys" not in state_dict:
        dense = {name: state_dict.pop(f"{prefix}{name}") for name in ("wide_idf", "wide_weight")}
        state_dict.update({f"{prefix}{name}": value for name, value in _sparse_wide(dense).items()})
    state_dict.setdefault(f"{prefix}mix", torch.ones(2))  # saved before calibration: the branches as trained
    state_dict.setdefault(f"{prefix}threshold", torch.tensor(-1.0))  # before --threshold: argmax
    wide = {f"{prefix}{name}" for name in WIDE_BUFFERS} | {f"{prefix}mix", f"{prefix}threshold"}
    for key in [k for k in state_dict if k.startswith(prefix) and k not in wide
                and not k.startswith(f"{prefix}readers.")]:
        state_dict[f"{prefix}readers.0.{key[len(prefix):]}"] = state_dict.pop(key)
    for i, reader in enumerate(model.readers):
        embedding = state_dict.get(f"{prefix}readers.{i}.embedding.weight")
        if embedding is not None and embedding.shape[0] != reader.embedding.num_embeddings:
            reader.embedding = nn.Embedding(embedding.shape[0], reader.embedding.embedding_dim, padding_idx=0)
    keys = state_dict.get(f"{prefix}wide_keys")
    if model.cfg.ngram_buckets and keys is not None and keys.shape != model.wide_keys.shape:
        rows = keys.shape[0]
        model.set_wide(WideTable(np.zeros(rows, np.int64), np.zeros(rows, np.float32), 0.0),
                       np.zeros((rows, model.n_classes), np.float32), np.zeros(model.n_classes, np.float32))


class LSTMBranch(nn.Module):
    """One LSTM branch: Embedding -> LSTM(s) -> pooling over time -> dense layers -> logits (B, C)."""

    def __init__(self, cfg: ModelConfig, n_classes: int, words: int | None = None):
        super().__init__()
        self.cfg = cfg
        directions = 2 if cfg.bidirectional else 1
        self.embedding = nn.Embedding(words or cfg.vocab_size, cfg.embedding_dim, padding_idx=0)  # the ids in use
        sizes = [cfg.embedding_dim] + [cfg.hidden_size * directions] * (cfg.layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, cfg.hidden_size) for size in sizes)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(size, cfg.hidden_size) for size in (sizes if cfg.bidirectional else []))
        width = cfg.hidden_size * directions * (2 if cfg.pooling == "max_mean" else 1)
        layers: list[nn.Module] = []
        for size in cfg.dense:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = size
        self.dense = nn.Sequential(*layers)
        self.out = nn.Linear(width, n_classes)
        if cfg.init == "keras":
            self._keras_init()

    def _keras_init(self) -> None:
        """What Keras starts from: uniform(-0.05, 0.05) embeddings, Glorot-uniform input kernels,
        orthogonal recurrent kernels, zero biases with the forget gate's at 1, and one trainable bias
        vector per LSTM (PyTorch's second, ``bias_hh``, is kept at zero)."""
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        h = self.cfg.hidden_size
        for lstm in [*self.forward_layers, *self.backward_layers]:
            nn.init.xavier_uniform_(lstm.weight_ih_l0)  # fan_in = input size, fan_out = 4h, as Keras' kernel
            nn.init.orthogonal_(lstm.weight_hh_l0)
            nn.init.zeros_(lstm.bias_hh_l0)
            nn.init.zeros_(lstm.bias_ih_l0)
            with torch.no_grad():
                lstm.bias_ih_l0[h: 2 * h] = 1.0  # PyTorch's gate order is i, f, g, o
            lstm.bias_hh_l0.requires_grad_(False)  # Keras has one bias vector: the second stays 0
        for layer in [*self.dense, self.out]:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, batch: Batch) -> torch.Tensor:
        """This reader's logits (B, C) for a right-padded batch."""
        x = self.embedding(batch.tokens)  # (B, T, E)
        if self.training and self.cfg.dropout:
            # One mask per review and feature, the same at every step (Keras' LSTM `dropout`).
            x = x * self._feature_mask(x)
        if self.training and self.cfg.word_dropout:
            # Whole words: every occurrence of a dropped vocabulary word is zero in this batch
            # (AWD-LSTM's embedding dropout), the kept ones scaled up to keep the expected input.
            keep = 1.0 - self.cfg.word_dropout
            x = x * (torch.bernoulli(x.new_full((self.embedding.num_embeddings,), keep)) / keep)[batch.tokens][..., None]
        lengths = batch.lengths.to(x.device)  # (B,)
        steps = torch.arange(x.shape[1], device=x.device)[:, None]  # (T, 1)
        real = steps < lengths[None, :]  # (T, B) real positions
        # Position t of the reversed review: len-1-t inside the review, t in the padding.
        reverse = torch.where(real, lengths[None, :] - 1 - steps, steps)  # (T, B)
        # Time-major from here: the fused LSTMs' own layout, so neither they nor ONNX transpose.
        x = x.transpose(0, 1).contiguous()  # (T, B, E)
        layers = len(self.forward_layers)
        for depth, forward_lstm in enumerate(self.forward_layers):
            if depth:
                x = nn.functional.dropout(torch.cat(parts, dim=2), self.cfg.dropout, self.training)
            parts = [self._run(forward_lstm, x)]  # (T, B, H) per direction
            if self.cfg.bidirectional:
                backward = self._run(self.backward_layers[depth], _take(x, reverse))  # (T, B, H), reversed
                # The pooling reads the last layer's backward states as they come: its maximum and
                # mean are the same in either order, and its state after the whole review is at len-1.
                parts.append(backward if depth == layers - 1 else _take(backward, reverse))
        if self.cfg.pooling == "last":
            at_end = (lengths - 1)[None, :]  # (1, B): the forward state after the last word, the backward after the first
            features = torch.cat([_take(part, at_end)[0] for part in parts], dim=1)  # (B, H * dirs)
        else:
            pooled, on_word = [], real.to(x.dtype)[..., None]  # (T, B, 1): 1 at real positions, 0 in the padding
            if self.cfg.pooling in ("max", "max_mean"):
                # LSTM outputs lie in (-1, 1): 2 less at the padding keeps the maximum on real words,
                # a subtraction where masked_fill(-inf) is a slower Where in ONNX
                pooled += [(part - 2.0 * (1.0 - on_word)).amax(dim=0) for part in parts]  # (B, H) each
            if self.cfg.pooling in ("mean", "max_mean"):
                pooled += [(part * on_word).sum(dim=0) / lengths[:, None].to(x.dtype) for part in parts]
            features = torch.cat(pooled, dim=1)  # (B, H * dirs * k): max fwd, max bwd, mean fwd, mean bwd
        return self.out(self.dense(features))  # (B, C)

    def _feature_mask(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.cfg.dropout
        return torch.bernoulli(x.new_full((x.shape[0], 1, x.shape[2]), keep)) / keep  # (B, 1, E)

    def _run(self, lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
        return run_lstm(lstm, x, self.cfg.recurrent_dropout if self.training else 0.0)


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, recurrent_dropout: float = 0.0) -> torch.Tensor:
    """One fused LSTM layer over (T, B, D), with recurrent dropout (while training, p > 0).

    Keras' `recurrent_dropout` multiplies h(t-1) by one mask per review, the same at every
    step; no fused kernel takes such a mask. Zeroing the matching columns of the recurrent
    weights drops the same units at every step, with one mask per batch instead of per
    review, at the fused kernel's full speed (the language model's weight drop, too).
    """
    p = recurrent_dropout
    if not p:
        return lstm(x)[0]
    weights = dict(lstm.named_parameters())
    w_hh = weights["weight_hh_l0"]  # (4H, H): column j reads unit j of h(t-1)
    keep = torch.bernoulli(w_hh.new_full((1, w_hh.shape[1]), 1.0 - p)) / (1.0 - p)  # (1, H)
    weights["weight_hh_l0"] = w_hh * keep
    return torch.func.functional_call(lstm, weights, (x,))[0]


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index[t, b], b, :]`` for every t, b: (T, B, D) x (T', B) -> (T', B, D).

    One gather of whole rows of the flattened (T * B, D) tensor: ONNX's Gather on axis 0, where
    ``gather`` would need a (T', B, D) index (Expand + GatherElements, a fifth of the graph's time)."""
    steps, batch = x.shape[0], x.shape[1]
    rows = (index * batch + torch.arange(batch, device=x.device)[None, :]).reshape(-1)  # (T' * B,)
    return x.reshape(steps * batch, -1).index_select(0, rows).reshape(index.shape[0], batch, -1)


@torch.no_grad()
def branch_logits(model: SentimentLSTM, seqs: Sequences, batch_size: int = 256,
                  device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Each branch's logits (n, C) in the input order, the LSTM's and the wide branch's (None
    without one); batches sorted by length for speed."""
    device = device or next(model.parameters()).device
    model.eval()
    lstm = np.zeros((len(seqs), model.n_classes), dtype=np.float32)
    wide = np.zeros_like(lstm) if model.cfg.ngram_buckets else None
    table, features, cut = model.table(), NgramFeatures.of(model.cfg), Cut.of(model.cfg)
    trim = HeapTrimmer()
    for index in inference_order(cut.lengths(seqs.lengths), batch_size):
        trim()
        batch = make_batch(seqs, index, table, features, cut=cut).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            deep, linear = model.branches(batch)
        lstm[batch.index] = deep.float().cpu().numpy()
        if linear is not None:
            wide[batch.index] = linear.float().cpu().numpy()
    return lstm, wide


def mixed_probabilities(lstm: np.ndarray, wide: np.ndarray | None, mix) -> np.ndarray:
    """Softmax probabilities (n, C) of the branches' logits scaled by ``mix`` (LSTM, wide)."""
    mix = np.asarray(mix, dtype=np.float64)
    logits = lstm * mix[0] + (0.0 if wide is None else wide * mix[1])
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def class_probabilities(model: SentimentLSTM, seqs: Sequences, batch_size: int = 256,
                        device: torch.device | None = None) -> np.ndarray:
    """Softmax probabilities (n, C) in the input order, the branches mixed as calibrated."""
    return mixed_probabilities(*branch_logits(model, seqs, batch_size, device), model.mix.cpu().numpy())
