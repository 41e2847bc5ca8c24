"""A model directory's README.md: a model card in Hugging Face's layout, written from its own files.

Everything the card says is read back from what the directory holds (config.json, metrics.json,
history.csv, tokenizer.json, the weights' size), so it cannot drift from the model: YAML front
matter (library, tags, languages, the test figures as a ``model-index``) and then the sections
Hugging Face's template asks for. A card carries :data:`MARKER`; revsent rewrites only a README.md
that carries it, and a directory's README.md without it is the user's, never overwritten.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from . import __version__, artifacts
from .data import sample
from .data.records import describe_counts, describe_labels
from .errors import ArtifactError

CARD = "README.md"
MARKER = "<!-- model card written by revsent from this directory's files; it is rewritten with the model -->"

# Common function words of each language, chosen to be rare in the others: a vocabulary that holds
# most of a language's list was learnt from text in it.
FUNCTION_WORDS = {
    "en": "the and is was this that with for not but are have they you very were had there what would",
    "fr": "le la les et est une des pas que pour dans avec très mais nous sur plus du était qui",
    "de": "der die und ist das nicht ein eine mit sehr auch wir war für es ich sie zu den auf",
    "es": "el los las y es una muy pero con para que por del lo se como fue más al este",
    "it": "il di che non è per una con sono molto ma della gli anche questo del alla si ho era",
    "pt": "não uma com para muito mas os das dos foi é em que no na por mais ao como se",
    "nl": "de het een en van is niet dat zijn met voor ook maar zeer heel wij was op te er",
}
LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch"}
COVERED = 12  # of a language's 20 function words among the vocabulary's FREQUENT: it covers that language
FREQUENT = 3000  # (a language's words must be common: stray ones turn up in any large vocabulary's tail)
TOP = 300  # the most frequent words, where the main language's function words are
POOLING_WORDS = {"last": "the last state", "max_mean": "max and mean pooling", "max": "max pooling",
                 "mean": "mean pooling"}
SAMPLE_DOMAINS = {"imdb": "IMDB movie reviews (the bundled sample)",
                  "rotten_tomatoes": "Rotten Tomatoes movie-review sentences (the bundled sample)"}


def languages(words: list[str]) -> list[str]:
    """The languages a vocabulary covers (codes), its main one first: ``words`` most frequent first."""
    vocabulary, top = set(words[:FREQUENT]), set(words[:TOP])
    covered = [code for code, listed in FUNCTION_WORDS.items() if sum(w in vocabulary for w in listed.split()) >= COVERED]
    return sorted(covered, key=lambda code: -sum(w in top for w in FUNCTION_WORDS[code].split()))


def _read(model_dir: Path) -> dict:
    """What the card is written from: config, metrics and history where present, the vocabulary."""
    try:
        config = json.loads((model_dir / artifacts.CONFIG).read_text(encoding="utf-8"))
        vocab = json.loads((model_dir / artifacts.TOKENIZER).read_text(encoding="utf-8"))["model"]["vocab"]
        metrics_path, history_path = model_dir / artifacts.METRICS, model_dir / artifacts.HISTORY
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
        history = []
        if history_path.exists():
            with open(history_path, encoding="utf-8", newline="") as f:
                history = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{model_dir}: cannot write a model card ({str(exc).splitlines()[0]})") from None
    words = [w for w, _ in sorted(vocab.items(), key=lambda item: item[1]) if not w.startswith("[")]
    weights = model_dir / artifacts.WEIGHTS
    return {"config": config, "metrics": metrics, "history": history, "words": words,
            "weights_mb": weights.stat().st_size / 1e6 if weights.exists() else None}


def domain(data: dict) -> str:
    """The texts a model learnt from, in words: the bundled sample's name, a Yelp category, the files."""
    paths = data.get("paths") or [sample.DEFAULT]
    if all(sample.is_sample(p) for p in paths):
        return " and ".join(SAMPLE_DOMAINS.get(sample.SAMPLES.get(p, p), p) for p in paths)
    names = ", ".join(Path(p).name for p in paths)
    if data.get("category"):
        return f"Yelp reviews of businesses in the category {data['category']!r} ({names})"
    return f"the reviews in {names}"


def label_scheme(data: dict, metrics: dict, classes: list[str]) -> str:
    """How the labels were made, with each class's count where metrics.json holds them."""
    scheme = metrics.get("label_scheme") or ("labels" if data.get("label_field") else data.get("labels", "binary"))
    counts = {key: metrics[key] for key in ("records_per_class", "records_filtered") if key in metrics}
    return describe_labels(scheme, counts, classes)


def front_matter(info: dict, name: str) -> str:
    """The YAML header Hugging Face reads (strings written as JSON, which YAML reads as they are)."""
    config, metrics = info["config"], info["metrics"]
    codes = languages(info["words"])
    lines = ["---", "library_name: revsent", "pipeline_tag: text-classification",
             "tags: [text-classification, sentiment-analysis, lstm, pytorch, revsent]"]
    if codes:
        lines.append(f"language: [{', '.join(codes)}]")
    if metrics.get("n"):
        lines += ["model-index:", f"- name: {json.dumps(name)}", "  results:",
                  "  - task: {type: text-classification, name: Sentiment analysis}",
                  f"    dataset: {{name: {json.dumps(domain(config.get('data', {})))}, type: reviews, split: test}}",
                  "    metrics:",
                  f"    - {{type: accuracy, value: {metrics['accuracy']:.4f}, name: Test accuracy}}",
                  f"    - {{type: f1, value: {metrics['f1_macro']:.4f}, name: Test F1 (macro), args: {{average: macro}}}}"]
    return "\n".join(lines + ["---"])


def _figure(row: dict | None, key: str) -> str:
    value = (row or {}).get(key)
    return "–" if value is None else f"{value:.4f}"


def evaluation(metrics: dict) -> list[str]:
    """The figures table (validation, test, the baseline beside), per-class figures and warnings."""
    if not metrics.get("n"):
        return ["No held-out figures were recorded for this model (it was saved without a test part)."]
    validation, baseline = metrics.get("validation") or {}, metrics.get("baseline_tfidf_lr")
    head = "| | validation | test |" + (" TF-IDF + LR (test) |" if baseline else "")
    chosen = (f"The validation slice ({validation['n']:,} reviews of the training part) chose the weights (early "
              "stopping) and the calibration." if validation.get("n") else
              "There was no validation slice: the last epoch's weights were kept.")
    lines = [f"Scored once on the held-out test part of {metrics['n']:,} reviews, after training; nothing was chosen "
             f"on it. {chosen}", "", head, "|---|---|---|" + ("---|" if baseline else "")]
    for title, key, val_key in [("accuracy", "accuracy", "accuracy"), ("F1 (macro)", "f1_macro", None),
                                ("log loss", "log_loss", "loss"), ("calibration error (ECE)", "ece", None),
                                ("ROC AUC", "roc_auc", None)]:
        if metrics.get(key) is None:
            continue
        row = f"| {title} | {_figure(validation, val_key) if val_key else '–'} | {_figure(metrics, key)} |"
        lines.append(row + (f" {_figure(baseline, key)} |" if baseline else ""))
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | {r['support']:,} |"
              for c, r in metrics.get("per_class", {}).items()]
    lines += [""] + [f"**Warning:** {w}" for w in metrics.get("warnings", [])]
    return lines


def details(info: dict) -> list[str]:
    """Model details: what the network is, its preset and settings, its size."""
    config = info["config"]
    model, classes = config["model"], config["classes"]
    lstm = f"{'bidirectional ' if model['bidirectional'] else ''}LSTM({model['hidden_size']}) × {model['layers']}"
    wide = (f", beside a linear n-gram branch (orders 1–{model['ngram_order']}, {model['ngram_buckets']:,} hashed "
            "buckets)" if model.get("ngram_buckets") else "")
    dense = "".join(f"Dense({units}) → " for units in model.get("dense") or [])
    size = f"; weights {info['weights_mb']:.1f} MB" if info["weights_mb"] is not None else ""
    settings = ", ".join(f"{k}={'none' if model[k] is None else model[k]}" for k in ("vocab_size", "max_len", "embedding_dim", "hidden_size", "layers",
                                                   "dropout", "pooling") if k in model)
    return [f"- **Classes:** {', '.join(classes)}",
            f"- **Architecture:** Embedding({model['vocab_size']:,}, {model['embedding_dim']}) → {lstm} → "
            f"{POOLING_WORDS.get(model.get('pooling'), model.get('pooling'))} → {dense}Dense({len(classes)}){wide}{size}",
            f"- **Preset:** `{config.get('preset')}`; {settings}",
            f"- **Preprocessing:** `` {config.get('preprocessing', '')} ``",  # (it names a backtick)
            f"- **Vocabulary:** {len(info['words']):,} words",
            f"- **Written by:** revsent {config.get('versions', {}).get('revsent', __version__)} "
            f"(PyTorch {config.get('versions', {}).get('torch', '?')})"]


def training(info: dict) -> list[str]:
    """Training data and procedure: the data, labels, split, settings, time and hardware."""
    config, metrics = info["config"], info["metrics"]
    data, train = config.get("data", {}), config.get("train", {})
    lines = ["## Training data", "", f"- **Texts:** {domain(data)}",
             f"- **Labels:** {label_scheme(data, metrics, config['classes'])}"]
    if "records_read" in metrics:
        lines.append(f"- **Records:** {metrics['records_read']:,} read: {describe_counts(metrics)}")
    if "n_train" in metrics:
        lines.append(f"- **Split:** {metrics['n_train']:,} training, {metrics['n_validation']:,} validation, "
                     f"{metrics['n_test']:,} test (test part {train.get('test_split')}, seed {train.get('seed')})")
    lines += ["", "## Training procedure", "",
              f"- **Optimiser:** Adam, learning rate {train.get('lr')}, batch {train.get('batch_size')}, "
              f"up to {train.get('epochs')} epoch(s)"
              + (f", early stopping after {train['patience']} epoch(s) without a better validation loss"
                 if train.get("patience") and metrics.get("n_validation") else "")]
    if "epochs_run" in metrics:
        lines.append(f"- **Epochs run:** {metrics['epochs_run']} (weights of epoch {metrics['best_epoch']})")
        lines.append(f"- **Time:** {metrics['train_seconds']:,.1f} s training, {metrics['total_seconds']:,.1f} s "
                     f"in all, on {metrics.get('hardware', metrics.get('device'))} ({metrics.get('precision')}, "
                     f"{metrics.get('processes', 1)} process(es))")
    if info["history"]:
        lines += ["", "| epoch | train loss | train accuracy | validation loss | validation accuracy |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['epoch']} | {_cell(r.get('train_loss'))} | {_cell(r.get('train_accuracy'))} | "
                  f"{_cell(r.get('val_loss'))} | {_cell(r.get('val_accuracy'))} |" for r in info["history"]]
    return lines


def _cell(value: str | None) -> str:
    return f"{float(value):.4f}" if value not in (None, "") else "–"


def limits(info: dict) -> list[str]:
    """Intended use and limitations: the domain, the languages, the label scheme, long texts."""
    config = info["config"]
    codes = languages(info["words"])
    spoken = (f"{LANGUAGE_NAMES[codes[0]]}" + (f"; it also holds common words of "
              f"{', '.join(LANGUAGE_NAMES[c] for c in codes[1:])}" if codes[1:] else "")
              if codes else "no language revsent recognises from its most common words")
    max_len = config["model"].get("max_len")
    return ["## Intended use", "",
            f"Telling the sentiment ({', '.join(config['classes'])}) of texts like those it learnt from: "
            f"{domain(config.get('data', {}))}. Check its figures on a sample of your own texts before relying on it.",
            "", "## Limitations", "",
            f"- **Domain:** it learnt from {domain(config.get('data', {}))}; on other kinds of text expect lower accuracy.",
            f"- **Languages:** its vocabulary is {spoken}.",
            "- **Unknown words** are left out; a text with no word the model knows is flagged (`known_words: 0`) and "
            "its answer means nothing.",
            f"- **Long texts:** {_kept_words(max_len, config['model'].get('truncate'))}.",
            f"- **Labels:** {label_scheme(config.get('data', {}), info['metrics'], config['classes'])}."]


def _kept_words(max_len: int | None, side: str | None) -> str:
    if not max_len:
        return "read whole"
    where = {"head": "the first", "tail": "the last"}.get(side, f"the first {max_len // 4:,} and the last")
    return f"only {max_len:,} words of each text are read ({where} ones)"


def model_card(model_dir: str | Path) -> str:
    """The model card of ``model_dir`` (a model directory), as README.md text."""
    model_dir = Path(model_dir)
    info = _read(model_dir)
    name = model_dir.resolve().name
    sections = [front_matter(info, name), MARKER, "", f"# {name}", "",
                f"An LSTM sentiment classifier for {domain(info['config'].get('data', {}))}, trained with revsent.",
                "", "## Model details", "", *details(info), "", *training(info), "", "## Evaluation", "",
                *evaluation(info["metrics"]), "", *limits(info), "", "## How to use", "", "```bash",
                "pip install revsent", f"revsent predict {name} \"The food was wonderful\"", f"revsent serve {name}",
                "```", "", "```python", "from revsent import Classifier", "", f"clf = Classifier.load({name!r})",
                "clf.predict([\"The food was wonderful\"])", "```", ""]
    return "\n".join(sections)


def write_model_card(model_dir: str | Path) -> Path:
    """Write ``model_dir``/README.md (atomically); a README.md there that revsent did not write is kept."""
    path = Path(model_dir) / CARD
    if path.exists() and not is_ours(path):
        raise ArtifactError(f"{path}: a README.md revsent did not write; move it to write the model card")
    artifacts.atomic_write(path, model_card(model_dir))
    return path


def is_ours(path: str | Path) -> bool:
    """Whether the README.md at ``path`` is a card revsent wrote (it carries :data:`MARKER`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return MARKER in f.read(64_000)
    except OSError:
        return False
