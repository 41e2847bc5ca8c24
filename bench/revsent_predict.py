"""Prediction speed of a saved revsent model: batch throughput and single-review latency.

    python revsent_predict.py MODEL VAL.jsonl   -> one JSON line
"""
import json
import resource
import sys
import time

import numpy as np

from revsent import Classifier


def main():
    model, val = sys.argv[1:3]
    rows = [json.loads(line) for line in open(val, encoding="utf-8")]
    texts = [r["text"] for r in rows]
    y = [r["label"] for r in rows]
    clf = Classifier.load(model)
    clf.predict_proba(texts[:64])  # warm up
    started = time.perf_counter()
    proba = clf.predict_proba(texts)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean([clf.classes_[k] == label for k, label in zip(proba.argmax(1), y)]))
    latencies = []
    for text in texts[:100]:
        started = time.perf_counter()
        clf.predict_proba([text])
        latencies.append(time.perf_counter() - started)
    print(json.dumps({"accuracy": accuracy, "predict_per_s": len(texts) / seconds,
                      "latency_ms_median": 1000 * float(np.median(latencies)),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
