"""Explanations: completeness, exactness of the n-gram shares, deletion on real held-out reviews."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revsent import Classifier
from revsent.cli import app
from revsent.explain import _align, _margins, render

from .conftest import NEGATIVE, POSITIVE, TINY

TEXTS, LABELS = POSITIVE * 4 + NEGATIVE * 4, ["pos"] * 24 + ["neg"] * 24


@pytest.fixture(scope="module")
def tiny():
    return Classifier(preset="seed", **{**TINY, "ngram_buckets": 1000, "max_len": 4}).fit(TEXTS, LABELS)


def test_words_keep_their_spans_and_what_the_model_did_not_read(tiny):
    text = "Great food -- zzzunknown, and friendly   staff!"
    pieces, positions, ids = _align(tiny.encoder_, text)
    assert [(span, text[start: start + len(span)]) for span, start, _ in pieces] == [(span, span) for span, _, _ in pieces]
    words = [word for _, _, word in pieces]
    assert words == ["great", "food", None, "zzzunknown", "and", "friendly", "staff"]
    # unknown words and punctuation have no id; the known ones keep their place in the whole review
    assert positions == [0, 1, -1, -1, 2, 3, 4]
    assert ids.tolist() == [int(tiny.encoder_.encode([t])[0][0]) for t in ("great", "food", "and", "friendly", "staff")]


def test_words_past_max_len_keep_their_ngrams_share(tiny):
    """max_len 4 cuts "great" from the LSTM's input; the n-gram branch reads the whole review."""
    tokens = tiny.explain(["Great food -- zzzunknown, and friendly   staff!"])[0].tokens
    great = tokens[0]
    assert great.word == "great" and great.in_model and great.lstm == 0 and great.ngrams != 0
    assert [t.word for t in tokens if t.in_model] == ["great", "food", "and", "friendly", "staff"]
    assert all(t.lstm != 0 for t in tokens[1:] if t.in_model)


def test_alignment_follows_a_head_and_tail_cut():
    clf = Classifier(preset="seed", **{**TINY, "max_len": 4, "truncate": "head_tail"}).fit(TEXTS, LABELS)
    text = "great food and friendly staff wonderful place"
    pieces, positions, ids = _align(clf.encoder_, text)
    assert positions == list(range(7)) and ids.tolist() == clf.encoder_.encode([text])[0].tolist()
    # without an n-gram branch only the LSTM reads: the first word (a quarter of 4) and the last three
    explanation = clf.explain([text])[0]
    assert [t.text for t in explanation.tokens if t.in_model] == ["great", "staff", "wonderful", "place"]


def test_attributions_add_up_to_the_margin(tiny):
    for explanation in tiny.explain(["great food and friendly staff", "rude staff", "terrible awful food but great value"]):
        read = [t for t in explanation.tokens if t.in_model]
        lstm, ngrams = sum(t.lstm for t in read), sum(t.ngrams for t in read)
        assert abs(lstm + ngrams - (explanation.margin - explanation.baseline_margin)) <= abs(explanation.delta) + 1e-4
        assert abs(explanation.delta) < 0.01
        assert all(t.attribution == 0 for t in explanation.tokens if not t.in_model)
        assert explanation.label == max(explanation.probabilities, key=explanation.probabilities.get)


def test_ngram_shares_are_the_wide_branch_exactly(tiny):
    """The n-gram part of the margin, recomputed from the model's own wide branch."""
    from revsent.batching import make_batch
    from revsent.ngrams import NgramFeatures, linear_logits

    model = tiny.model_
    text = "great food and friendly staff"
    explanation = tiny.explain([text])[0]
    seqs = tiny.encoder_.encode([text])
    logits = linear_logits(seqs, np.array([0]), model.table(), model.wide_weight.numpy(), np.zeros(2), NgramFeatures.of(model.cfg))
    k = tiny.classes_.index(explanation.label)
    scale = float(model.mix[1])  # the n-grams as calibrated
    assert sum(t.ngrams for t in explanation.tokens) == pytest.approx(scale * float(_margins(torch.from_numpy(logits))[0, k]), abs=1e-5)
    assert list(explanation.probabilities.values()) == pytest.approx(tiny.predict_proba([text])[0].tolist(), abs=1e-5)
    assert make_batch(seqs, [0]).tokens.shape[1] == sum(t.in_model for t in explanation.tokens)


def test_cli_explain_json_and_terminal(tmp_path, tiny):
    tiny.save(tmp_path / "m")
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), "great food", "rude staff", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"] and [t["text"] for t in rows[0]["tokens"]] == ["great", "food"]
    plain = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), "great food", "--no-color"])
    assert plain.exit_code == 0 and "great(+" in plain.stdout and "\x1b[" not in plain.stdout
    coloured = render(tiny.explain(["great food"])[0], color=True)
    assert "\x1b[48;2;" in coloured
    missing = CliRunner().invoke(app, ["explain", str(tmp_path / "nothing"), "text"])
    assert missing.exit_code != 0 and "revsent: error:" in missing.output


@pytest.mark.slow
def test_deleting_the_top_words_hurts_more_than_deleting_random_ones(imdb_model, imdb_heldout):
    """On 120 real held-out IMDB reviews: take out the 5 words with the most attribution toward
    the predicted label, or 5 words the model read chosen at random; the first must lower the
    predicted label's probability more, on average."""
    clf = Classifier.load(imdb_model)
    texts = imdb_heldout[0][:120]
    rng = np.random.default_rng(0)
    before, top, random = [], [], []
    deltas = []
    for text, explanation in zip(texts, clf.explain(texts)):
        k = clf.classes_.index(explanation.label)
        read = [i for i, t in enumerate(explanation.tokens) if t.in_model]
        deltas.append(abs(explanation.delta))
        ranked = sorted(read, key=lambda i: -explanation.tokens[i].attribution)[:5]
        chosen = list(rng.choice(read, size=min(5, len(read)), replace=False))
        cut = lambda drop: " ".join(t.text for i, t in enumerate(explanation.tokens) if i not in set(drop))  # noqa: E731
        proba = clf.predict_proba([text, cut(ranked), cut(chosen)])[:, k]
        before.append(proba[0]), top.append(proba[1]), random.append(proba[2])
    drop_top, drop_random = np.mean(before) - np.mean(top), np.mean(before) - np.mean(random)
    print(f"deletion over {len(texts)} held-out reviews: top-5 words {drop_top:.3f}, random 5 words {drop_random:.3f}; "
          f"completeness delta median {np.median(deltas):.2e}, max {np.max(deltas):.2e}")
    assert drop_top > drop_random + 0.02
    assert np.median(deltas) < 0.05


def test_a_bags_attributions_add_up_over_its_readers():
    """A bag of two readers: integrated gradients over both embeddings still sum to the margin."""
    bag = Classifier(preset="seed", **{**TINY, "ngram_buckets": 1000, "members": 2}).fit(TEXTS, LABELS)
    assert len(bag.model_.readers) == 2
    for explanation in bag.explain(["great food and friendly staff", "rude staff"]):
        read = [t for t in explanation.tokens if t.in_model]
        total = sum(t.lstm + t.ngrams for t in read)
        assert abs(total - (explanation.margin - explanation.baseline_margin)) <= abs(explanation.delta) + 1e-4
        assert abs(explanation.delta) < 0.01


def test_cli_explain_input_file_json_lines_with_ids_and_known_words(tmp_path, tiny):
    tiny.save(tmp_path / "m")
    data = tmp_path / "in.csv"
    data.write_text("key,body\nk1,great food\nk2,zzzunknown\n")
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), "--input", str(data), "--text-field", "body",
                                      "--id-field", "key"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["known_words"]) for r in rows] == [("k1", 2), ("k2", 0)]
    assert rows[0]["label"] == "pos" and [t["text"] for t in rows[0]["tokens"]] == ["great", "food"]
    assert "1 text(s) had no word the model knows" in result.stderr
    texts = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), "rude staff", "--json"])
    assert json.loads(texts.stdout)["index"] == 0 and json.loads(texts.stdout)["known_words"] == 2
    wrong = CliRunner().invoke(app, ["explain", str(tmp_path / "m"), "--input", str(data)])
    assert wrong.exit_code == 2 and "no text field 'text'; fields are: key, body" in wrong.output


def test_cli_explain_colour_follows_flags_and_no_color(tmp_path, tiny):
    tiny.save(tmp_path / "m")
    args = ["explain", str(tmp_path / "m"), "great food"]
    forced = CliRunner().invoke(app, [*args, "--color"])  # asked for: kept even though stdout is not a terminal
    assert forced.exit_code == 0 and "\x1b[48;2;" in forced.stdout
    piped = CliRunner().invoke(app, args)  # not a terminal: no colour, the numbers instead
    assert "\x1b[" not in piped.stdout and "great(+" in piped.stdout
    assert "\x1b[" not in CliRunner().invoke(app, args, env={"NO_COLOR": "1"}).stdout
    unknown = render(tiny.explain(["zzzunknown"])[0], color=False)
    assert "no word the model knows" in unknown.splitlines()[0]
