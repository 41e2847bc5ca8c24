"""TF-IDF (1-2 grams) + logistic regression, C chosen on the validation slice.  -> one JSON line

    python tfidf_lr.py FIT.jsonl[,MORE.jsonl...] VAL.jsonl TEST.jsonl

Several training files (comma-separated) are fitted on together.
"""
import json
import resource
import sys
import time

import numpy as np

from revsent.baseline import tfidf_baseline


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], np.array([r["label"] == "positive" for r in rows], dtype=np.int64)


def main():
    fits = [read(path) for path in sys.argv[1].split(",")]
    fit_texts, fit_y = [t for texts, _ in fits for t in texts], np.concatenate([y for _, y in fits])
    val, (test_texts, test_y) = read(sys.argv[2]), read(sys.argv[3])
    started = time.perf_counter()
    result = tfidf_baseline(fit_texts, fit_y, test_texts, test_y, ["negative", "positive"], val=val)
    print(json.dumps({"accuracy": result["accuracy"], "val_accuracy": result["validation_accuracy_by_C"][str(result["C"])],
                      "C": result["C"], "train_seconds": time.perf_counter() - started, "ece": result["ece"],
                      "model_mb": result["model_bytes"] / 1e6,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
