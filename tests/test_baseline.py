import numpy as np

from revsent.baseline import tfidf_baseline


def test_tfidf_baseline_learns():
    texts = ["good great fine", "great good lovely", "bad awful poor", "awful bad terrible"] * 5
    y = np.array([1, 1, 0, 0] * 5)
    m = tfidf_baseline(texts, y, ["good lovely", "terrible poor"], np.array([1, 0]), ["neg", "pos"])
    assert m["accuracy"] == 1.0
