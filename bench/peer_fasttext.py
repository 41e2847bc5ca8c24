"""fastText supervised with word bigrams. Runs in the peers' environment.

    python peer_fasttext.py TRAIN.jsonl VAL.jsonl WORKDIR
"""
import json
import re
import resource
import sys
import time

import fasttext


def read(path):
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [re.sub(r"[^\w\s]", " ", r["text"].lower()).split() for r in rows], [r["label"] for r in rows]


def main():
    train, val, work = sys.argv[1:4]
    words, labels = read(train)
    path = f"{work}/fasttext_train.txt"
    with open(path, "w", encoding="utf-8") as handle:
        for w, label in zip(words, labels):
            handle.write(f"__label__{label} {' '.join(w)}\n")
    started = time.perf_counter()
    model = fasttext.train_supervised(input=path, wordNgrams=2, thread=2, seed=36, verbose=0)
    train_seconds = time.perf_counter() - started
    val_words, val_labels = read(val)
    lines = [" ".join(w) for w in val_words]
    started = time.perf_counter()
    predicted, _ = model.predict(lines)
    seconds = time.perf_counter() - started
    accuracy = sum(p[0] == f"__label__{y}" for p, y in zip(predicted, val_labels)) / len(val_labels)
    print(json.dumps({"accuracy": accuracy, "train_seconds": train_seconds, "predict_per_s": len(lines) / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
