"""What a language model's softmax costs here: tokens/s of one LSTM direction trained as a language
model on IMDB text, for the output layers a pretraining command could use.

    python bench/lm_throughput.py [--vocab 30000,100000] [--steps 30] [--batch 64] [--bptt 70]

The encoder is the default classifier's, one direction (Embedding(V, 128) -> LSTM(128)), trained
on consecutive windows of ``--bptt`` tokens of the bundled sample's reviews, with Adam. Output
layers: the full softmax tied to the embedding; a sampled softmax (negatives shared by the batch,
drawn from the unigram distribution to the power 0.75, with the log-Q correction) tied to it; and
PyTorch's adaptive softmax (cutoffs 2,000 and 10,000, untied); the sampled softmax also with a
sparse embedding gradient (SparseAdam: only the rows a batch touched are updated). Prints one JSON line each: the
training tokens/s after a warm-up, and the hours an epoch over 10M tokens (about the IMDB
training part plus 24,700 unlabelled reviews) would take in both directions.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

EPOCH_TOKENS = 10_000_000


class WindowLM(nn.Module):
    def __init__(self, words: int, head: str, counts: np.ndarray, negatives: int, sparse: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(words, 128, sparse=sparse)  # sparse: only the batch's rows get a gradient
        self.lstm = nn.LSTM(128, 128)
        self.head_kind, self.negatives = head, negatives
        if head == "adaptive":
            self.head = nn.AdaptiveLogSoftmaxWithLoss(128, words, cutoffs=[2000, 10000], div_value=4.0)
        noise = torch.from_numpy(np.maximum(counts, 1).astype(np.float64) ** 0.75)
        self.register_buffer("noise", (noise / noise.sum()).float())

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.lstm(self.embedding(x))[0].reshape(-1, 128)  # (T * B, 128)
        y = y.reshape(-1)
        if self.head_kind == "adaptive":
            return self.head(h, y).loss
        if self.head_kind == "full":
            return nn.functional.cross_entropy(h @ self.embedding.weight.t(), y)
        sampled = torch.multinomial(self.noise, self.negatives, replacement=True)  # shared by the batch
        true = (h * self.embedding(y)).sum(1, keepdim=True) - self.noise[y].log()[:, None]
        noise = h @ self.embedding(sampled).t() - self.noise[sampled].log()[None, :]
        noise = noise.masked_fill(sampled[None, :] == y[:, None], float("-inf"))  # a true word drawn as noise
        return -nn.functional.log_softmax(torch.cat([true, noise], dim=1), dim=1)[:, 0].mean()


def ids_stream(words: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled IMDB sample's reviews as one stream of ids of the ``words`` most frequent words
    (the others as the unknown word), and each id's count."""
    from revsent.config import Config
    from revsent.data import read_labelled
    from revsent.text import TextEncoder

    data = read_labelled(Config.from_preset("seed", paths=("imdb",)))
    encoder = TextEncoder.fit(data.texts, words, oov=True)  # a word not kept is the unknown word, id 1
    stream = encoder.encode_flat(data.texts)[0].astype(np.int64)
    return stream, np.bincount(stream, minlength=encoder.rows)


def measure(stream, counts, head: str, negatives: int, steps: int, batch: int, bptt: int, sparse: bool) -> float:
    torch.manual_seed(0)
    model = WindowLM(len(counts), head, counts, negatives, sparse)
    dense = [p for name, p in model.named_parameters() if not (sparse and name == "embedding.weight")]
    optimizers = [torch.optim.Adam(dense, lr=1e-3)]
    if sparse:  # Adam's moments updated only for the rows the batch touched
        optimizers.append(torch.optim.SparseAdam([model.embedding.weight], lr=1e-3))
    windows = torch.from_numpy(stream[: len(stream) // (bptt + 1) * (bptt + 1)].reshape(-1, bptt + 1))
    rng = np.random.default_rng(0)
    started = None
    for step in range(steps + 5):
        if step == 5:  # after a warm-up
            started = time.perf_counter()
        chunk = windows[rng.choice(len(windows), batch, replace=False)].t()  # (bptt + 1, B)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        model.loss(chunk[:-1], chunk[1:]).backward()
        for optimizer in optimizers:
            optimizer.step()
    return steps * batch * bptt / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="30000,100000")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--bptt", type=int, default=70)
    args = parser.parse_args()
    for words in (int(v) for v in args.vocab.split(",")):
        stream, counts = ids_stream(words)
        for head, negatives, sparse in (("full", 0, False), ("sampled", 1024, False), ("sampled", 1024, True),
                                        ("sampled", 4096, False), ("adaptive", 0, False)):
            rate = measure(stream, counts, head, negatives, args.steps, args.batch, args.bptt, sparse)
            print(json.dumps({"vocab": len(counts), "head": head, "negatives": negatives or None,
                              "embedding": "sparse (SparseAdam)" if sparse else "dense (Adam)",
                              "tokens_per_s": round(rate), "epoch_hours_both_directions":
                              round(2 * EPOCH_TOKENS / rate / 3600, 2)}), flush=True)


if __name__ == "__main__":
    main()
