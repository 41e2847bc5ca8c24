"""TF-IDF (1-2 grams) + logistic regression, C chosen on the validation slice.  -> one JSON line

    python tfidf_lr.py FIT.jsonl VAL.jsonl TEST.jsonl
"""
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
    (fit_texts, fit_y), val, (test_texts, test_y) = read(sys.argv[1]), read(sys.argv[2]), read(sys.argv[3])
    started = time.perf_counter()
    result = tfidf_baseline(fit_texts, fit_y, test_texts, test_y, ["negative", "positive"], val=val)
    print(json.dumps({"accuracy": result["accuracy"], "val_accuracy": result["validation_accuracy_by_C"][str(result["C"])],
                      "C": result["C"], "train_seconds": time.perf_counter() - started,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
