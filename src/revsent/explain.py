"""Word-level explanations: which words moved a prediction, and by how much.

    explain(model, encoder, classes, texts) ──► one Explanation per text

The score explained is the predicted class's margin: its logit less the mean of the other
classes' logits (with two classes, the log-odds of the predicted class), the branches scaled as
calibrated (``SentimentLSTM.mix``), so its probabilities and label are predict's. It has two parts:

- the LSTM's, attributed by Captum's ``LayerIntegratedGradients`` over the embedding layer, from
  a baseline of padding (whose embedding is zero) to the review, in eval mode, the lengths passed
  through ``additional_forward_args`` (never interpolated). The attributions sum to the margin's
  change from the baseline, up to the convergence ``delta`` that Captum reports;
- the wide n-gram branch's, exact because that branch is linear: each n-gram's weight times its
  feature value, shared equally among its occurrences and, within one, among its words.

Attributions are given per word of the original text (``Token.text`` is the text's own span),
so that a page can highlight the review as written; words the model never saw (unknown to the
vocabulary, or punctuation) get 0, and words past ``max_len`` only their n-grams' share (the LSTM
reads what the cut leaves, the n-gram branch the whole review).

``explain_reviews`` is the ``revsent explain`` command's library function: a model directory and
texts and/or a file of reviews in, one ``(where, Explanation)`` per review out, in chunks.
"""
from __future__ import annotations

import itertools
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .batching import Batch
from .data.records import Tally
from .errors import DataError
from .model import SentimentLSTM
from .metrics import decide
from .ngrams import NgramFeatures, WideTable, tfidf
from .text import Sequences, TextEncoder, truncate, words

IG_STEPS = 64  # integration steps of integrated gradients
IG_BATCH = 1 << 14  # padded positions per internal forward pass of Captum (bounds memory on long reviews)
_PIECES = re.compile(r"[^\s\[\\\]^_`]+")  # what `words` splits on: white space and the separators it maps to spaces


@dataclass
class Token:
    text: str  # the span of the original text
    start: int  # its character offset
    word: str | None  # the word the model reads there (None: punctuation only)
    attribution: float  # lstm + ngrams: the word's share of the margin
    lstm: float
    ngrams: float
    in_model: bool  # whether the model read this word (known to the vocabulary; within max_len, or an n-gram branch)


@dataclass
class Explanation:
    label: str
    probabilities: dict[str, float]
    margin: float  # the explained score: the predicted class's logit less the mean of the others'
    baseline_margin: float  # the score the attributions start from: the LSTM on padding, plus the wide bias
    delta: float  # completeness error of integrated gradients: sum(lstm) - (LSTM margin - its baseline)
    tokens: list[Token]
    known_words: int  # words of the text the vocabulary knows; 0: the label is the model's prior, not a reading

    def to_dict(self) -> dict:
        return asdict(self)


def _margins(logits: torch.Tensor) -> torch.Tensor:
    """(B, C) logits -> (B, C) margins: each class's logit less the mean of the others'."""
    c = logits.shape[1]
    if c == 1:
        return logits
    return logits - (logits.sum(dim=1, keepdim=True) - logits) / (c - 1)


def explain(model: SentimentLSTM, encoder: TextEncoder, classes: list[str], texts: list[str],
            steps: int = IG_STEPS) -> list[Explanation]:
    """Explain the model's prediction for each of ``texts`` (see the module's docstring)."""
    from captum.attr import LayerIntegratedGradients  # imported here: prediction does not need it

    model.eval()
    device = next(model.parameters()).device
    wide = NgramFeatures.of(model.cfg)
    table = model.table()
    lstm_scale, wide_scale = model.mix.tolist()  # the branches as calibrated (predict's probabilities)
    weight = model.wide_weight.detach().cpu().numpy() * wide_scale if wide else None

    def lstm_margins(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return _margins(model(Batch(tokens, lengths.cpu(), np.arange(len(tokens)))) * lstm_scale)

    # every reader's embedding (a bag has several): the readers' attributions add up per word
    layers = [reader.embedding for reader in model.readers]
    with warnings.catch_warnings():  # its caution is for layers that feed each other; the readers' do not
        warnings.filterwarnings("ignore", message="Multiple layers provided")
        ig = LayerIntegratedGradients(lstm_margins, layers if len(layers) > 1 else layers[0])
    out = []
    known = encoder.known_words(encoder.encode(texts)) if texts else np.zeros(0, np.int64)
    for text, n_known in zip(texts, known.tolist()):
        pieces, positions, whole = _align(encoder, text)
        read, _ = truncate(np.arange(len(whole)), np.array([len(whole)]), model.cfg.max_len, model.cfg.truncate)
        ids = whole[read]  # what the LSTM reads
        grams = np.arange(len(whole)) if wide and wide.whole else read  # what the n-gram branch reads
        n = max(len(ids), 1)  # an empty review is one padding token, as in batches
        tokens = torch.zeros((1, n), dtype=torch.int64)
        tokens[0, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
        tokens = tokens.to(device)
        lengths = torch.tensor([n])
        with torch.no_grad():
            lstm_logits = model(Batch(tokens, lengths, np.zeros(1, np.int64))).float() * lstm_scale
            wide_logits = torch.zeros_like(lstm_logits)
            if wide:
                features, values = _features(whole[grams], wide, table)
                wide_logits = torch.from_numpy(values @ weight[features]).to(lstm_logits)[None] + model.wide_bias * wide_scale
            logits = lstm_logits + wide_logits
            proba = torch.softmax(logits, dim=1)[0].cpu().numpy()
            k = int(decide(proba[None], model.decision_threshold)[0])  # the label predict gives
            baseline = lstm_margins(torch.zeros_like(tokens), lengths).float()[0, k]
        attributions, delta = ig.attribute(tokens, baselines=torch.zeros_like(tokens), target=k,
                                           additional_forward_args=(lengths,), n_steps=steps,
                                           internal_batch_size=max(1, IG_BATCH // n),
                                           return_convergence_delta=True)
        per_reader = attributions if isinstance(attributions, (list, tuple)) else [attributions]
        lstm_part, ngram_part = np.zeros(len(whole)), np.zeros(len(whole))  # by position in the whole review
        lstm_part[read] = sum(a.sum(dim=2)[0, : len(ids)] for a in per_reader).detach().cpu().double().numpy()
        if wide:
            ngram_part[grams] = _wide_shares(whole[grams], features, values, wide, table, weight, k)
        seen = np.zeros(len(whole), dtype=bool)
        seen[read] = seen[grams] = True
        wide_bias = float(_margins(model.wide_bias[None].float() * wide_scale)[0, k]) if wide else 0.0
        margin = float(_margins(logits)[0, k])
        result = []
        for (span, start, word), position in zip(pieces, positions):
            a, b = (float(lstm_part[position]), float(ngram_part[position])) if position >= 0 else (0.0, 0.0)
            result.append(Token(span, start, word, a + b, a, b, position >= 0 and bool(seen[position])))
        out.append(Explanation(classes[k], {c: float(p) for c, p in zip(classes, proba)}, margin,
                               float(baseline) + wide_bias, float(delta.reshape(-1)[0]), result, int(n_known)))
    return out


EXPLAIN_CHUNK = 32  # reviews explained between outputs: a file's first answers come soon, memory stays bounded


def explain_reviews(model_dir, texts: Sequence[str] = (), *, input: str | None = None, threads: int | None = None,
                    steps: int = IG_STEPS, **data_options) -> tuple[Iterator[tuple[dict, Explanation]], Tally | None]:
    """Explain ``texts`` and/or every record of ``input`` (any readable format; ``-``: stdin, one
    review a line) with the model of ``model_dir``, on the CPU.

    Returns the explanations as an iterator of ``(where, explanation)`` in input order, ``where``
    being ``{"index": i}`` for the i-th of ``texts`` and ``{"id": ...}`` (null without an id
    field) for a record of a file, and the file reader's tally (None without a file), complete once
    the iterator is. The model is loaded and the file's first record read before this returns, so
    that a wrong model, file or field is refused before any work. ``data_options`` are DataConfig
    fields for reading ``input`` (``text_field``, ``id_field``, ``skip_bad``...).
    """
    from .artifacts import load_model, read_config
    from .device import set_threads
    from .predict import read_inputs

    if isinstance(texts, str):
        raise DataError("texts", "expected a list of texts, got one string; wrap it in a list")
    texts = list(texts)
    if not texts and input is None:
        raise DataError("input", "nothing to explain: give texts, --input FILE or --input -")
    cfg, _ = read_config(model_dir)
    reader, items = read_inputs(cfg, texts, input, data_options=data_options)
    set_threads(threads)
    _, classes, encoder, model = load_model(model_dir, "cpu")

    def explained() -> Iterator[tuple[dict, Explanation]]:
        for chunk in iter(lambda: list(itertools.islice(items, EXPLAIN_CHUNK)), []):
            for item, explanation in zip(chunk, explain(model, encoder, classes, [i.text for i in chunk], steps)):
                yield ({"index": item.index} if item.index is not None else {"id": item.id}), explanation

    return explained(), reader.tally if reader is not None else None


def _align(encoder: TextEncoder, text: str) -> tuple[list[tuple[str, int, str | None]], list[int], np.ndarray]:
    """The text's pieces (span, offset, word or None), each piece's position in the review's ids
    (-1 where it has none: unknown or punctuation), and those ids."""
    pieces, ids, where = [], [], []
    unknown = 1 if encoder.oov else None
    for match in _PIECES.finditer(text):
        found = words(match.group())
        word = found[0] if found else None
        pieces.append((match.group(), match.start(), word))
        i = encoder._ids.get(word, unknown) if word is not None else None
        where.append(len(ids) if i is not None else -1)
        if i is not None:
            ids.append(i)
    return pieces, where, np.asarray(ids, dtype=np.int64)


def _features(ids: np.ndarray, wide: NgramFeatures, table: WideTable) -> tuple[np.ndarray, np.ndarray]:
    """The wide branch's table rows and values of one review's ``ids``."""
    seqs = Sequences(ids.astype(np.int32), np.array([0, len(ids)], dtype=np.int64))
    features, values, _ = tfidf(seqs, np.zeros(1, np.int64), table, wide)
    return features, values


def _wide_shares(ids: np.ndarray, features: np.ndarray, values: np.ndarray, wide: NgramFeatures, table: WideTable,
                 weight: np.ndarray, k: int) -> np.ndarray:
    """Each position's share of the wide branch's margin for class ``k`` (bias excluded): every
    n-gram's value times its margin weight, split equally among its occurrences and their words."""
    margin_weight = _margins(torch.from_numpy(weight[features]))[:, k].double().numpy()
    contribution = dict(zip(features.tolist(), (values * margin_weight).tolist()))  # by table row
    grams = []  # (feature id, first position, n) of every occurrence
    ids64 = ids.astype(np.int64)
    grams += [(int(f), t, 1) for t, f in enumerate(ids64)]
    if len(ids64) >= 2:
        pairs = wide.extend(ids64[:-1], ids64[1:])
        grams += [(int(f), t, 2) for t, f in enumerate(wide.slot(pairs))]
        if wide.order >= 3 and len(ids64) >= 3:
            grams += [(int(f), t, 3) for t, f in enumerate(wide.slot(wide.extend(pairs[:-1], ids64[2:])))]
    rows, _ = table.lookup(np.array([f for f, _, _ in grams], dtype=np.int64))
    grams = [(int(row), t, n) for row, (_, t, n) in zip(rows, grams)]  # by table row: -1 has no weight
    occurrences = Counter(f for f, _, _ in grams)
    shares = np.zeros(len(ids))
    for f, t, n in grams:
        shares[t: t + n] += contribution.get(f, 0.0) / occurrences[f] / n
    return shares


def render(explanation: Explanation, color: bool = True) -> str:
    """The explanation for a terminal: label and probabilities, then the text with each word
    coloured green (for the label) or red (against), stronger for more weight; without colour,
    each word the model read is followed by its attribution. A text of which the model knows no
    word says so: its label is the model's prior."""
    head = f"{explanation.label}  " + "  ".join(f"{c} {p:.1%}" for c, p in explanation.probabilities.items())
    if explanation.known_words == 0:
        head += "  (no word the model knows: the label is its prior, not a reading)"
    scale = max((abs(t.attribution) for t in explanation.tokens), default=0.0) or 1.0
    out = []
    for token in explanation.tokens:
        if not token.in_model:
            out.append(token.text)
        elif not color:
            out.append(f"{token.text}({token.attribution:+.2f})")
        else:
            strength = abs(token.attribution) / scale
            base = (40, 160, 70) if token.attribution > 0 else (210, 50, 50)
            r, g, b = (int(255 - (255 - channel) * strength) for channel in base)  # white to full colour
            out.append(f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{token.text}\x1b[0m")
    return head + "\n" + " ".join(out)
