"""Micro-batching: requests merged into model calls within size and wait, each answered with its own rows."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from revsent import Classifier
from revsent.serve import MicroBatcher, QueueFull

from ..conftest import NEGATIVE, POSITIVE


def test_concurrent_requests_share_model_calls_and_answer_as_alone(client, model_dir):
    texts = [f"{a} {b}" for a in POSITIVE + NEGATIVE for b in ("food", "staff", "place")]
    alone = Classifier.load(model_dir).predict_proba(texts)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda text: client.post("/v1/predict", json={"text": text}), texts))
    got = np.array([[r.json()["predictions"][0]["probabilities"][c] for c in ("negative", "positive")]
                    for r in responses])
    np.testing.assert_allclose(got, alone, atol=1e-6)
    sizes = _histogram(client.get("/metrics").text, "revsent_batch_texts")
    assert sizes["count"] < len(texts), "no two requests shared a model call"


def _histogram(text, name):
    values = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_count"):
            values["count"] = float(line.split()[-1])
        if line.startswith(f"{name}_sum"):
            values["sum"] = float(line.split()[-1])
    return values


def test_micro_batcher_merges_within_size_and_wait():
    calls = []

    def run(texts):
        calls.append(list(texts))
        return np.array([[float(t)] for t in texts])

    async def main():
        batcher = MicroBatcher(run, max_batch=4, max_wait=0.2, max_queue=100)
        batcher.start()
        requests = [["1"], ["2", "3"], ["4"], ["5", "6", "7"], ["8"]]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        with pytest.raises(QueueFull):
            await batcher.submit(["x"] * 101)
        await batcher.stop()
        return requests, results

    requests, results = asyncio.run(main())
    for request, result in zip(requests, results):  # every request gets its own rows back
        assert [int(v) for v in result[:, 0]] == [int(t) for t in request]
    assert all(len(call) <= 4 for call in calls) and len(calls) < len(requests)
    assert sorted(t for call in calls for t in call) == [str(i) for i in range(1, 9)]


def test_micro_batcher_stops_waiting_once_as_many_requests_as_last_time_came():
    """With N clients in step (each sends again when answered), a batch that holds N requests
    goes at once instead of waiting out ``max_wait``; the first batch, with no history, waits."""
    calls = []

    def run(texts):
        calls.append(list(texts))
        return np.zeros((len(texts), 1))

    async def main():
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(run, max_batch=64, max_wait=0.5, max_queue=100)
        batcher.start()
        started = loop.time()
        await asyncio.gather(*(batcher.submit([f"a{i}"]) for i in range(3)))
        first = loop.time() - started
        started = loop.time()
        await asyncio.wait_for(asyncio.gather(*(batcher.submit([f"b{i}"]) for i in range(3))), 0.25)
        second = loop.time() - started
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert first >= 0.5  # no history: the first batch waited for more
    assert second < 0.25  # three again, as last time: no wait (wait_for raises otherwise)
    assert calls == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]


def test_micro_batcher_waits_again_when_fewer_came_than_last_time():
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        batcher = MicroBatcher(lambda texts: calls.append(list(texts)) or np.zeros((len(texts), 1)), 64, 0.3, 100)
        batcher.start()
        await asyncio.gather(*(batcher.submit([str(i)]) for i in range(2)))
        started = loop.time()
        late = asyncio.ensure_future(asyncio.sleep(0.1))
        first = asyncio.ensure_future(batcher.submit(["x"]))
        await late
        second = batcher.submit(["y"])  # came 0.1 s later, within the wait: the same call
        await asyncio.gather(first, second)
        waited = loop.time() - started
        await batcher.stop()
        return waited

    waited = asyncio.run(main())
    assert calls == [["0", "1"], ["x", "y"]]
    assert 0.1 <= waited < 0.3


def test_micro_batching_off_runs_each_request_alone():
    calls = []

    async def main():
        batcher = MicroBatcher(lambda texts: calls.append(list(texts)) or np.zeros((len(texts), 1)), 1, 0.2, 100)
        batcher.start()
        await asyncio.gather(*(batcher.submit([str(i), str(i)]) for i in range(3)))
        await batcher.stop()

    asyncio.run(main())
    assert calls == [["0", "0"], ["1", "1"], ["2", "2"]]
