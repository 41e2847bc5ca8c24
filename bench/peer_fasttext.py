"""fastText supervised with word bigrams. Runs in the peers' environment.

    python peer_fasttext.py FIT.jsonl VAL.jsonl TEST.jsonl WORKDIR   (fastText's default settings: it chooses nothing)
"""
import json
import os
import re
import resource
import sys
import time

import fasttext


def read(path):
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [re.sub(r"[^\w\s]", " ", r["text"].lower()).split() for r in rows], [r["label"] for r in rows]


def accuracy(model, path):
    words, labels = read(path)
    predicted, _ = model.predict([" ".join(w) for w in words])
    return sum(p[0] == f"__label__{y}" for p, y in zip(predicted, labels)) / len(labels)


def main():
    train, val, test, work = sys.argv[1:5]
    words, labels = read(train)
    path = f"{work}/fasttext_train.txt"
    with open(path, "w", encoding="utf-8") as handle:
        for w, label in zip(words, labels):
            handle.write(f"__label__{label} {' '.join(w)}\n")
    started = time.perf_counter()
    model = fasttext.train_supervised(input=path, wordNgrams=2, thread=2, seed=36, verbose=0)
    train_seconds = time.perf_counter() - started
    test_words, _ = read(test)
    lines = [" ".join(w) for w in test_words]
    started = time.perf_counter()
    model.predict(lines)
    seconds = time.perf_counter() - started
    model.save_model(f"{work}/fasttext.bin")  # its size on disk: what a user ships
    size = os.path.getsize(f"{work}/fasttext.bin") / 1e6
    print(json.dumps({"accuracy": accuracy(model, test), "val_accuracy": accuracy(model, val), "train_seconds": train_seconds,
                      "predict_per_s": len(lines) / seconds, "model_mb": size,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
