"""Settings: one frozen dataclass per concern, the presets, and JSON round trips.

Every field has a CLI flag of the same name (``hidden_size`` <-> ``--hidden-size``). A
:class:`Config` travels from the CLI through training into ``config.json`` beside the weights.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

FORMATS = ("auto", "yelp", "jsonl", "csv", "tsv", "parquet", "tar")
LABEL_SCHEMES = ("binary", "polarity", "stars")
POOLINGS = ("last", "max", "mean", "max_mean")
TRUNCATE = ("head", "tail", "head_tail")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
CLASS_WEIGHTS = ("balanced",)
SCHEDULES = ("constant", "stlr")
EMBEDDING_INITS = ("random", "ppmi")


@dataclass(frozen=True)
class DataConfig:
    """Where records come from and how their labels are read."""

    paths: tuple[str, ...] = ()  # input files; empty = the bundled IMDB sample
    format: str = "auto"  # by extension and content, so Yelp files need no option
    text_field: str = "text"  # Yelp's and most datasets' name for the review text
    label_field: str | None = None  # labels used as they are (strings or ints)
    stars_field: str | None = None  # star ratings turned into classes by `labels`
    labels: str = "binary"  # the tutorial's scheme: stars > 3 positive
    id_field: str | None = None  # None: `review_id` or `id` when the records have one
    business: str | None = None  # Yelp business.json (or the Yelp tar) for --category
    category: str | None = None  # keep only reviews of businesses in this category
    limit: int | None = None  # first N usable records; None reads everything
    skip_bad: bool = False  # False: the first bad record stops the run (nothing is lost silently)

    def __post_init__(self):
        _check_choice(self, "format", FORMATS)
        _check_choice(self, "labels", LABEL_SCHEMES)
        _check_range(self, "limit", 1, None, optional=True)
        if self.label_field and self.stars_field:
            raise ConfigError("Give either --label-field or --stars-field, not both.")
        if self.category and not self.business and not any(p.endswith((".tar", ".tgz", ".tar.gz")) for p in self.paths):
            raise ConfigError("--category needs --business FILE (Yelp's business.json) to know each business' categories.")


@dataclass(frozen=True)
class ModelConfig:
    """The tokenizer and the network."""

    vocab_size: int = 2500  # Keras Tokenizer(num_words): ids 1..N-1 for the N-1 most frequent words
    oov: bool = False  # False drops unknown words, as the tutorial's Keras Tokenizer does
    min_count: int = 1  # words seen fewer times in the training texts are left out (1: Keras keeps every word)
    max_len: int | None = None  # None keeps whole reviews (the tutorial pads to the longest)
    truncate: str = "tail"  # which end of a long review is kept; the end holds the verdict
    embedding_dim: int = 128  # the tutorial's
    hidden_size: int = 200  # the tutorial's LSTM(200)
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.2  # on the LSTM's inputs, one mask per review (Keras' `dropout`)
    recurrent_dropout: float = 0.2  # DropConnect on the recurrent weights, one mask per batch
    word_dropout: float = 0.0  # while training, each vocabulary word dropped with this chance per batch, all its occurrences (AWD-LSTM's embedding dropout)
    pooling: str = "last"  # the tutorial uses the last hidden state
    dense: tuple[int, ...] = ()  # sizes of extra ReLU layers before the output
    ngram_buckets: int = 0  # >0 adds a wide branch: logistic regression on words + hashed n-grams
    ngram_c: float | None = 10.0  # the wide branch's inverse L2 strength (scikit-learn's C); None: chosen on the validation slice
    ngram_min_df: int = 1  # the wide branch keeps the features of at least this many training reviews (scikit-learn's min_df)
    ngram_order: int = 2  # the wide branch's longest n-gram: 2 (bigrams) or 3 (trigrams too)
    ngram_weighting: str = "tfidf"  # "tfidf" (sublinear TF-IDF, unit length) or "nb" (NBSVM's log-count ratios)
    ngram_hash: int = 2  # how n-grams are hashed: 2 mixes 64-bit words; 1, the first releases' (their models keep it)
    ngram_whole: bool = True  # the wide branch reads whole reviews; False (models before it): what max_len leaves the LSTM
    init: str = "keras"  # Glorot / orthogonal / forget bias 1: what the tutorial's model starts from
    embedding_init: str = "random"  # "ppmi": the embedding starts from word vectors of the training texts (training/word_vectors.py)
    members: int = 1  # LSTM readers averaged; >1 is a bag, each trained apart on its own validation slice

    def __post_init__(self):
        _check_range(self, "vocab_size", 3, None)
        _check_range(self, "min_count", 1, None)
        _check_range(self, "ngram_min_df", 1, None)
        _check_range(self, "max_len", 1, None, optional=True)
        _check_choice(self, "truncate", TRUNCATE)
        for name in ("embedding_dim", "hidden_size", "layers", "members"):
            _check_range(self, name, 1, None)
        for name in ("dropout", "recurrent_dropout", "word_dropout"):
            _check_range(self, name, 0.0, 1.0, right_open=True)
        _check_choice(self, "pooling", POOLINGS)
        _check_choice(self, "init", ("keras", "torch"))
        _check_choice(self, "embedding_init", EMBEDDING_INITS)
        _check_range(self, "ngram_buckets", 0, None)
        _check_range(self, "ngram_c", 0.0, None, left_open=True, optional=True)
        _check_range(self, "ngram_order", 2, 3)
        _check_choice(self, "ngram_weighting", ("tfidf", "nb"))
        _check_range(self, "ngram_hash", 1, 2)
        if any(size < 1 for size in self.dense):
            raise ConfigError(f"The 'dense' parameter of ModelConfig must hold sizes >= 1. Got {list(self.dense)} instead.")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation and the validation split."""

    epochs: int = 1  # the tutorial trains one epoch
    batch_size: int = 32  # the tutorial's
    lr: float = 1e-3  # Adam's default, as in the tutorial
    weight_decay: float = 0.0
    clip_norm: float | None = None  # gradient norm clipping; None leaves gradients alone
    patience: int | None = None  # early stopping after this many epochs without a better val loss
    average_weights: bool = False  # also validate the mean of the epochs' weights (SWA); keep it when better
    test_split: float = 0.2  # the tutorial's 80/20 split: the held-out test part, scored once at the end
    test_data: tuple[str, ...] = ()  # test on these files instead (all of the data then trains)
    val_fraction: float = 0.0  # of the training part, kept for validation: early stopping, the best epoch
    seed: int = 36  # the tutorial's random_state; also seeds initialisation and shuffling
    device: str = "auto"  # CUDA when present
    precision: str = "auto"  # training's arithmetic: bf16 autocast where the hardware computes it natively (device.py)
    threads: int | None = None  # None: every core
    baseline: bool = False  # also fit TF-IDF + logistic regression on the same split
    class_weight: str | None = None  # "balanced": classes weighted n / (k * count), as scikit-learn's
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch this often: a killed run loses at most this much
    init_from: str | None = None  # a trained model directory to start from (fine-tuning): its vocabulary, settings and weights
    schedule: str = "constant"  # the learning rate over the run: "constant", or "stlr" (ULMFiT's slanted triangular: a tenth of the steps rising to lr, the rest falling to lr / 32)
    gradual_unfreezing: bool = False  # ULMFiT's: the first epoch trains the layers above the encoder, each later one a layer group more below (the LSTMs top down, the embedding last)
    encoder_lr: float = 1.0  # the embedding's and LSTMs' learning rate as a share of lr (ULMFiT's discriminative rates; <1 for a pretrained encoder)
    adversarial: float = 0.0  # >0: also train on each review's embedded input moved this fraction of its norm uphill (Miyato et al. 2017)
    unlabelled: tuple[str, ...] = ()  # reviews without labels, learnt from by `vat` and `entropy_weight` (semi-supervised)
    vat: float = 0.02  # with `unlabelled`: virtual adversarial training, each unlabelled review moved this fraction of its norm where the prediction changes most (Miyato et al. 2017); 0: off
    entropy_weight: float = 0.0  # with `unlabelled`: the weight of the predictions' entropy on unlabelled reviews in the loss (entropy minimisation; 0, off, as validation chose: bench/JOURNAL.md)
    threshold: str | None = None  # two classes: label classes[1] from this probability: a number, "f1", "precision:P" or "recall:R" (chosen on the validation slice); None: the most probable class

    def __post_init__(self):
        _check_range(self, "epochs", 1, None)
        _check_range(self, "batch_size", 1, None)
        _check_range(self, "lr", 0.0, None, left_open=True)
        _check_range(self, "weight_decay", 0.0, None)
        _check_range(self, "clip_norm", 0.0, None, left_open=True, optional=True)
        _check_range(self, "patience", 1, None, optional=True)
        _check_range(self, "test_split", 0.0, 1.0, left_open=True, right_open=True)
        _check_range(self, "val_fraction", 0.0, 1.0, right_open=True)
        if self.patience and not self.val_fraction:
            raise ConfigError("--patience stops on the validation loss: it needs a validation slice (--val-fraction, e.g. 0.1)")
        if self.average_weights and not self.val_fraction:
            raise ConfigError("--average-weights keeps the mean of the epochs' weights when the validation loss says so: "
                              "it needs a validation slice (--val-fraction, e.g. 0.1)")
        _check_choice(self, "device", DEVICES)
        _check_choice(self, "precision", PRECISIONS)
        _check_range(self, "threads", 1, None, optional=True)
        _check_range(self, "checkpoint_minutes", 0.0, None)
        _check_range(self, "adversarial", 0.0, None)
        _check_range(self, "encoder_lr", 0.0, 1.0, left_open=True)
        _check_choice(self, "schedule", SCHEDULES)
        _check_range(self, "vat", 0.0, None)
        _check_range(self, "entropy_weight", 0.0, None)
        if self.unlabelled and not (self.vat or self.entropy_weight):
            raise ConfigError("--unlabelled is learnt from by --vat and --entropy-weight; both are 0")
        if self.class_weight is not None:
            _check_choice(self, "class_weight", CLASS_WEIGHTS)
        if self.threshold is not None:
            threshold_rule(self.threshold)  # refused here, before any data is read
        if self.threshold is not None and threshold_rule(self.threshold)[0] != "value" and not self.val_fraction:
            raise ConfigError(f"--threshold {self.threshold} is chosen on the validation slice: it needs one "
                              "(--val-fraction, e.g. 0.1)")


@dataclass(frozen=True)
class LMConfig:
    """What only a language model has (``revsent pretrain``, preset ``lm``); its encoder's settings
    are the model section's and its optimisation the train section's (``LM_SETTINGS``)."""

    bptt: int = 70  # tokens per training window (each direction predicts the next of them)
    negatives: int = 1024  # words of the sampled softmax, drawn per step from the unigram distribution^0.75
    output_dropout: float = 0.1  # locked dropout on the LSTM's outputs (AWD-LSTM's)
    heldout: float = 0.02  # of the texts, kept out of training to measure perplexity on
    heldout_tokens: int = 100_000  # perplexity (a full softmax) on at most this many held-out tokens per direction

    def __post_init__(self):
        _check_range(self, "bptt", 2, None)
        _check_range(self, "negatives", 1, None)
        _check_range(self, "output_dropout", 0.0, 1.0, right_open=True)
        _check_range(self, "heldout", 0.0, 1.0, left_open=True, right_open=True)
        _check_range(self, "heldout_tokens", 1, None)


@dataclass(frozen=True)
class Config:
    """Everything a run needs: the one object saved as ``config.json`` with the model."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "default"
    lm: LMConfig = field(default_factory=LMConfig)  # a language model's own settings (saved only with one)

    def __post_init__(self):
        m, f = self.model.members, self.train.val_fraction
        if m > 1 and m * f > 1:
            raise ConfigError(f"--members {m} needs {m} separate validation slices of --val-fraction {f}; "
                              f"at most {int(1 / f)} fit in the training part")

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        if self.preset != LM_PRESET:  # a classifier's config.json: no language-model section
            raw.pop("lm")
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Config":
        """Rebuild from JSON; unknown keys and wrong types are errors."""
        _reject_unknown("Config", raw, {"data", "model", "train", "preset", "lm"})
        if raw.get("preset", "default") not in (*PRESETS, LM_PRESET):
            raise ConfigError(f"The 'preset' of Config must be one of {', '.join(PRESETS)}. Got {raw.get('preset')!r} instead.")
        return cls(
            data=_section(DataConfig, raw.get("data", {})),
            model=_section(ModelConfig, _legacy_model(raw.get("model", {}))),
            train=_section(TrainConfig, renamed(raw.get("train", {}), LEGACY_SPLIT_KEYS)),
            preset=raw.get("preset", "default"),
            lm=_section(LMConfig, raw.get("lm", {})),
        )

    def with_settings(self, **overrides: Any) -> "Config":
        """This config with some fields replaced; keyword names are field names of any section."""
        owners = {f.name: section for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
        unknown = set(overrides) - set(owners)
        if unknown:
            raise ConfigError(f"Unknown setting {sorted(unknown)[0]!r}; known settings: {', '.join(sorted(owners))}.")
        sections = {name: {k: v for k, v in overrides.items() if owners[k] == name} for name in SECTIONS}
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), **values)
                                            for name, values in sections.items() if values})

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any) -> "Config":
        """A preset with some fields replaced; keyword names are field names of any section."""
        if preset not in PRESETS and preset != LM_PRESET:
            raise ConfigError(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
        table = LM_SETTINGS if preset == LM_PRESET else PRESETS[preset]
        sections = {name: dict(table.get(name, {})) for name in SECTIONS}
        owners = {f.name: section for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
        for key, value in overrides.items():
            if key not in owners:
                raise ConfigError(f"Unknown setting {key!r}; known settings: {', '.join(sorted(owners))}.")
            sections[owners[key]][key] = value
        if overrides.get("val_fraction") == 0:  # no validation slice: the preset's choices made on one fall away
            for key, off in (("patience", None), ("average_weights", False)):
                if key not in overrides:
                    sections["train"][key] = off
        return cls(
            data=_section(DataConfig, sections["data"]),
            model=_section(ModelConfig, sections["model"]),
            train=_section(TrainConfig, sections["train"]),
            preset=preset,
            lm=_section(LMConfig, sections["lm"]),
        )


# The model settings a fine-tuning run may change: they shape no weight and no token id. The
# others are the started-from model's (its vocabulary and weights carry them).
FINE_TUNABLE = frozenset({"dropout", "recurrent_dropout", "word_dropout", "ngram_buckets", "ngram_c", "ngram_min_df",
                          "ngram_order", "ngram_weighting", "ngram_hash", "ngram_whole"})


def fine_tuning(cfg: Config, source: Config, given: typing.Iterable[str] = ()) -> Config:
    """``cfg`` as a run that starts from a model trained with ``source``: the model settings are
    the source's, but for the FINE_TUNABLE ones in ``given`` (the settings a user set explicitly),
    which keep ``cfg``'s. Another explicitly given model setting that differs is refused."""
    given = set(given)
    for name in fixed_differences(cfg.model, source.model):
        if name in given:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(cfg.model, name)!r} differs from the model started "
                              f"from ({getattr(source.model, name)!r}, --init-from {cfg.train.init_from}): "
                              f"its vocabulary and weights fix it")
    model = dataclasses.replace(source.model, **{name: getattr(cfg.model, name) for name in given & FINE_TUNABLE})
    # the n-gram branch is fitted afresh: on whole reviews, whatever the source's read
    return dataclasses.replace(cfg, model=dataclasses.replace(model, ngram_whole=cfg.model.ngram_whole))


def fixed_differences(model: ModelConfig, source: ModelConfig) -> list[str]:
    """The model settings a fine-tuning run of ``model`` from ``source`` may not change, but does."""
    return [f.name for f in dataclasses.fields(ModelConfig)
            if f.name not in FINE_TUNABLE and getattr(model, f.name) != getattr(source, f.name)]


# Settings of the held-out part, by the names they had before it was called "test" (it was "val"):
# read from the config.json of older models and the manifest of older prepared datasets.
LEGACY_SPLIT_KEYS = {"val_split": "test_split", "val_data": "test_data"}


def _legacy_model(raw: Any) -> Any:
    """A saved model section as its release read it: from before ``ngram_hash``, its n-grams
    hashed with hash 1; from before ``ngram_whole``, its wide branch read the LSTM's cut."""
    if isinstance(raw, dict) and raw.get("ngram_buckets"):
        raw = {**raw, "ngram_hash": raw.get("ngram_hash", 1), "ngram_whole": raw.get("ngram_whole", False)}
    return raw


def renamed(raw: Any, names: dict[str, str]) -> Any:
    """``raw`` with its keys renamed by ``names`` (old -> new), where the new key is not there already."""
    if not isinstance(raw, dict):
        return raw
    return {(names[key] if key in names and names[key] not in raw else key): value for key, value in raw.items()}


def threshold_rule(text: str) -> tuple[str, float | None]:
    """``--threshold``: ("value", t) for a number in (0, 1), ("f1", None), ("precision", p) or ("recall", r)."""
    kind, _, target = str(text).partition(":")
    try:
        if kind in ("precision", "recall") and 0 < float(target) <= 1:
            return kind, float(target)
        if kind == "f1" and not target:
            return "f1", None
        if not target and 0 < float(kind) < 1:
            return "value", float(kind)
    except ValueError:
        pass
    raise ConfigError(f"--threshold takes a probability in (0, 1), f1, precision:P or recall:R (P, R in (0, 1]). "
                      f"Got {text!r} instead.")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "lm": LMConfig}

# Presets name only what differs from the dataclass defaults (which are the tutorial's model).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The tutorial's model: vocab 2,500, Embedding 128, LSTM 200, last state, batch 32, 1 epoch (docs/concepts/presets.md lists every difference).
    "seed": {"data": {}, "model": {}, "train": {}},
    # The best configuration found for accuracy on a laptop CPU budget (bench/JOURNAL.md says how and
    # what each part was measured to give): a bidirectional LSTM with max+mean pooling over a 100k
    # vocabulary, beside a TF-IDF n-gram logistic regression; the LSTM peaks after one or two epochs,
    # so patience 1, and the mean of the epochs' weights is kept where the validation loss prefers it;
    # every batch also trains on its embedded inputs moved 2% uphill (adversarial training, chosen on
    # the validation loss). A bag (`--members 3`) did not pay for its time.
    "default": {
        "data": {},
        "model": {
            "vocab_size": 100000, "max_len": 400, "embedding_dim": 128, "hidden_size": 128,
            "bidirectional": True, "dropout": 0.5, "recurrent_dropout": 0.0, "pooling": "max_mean",
            "ngram_buckets": 2000000, "ngram_c": None, "ngram_min_df": 2,
        },
        "train": {"epochs": 3, "batch_size": 64, "lr": 2e-3, "patience": 1, "clip_norm": 5.0, "val_fraction": 0.1,
                  "average_weights": True, "adversarial": 0.02},
    },
    # `make run`: the default model, smaller and on the last 200 words, in a couple of minutes.
    "quick": {
        "data": {},
        "model": {
            "vocab_size": 30000, "max_len": 200, "embedding_dim": 64, "hidden_size": 64,
            "bidirectional": True, "dropout": 0.3, "recurrent_dropout": 0.0, "pooling": "max_mean",
            "ngram_buckets": 1000000, "ngram_c": None, "ngram_min_df": 2,
        },
        "train": {"epochs": 2, "batch_size": 64, "lr": 2e-3, "patience": 1, "clip_norm": 5.0, "val_fraction": 0.1},
    },
}


# `revsent pretrain`: a language model of the default classifier's encoder (Embedding(V, 128), one
# LSTM(128) each way), AWD-LSTM's regularisation at the strengths of its smaller models, a
# vocabulary of words seen at least twice, unknown words kept as one id (a language model predicts
# them too), Adam on a slanted triangular schedule (training/pretrain.py; bench/JOURNAL.md).
LM_PRESET = "lm"
LM_SETTINGS: dict[str, dict[str, Any]] = {
    "data": {},
    "model": {"vocab_size": 100000, "oov": True, "min_count": 2, "embedding_dim": 128, "hidden_size": 128,
              "bidirectional": True, "dropout": 0.25, "recurrent_dropout": 0.25, "word_dropout": 0.05},
    "train": {"epochs": 4, "batch_size": 64, "lr": 3e-3, "clip_norm": 1.0},
    "lm": {},
}
# `revsent pretrain --init-from LM`'s peak rate where none is given: continuing a language model on
# new text, the preset's 3e-3 first undid part of what it knew (held-out perplexity up in the first
# epoch); a third of it fell from the first epoch on and ended lower (bench/JOURNAL.md).
CONTINUE_LR = 1e-3
# The settings a classifier takes from the language model it starts from (they shape its encoder).
LM_ENCODER = ("vocab_size", "oov", "min_count", "embedding_dim", "hidden_size")


def preset_values(name: str) -> dict[str, Any]:
    """What each preset sets the field ``name`` to (a field of any section), by preset."""
    section = next(key for key, kind in SECTIONS.items() if name in {f.name for f in dataclasses.fields(kind)})
    return {preset: getattr(getattr(Config.from_preset(preset), section), name) for preset in PRESETS}


def _section(kind, raw: dict[str, Any]):
    if not isinstance(raw, dict):
        raise ConfigError(f"The {kind.__name__} section must be a JSON object. Got {type(raw).__name__} instead.")
    hints = typing.get_type_hints(kind)
    _reject_unknown(kind.__name__, raw, set(hints))
    return kind(**{key: _coerce(kind.__name__, key, value, hints[key]) for key, value in raw.items()})


def _reject_unknown(where: str, raw: dict, known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"Unknown {where} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}.")


def _coerce(owner: str, name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's type hint; JSON lists become tuples."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(owner, name, item, args[0]) for item in value)
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint in (str, bool) and type(value) is hint:
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"The {name!r} parameter of {owner} must be of type {expected}. Got {value!r} instead.")


def _check_choice(obj, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in allowed:
        raise ConfigError(
            f"The {name!r} parameter of {type(obj).__name__} must be one of {', '.join(allowed)}. Got {value!r} instead."
        )


def _check_range(obj, name, low, high, *, left_open=False, right_open=False, optional=False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    kind = "an int" if isinstance(low, int) else "a float"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if left_open else value >= low) and (
            high is None or (value < high if right_open else value <= high)
        )
    if not ok:
        span = f"{'(' if left_open else '['}{low}, {'inf)' if high is None else str(high) + (')' if right_open else ']')}"
        raise ConfigError(
            f"The {name!r} parameter of {type(obj).__name__} must be {kind} in the range {span}. Got {value!r} instead."
        )
