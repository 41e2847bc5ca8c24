"""TF-IDF (1-2 grams) + logistic regression on the same split.  -> one JSON line"""
import json
import resource
import sys
import time

import numpy as np

from revsent.evaluate import tfidf_baseline


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], np.array([r["label"] == "positive" for r in rows], dtype=np.int64)


def main():
    (train_texts, train_y), (val_texts, val_y) = read(sys.argv[1]), read(sys.argv[2])
    started = time.perf_counter()
    result = tfidf_baseline(train_texts, train_y, val_texts, val_y, ["negative", "positive"])
    print(json.dumps({"accuracy": result["accuracy"], "train_seconds": time.perf_counter() - started,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
