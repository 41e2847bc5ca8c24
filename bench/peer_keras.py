"""The tutorial's model in Keras 3, as the tutorial has it. Runs in the peers' environment.

    KERAS_BACKEND=torch|jax python peer_keras.py FIT.jsonl VAL.jsonl TEST.jsonl --batches N --maxlen M

Prints one JSON line: validation and test accuracy (one epoch: nothing is chosen), training seconds (measured, or extrapolated from
``--batches`` batches at full length), prediction throughput and peak RSS.
"""
import argparse
import json
import os
import re
import resource
import time
from collections import Counter

import numpy as np

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def read(path):
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [r["text"] for r in rows], np.array([1 if r["label"] == "positive" else 0 for r in rows])


def tutorial_words(text):
    """The tutorial: regex strip, then Keras Tokenizer's default filters and split."""
    text = re.sub(r"[^a-zA-z0-9\s]", "", text.lower())
    return [w for w in text.translate(str.maketrans(FILTERS, " " * len(FILTERS))).split(" ") if w]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("val")
    parser.add_argument("test")
    parser.add_argument("--batches", type=int, default=0, help="time this many batches and extrapolate (0: one real epoch)")
    parser.add_argument("--maxlen", type=int, default=0, help="0: pad to the longest review, as the tutorial")
    args = parser.parse_args()
    import keras
    from keras import layers

    keras.utils.set_random_seed(36)
    train_texts, train_y = read(args.train)
    val_texts, val_y = read(args.val)
    test_texts, test_y = read(args.test)
    train_words = [tutorial_words(t) for t in train_texts]
    counts = Counter(w for words in train_words for w in words)
    index = {w: i + 1 for i, (w, _) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])[:2499])}
    encode = lambda words: [index[w] for w in words if w in index]  # noqa: E731
    train_seq = [encode(w) for w in train_words]
    val_seq = [encode(tutorial_words(t)) for t in val_texts]
    test_seq = [encode(tutorial_words(t)) for t in test_texts]
    maxlen = args.maxlen or max(len(s) for s in train_seq)
    x_train = keras.utils.pad_sequences(train_seq, maxlen=maxlen)
    x_val = keras.utils.pad_sequences(val_seq, maxlen=maxlen)
    x_test = keras.utils.pad_sequences(test_seq, maxlen=maxlen)
    y_train = keras.utils.to_categorical(train_y, 2)
    model = keras.Sequential([
        keras.Input(shape=(maxlen,)),
        layers.Embedding(2500, 128),
        layers.LSTM(200, dropout=0.2, recurrent_dropout=0.2),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    steps = int(np.ceil(len(x_train) / 32))
    result = {"backend": os.environ.get("KERAS_BACKEND"), "maxlen": int(maxlen), "steps_per_epoch": steps}
    if args.batches:
        model.train_on_batch(x_train[:32], y_train[:32])  # compile / warm up, not counted
        started = time.perf_counter()
        for b in range(1, args.batches + 1):
            model.train_on_batch(x_train[b * 32:(b + 1) * 32], y_train[b * 32:(b + 1) * 32])
        per_batch = (time.perf_counter() - started) / args.batches
        result.update(train_seconds=per_batch * steps, extrapolated_from_batches=args.batches)
    else:
        started = time.perf_counter()
        model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0)
        result["train_seconds"] = time.perf_counter() - started
        model.predict(x_test[:64], verbose=0)  # warm up
        started = time.perf_counter()
        proba = model.predict(x_test, verbose=0)
        seconds = time.perf_counter() - started
        val_proba = model.predict(x_val, verbose=0)
        result.update(accuracy=float((proba.argmax(1) == test_y).mean()), predict_per_s=len(x_test) / seconds,
                      val_accuracy=float((val_proba.argmax(1) == val_y).mean()))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
