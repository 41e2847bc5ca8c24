"""revsent serve: the HTTP API, micro-batching, limits and errors, metrics, the server process."""
import asyncio
import json
import re
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from revsent import Classifier
from revsent.serve import MicroBatcher, QueueFull, ServeConfig, Service, create_app

from .conftest import NEGATIVE, POSITIVE, TINY

TEXTS, LABELS = POSITIVE * 4 + NEGATIVE * 4, ["positive"] * 24 + ["negative"] * 24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model"
    Classifier(preset="seed", **{**TINY, "ngram_buckets": 1000}).fit(TEXTS, LABELS).save(path)
    return path


@pytest.fixture
def client(model_dir):
    with TestClient(create_app(ServeConfig(str(model_dir), max_texts=8, max_chars=200, max_body=2000))) as client:
        _wait_ready(client)
        yield client


def _wait_ready(client, seconds=30):
    deadline = time.time() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.time() < deadline, "the model did not load"
        time.sleep(0.05)


def test_predict_one_and_many_match_the_python_api(client, model_dir):
    expected = Classifier.load(model_dir).predict_proba(["great friendly food", "rude awful staff"])
    many = client.post("/v1/predict", json={"texts": ["great friendly food", "rude awful staff"]})
    assert many.status_code == 200
    rows = many.json()["predictions"]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    got = np.array([[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    one = client.post("/v1/predict", json={"text": "great friendly food"}).json()["predictions"]
    assert len(one) == 1 and one[0]["label"] == rows[0]["label"]
    # a batch of one and of two may take different matrix kernels: equal up to float32 rounding
    assert one[0]["probabilities"] == pytest.approx(rows[0]["probabilities"], abs=1e-6)


@pytest.mark.parametrize("body, status, kind", [
    ({"texts": ["x"] * 9}, 413, "too_many_texts"),
    ({"text": "good " * 50}, 413, "text_too_long"),
    ({"texts": []}, 422, "invalid_request"),
    ({"texts": ["fine", 3]}, 422, "invalid_request"),
    ({"text": 3}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
    ({"text": "a", "texts": ["b"]}, 422, "invalid_request"),
    ({"txt": "a"}, 422, "invalid_request"),
    (["great food"], 422, "invalid_request"),
])
def test_client_mistakes_get_json_errors(client, body, status, kind):
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status, response.text
    assert response.json()["type"] == kind and response.json()["error"]


def test_malformed_json_and_large_bodies(client):
    bad = client.post("/v1/predict", content=b'{"texts": ["unclosed', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["type"] == "invalid_request"
    large = client.post("/v1/predict", content=b'{"text": "' + b"a" * 3000 + b'"}', headers={"content-type": "application/json"})
    assert large.status_code == 413 and large.json()["type"] == "body_too_large"
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()["error"]
    assert client.get("/v1/predict").status_code == 405


def test_bodies_off_the_fast_path_get_the_same_answers(client):
    """Well-formed bodies skip FastAPI (serve.fast_predict); the rest replay to its route, alike."""
    fast = client.post("/v1/predict", json={"texts": ["great friendly food"]})
    replayed = [
        client.post("/v1/predict", json={"text": None, "texts": ["great friendly food"]}),  # valid, not the common form
        client.post("/v1/predict", content=iter([b'{"texts": ', b'["great friendly food"]}']),  # no content-length
                    headers={"content-type": "application/json"}),
    ]
    for response in replayed:
        assert response.status_code == 200, response.text
        assert response.json() == fast.json()
    assert fast.headers["content-type"] == "application/json"
    metrics = client.get("/metrics").text
    assert 'revsent_requests_total{route="/v1/predict",status="200"} 3.0' in metrics


def test_a_failing_model_is_a_500_and_counted(model_dir):
    class Broken(Service):
        def predict(self, texts):
            raise RuntimeError("out of memory")

    config = ServeConfig(str(model_dir))
    with TestClient(create_app(config, Broken(config)), raise_server_exceptions=False) as client:
        _wait_ready(client)
        assert client.post("/v1/predict", json={"text": "good"}).status_code == 500  # the fast path
        assert client.post("/v1/predict", json={"text": None, "texts": ["good"]}).status_code == 500  # FastAPI's route
        assert client.get("/readyz").status_code == 200  # the server goes on
        assert 'revsent_requests_total{route="/v1/predict",status="500"} 2.0' in client.get("/metrics").text


def test_full_queue_is_429(model_dir):
    with TestClient(create_app(ServeConfig(str(model_dir), max_queue=2))) as client:
        _wait_ready(client)
        assert client.post("/v1/predict", json={"texts": ["a", "b"]}).status_code == 200
        response = client.post("/v1/predict", json={"texts": ["a", "b", "c"]})
        assert response.status_code == 429 and response.json()["type"] == "queue_full"
        assert response.headers["retry-after"] == "1"


def test_not_ready_until_loaded(model_dir):
    release = threading.Event()

    class SlowService(Service):
        def load(self):
            release.wait(10)
            super().load()

    config = ServeConfig(str(model_dir))
    with TestClient(create_app(config, SlowService(config))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503
        response = client.post("/v1/predict", json={"text": "good"})
        assert response.status_code == 503 and response.json()["type"] == "not_ready"
        release.set()
        _wait_ready(client)
        assert client.post("/v1/predict", json={"text": "good"}).status_code == 200


class _ThreadRecorder(Service):
    """Notes the thread of each kind of model work."""

    def __init__(self, config):
        super().__init__(config)
        self.threads = {}

    def load(self):
        self.threads.setdefault("load", set()).add(threading.get_ident())
        super().load()

    def predict(self, texts):
        self.threads.setdefault("predict", set()).add(threading.get_ident())
        return super().predict(texts)

    def explain(self, texts):
        self.threads.setdefault("explain", set()).add(threading.get_ident())
        return super().explain(texts)


def _use_every_kind_of_work(client):
    for text in ("good", "bad food"):
        assert client.post("/v1/predict", json={"text": text}).status_code == 200
    assert client.post("/v1/explain", json={"text": "good food"}).status_code == 200


def test_the_model_is_loaded_and_run_on_one_thread(model_dir, monkeypatch):
    """PyTorch's CPU kernels slow down several times once two threads have used them (see
    ``serve.model_thread``): loading, predictions and explanations share one thread, off the loop."""
    config = ServeConfig(str(model_dir))
    service = _ThreadRecorder(config)
    with TestClient(create_app(config, service)) as client:  # loaded by the app's start-up
        _wait_ready(client)
        _use_every_kind_of_work(client)
    assert set(service.threads) == {"load", "predict", "explain"}
    assert len(set.union(*service.threads.values())) == 1
    assert threading.get_ident() not in service.threads["load"]

    import uvicorn

    from revsent import serve as serve_module

    apps, services = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr(serve_module, "Service", lambda config: services.append(_ThreadRecorder(config)) or services[-1])
    serve_module.serve(config)  # `revsent serve`: loaded before listening
    with TestClient(apps[0]) as client:
        _use_every_kind_of_work(client)
    assert set(services[0].threads) == {"load", "predict", "explain"}
    assert len(set.union(*services[0].threads.values())) == 1
    assert threading.get_ident() not in services[0].threads["load"]


def test_model_info_metrics_docs_and_page(client):
    info = client.get("/v1/model").json()
    assert info["classes"] == ["negative", "positive"] and info["preset"] == "seed"
    assert info["settings"]["model"]["ngram_buckets"] == 1000 and info["serving"]["max_texts"] == 8
    client.post("/v1/predict", json={"text": "good"})
    client.post("/v1/predict", json={"texts": []})
    metrics = client.get("/metrics").text
    assert 'revsent_requests_total{route="/v1/predict",status="200"}' in metrics
    assert 'revsent_requests_total{route="/v1/predict",status="422"}' in metrics
    assert "revsent_request_seconds_bucket" in metrics and "revsent_batch_texts_count" in metrics
    assert client.get("/docs").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and '<textarea id="text"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # works offline: nothing fetched from elsewhere


def test_explain_endpoint(client):
    response = client.post("/v1/explain", json={"text": "great friendly food, rude staff"})
    assert response.status_code == 200
    explanation = response.json()["explanations"][0]
    assert [t["text"] for t in explanation["tokens"]] == ["great", "friendly", "food,", "rude", "staff"]
    assert explanation["label"] in ("positive", "negative")
    total = sum(t["attribution"] for t in explanation["tokens"])
    assert abs(total - (explanation["margin"] - explanation["baseline_margin"])) <= abs(explanation["delta"]) + 1e-4


def test_concurrent_requests_share_model_calls_and_answer_as_alone(client, model_dir):
    texts = [f"{a} {b}" for a in POSITIVE + NEGATIVE for b in ("food", "staff", "place")]
    alone = Classifier.load(model_dir).predict_proba(texts)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda text: client.post("/v1/predict", json={"text": text}), texts))
    got = np.array([[r.json()["predictions"][0]["probabilities"][c] for c in ("negative", "positive")] for r in responses])
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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REVSENT = str(Path(sys.executable).parent / "revsent")  # the console script, as a user runs it


def _serve(*args) -> subprocess.Popen:
    """``revsent serve ARGS --threads 1`` as its own process; its stderr is a pipe."""
    return subprocess.Popen([REVSENT, "serve", *map(str, args), "--threads", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def start_server(model_dir, *extra):
    """``revsent serve`` as a user runs it, on 127.0.0.1; returns (process, base URL) once ready."""
    port = _free_port()
    proc = _serve(model_dir, "--port", port, "--log-level", "warning", *extra)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"revsent serve exited: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("revsent serve did not become ready")


def test_server_process_answers_and_stops_cleanly_on_sigterm(model_dir):
    proc, url = start_server(model_dir)
    try:
        assert httpx.post(url + "/v1/predict", json={"text": "great food"}).json()["predictions"][0]["label"] == "positive"
        with ThreadPoolExecutor(8) as pool:  # requests in flight when SIGTERM comes still get their answers
            futures = [pool.submit(httpx.post, url + "/v1/explain", json={"text": "great food and friendly staff"}, timeout=30)
                       for _ in range(8)]
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in futures]
        assert statuses == [200] * 8
        # uvicorn finishes the requests, then ends by the signal it caught (the shell's convention)
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_serve_refuses_a_missing_model_with_one_line(tmp_path):
    result = subprocess.run([REVSENT, "serve", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("revsent: error:") and len(result.stderr.strip().splitlines()) == 1


def _children(proc) -> list[int]:
    """The workers ``proc`` started (``revsent serve --workers``): its children but for
    multiprocessing's resource tracker."""
    pids = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
    return [pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _listening(pids, port, count: int, seconds: float = 60) -> dict[int, set[str]]:
    """Wait until ``count`` of ``pids`` listen on ``port`` (a worker answers /readyz while the other
    may still be loading its model); returns the listening sockets by process."""
    deadline = time.time() + seconds
    while True:
        found = {pid: held for pid, held in _sockets_by_process(pids, port, "0A").items() if held}
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.1)


def _sockets_by_process(pids, port, state: str) -> dict[int, set[str]]:
    """The sockets on the server's ``port`` in ``state`` ("01" established, "0A" listening) that each
    of ``pids`` holds, by inode (the kernel's tables in /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:  # the local port
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except FileNotFoundError:  # closed since the listing (a worker still starting)
                pass
        held[pid] = {link[8:-1] for link in links if link.startswith("socket:[") and link[8:-1] in inodes}
    return held


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_workers_share_the_port_evenly_and_stop_together(model_dir):
    proc, url = start_server(model_dir, "--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    workers = _children(proc)
    try:
        assert len(workers) == 2, workers
        _listening(workers, port, 2)
        body = json.dumps({"text": "great friendly food"}).encode()
        request = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]  # kept alive, as a load test's
        for client in clients:
            client.sendall(request)
        for client in clients:
            reader = client.makefile("rb")
            head = [reader.readline()]
            while head[-1] not in (b"\r\n", b""):
                head.append(reader.readline())
            size = next(int(line.split(b":")[1]) for line in head if line.lower().startswith(b"content-length:"))
            assert head[0].startswith(b"HTTP/1.1 200") and b'"positive"' in reader.read(size)
        # each process listens on a socket of its own (SO_REUSEPORT; on one shared socket the first
        # process awake took 28 of 32 connections), and the kernel spreads the connections over them
        listening = {pid: found for pid, found in _sockets_by_process(workers, port, "0A").items() if found}
        assert len(listening) == 2 and len(set.union(*listening.values())) == 2, listening
        held = {pid: len(found) for pid, found in _sockets_by_process(workers, port, "01").items() if found}
        assert held.keys() == listening.keys() and sum(held.values()) == 32 and min(held.values()) >= 4, held
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in held)
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        for pid in workers:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def test_workers_refuse_a_port_in_use_and_a_missing_model_with_one_line(model_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode != 0 and busy.stderr.startswith("revsent: error: cannot listen on 127.0.0.1:")
    nowhere = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2", "--host", "nosuch.invalid"],
                             capture_output=True, text=True, timeout=60)
    assert nowhere.returncode != 0 and nowhere.stderr.startswith("revsent: error: cannot listen on nosuch.invalid:")
    assert len(nowhere.stderr.strip().splitlines()) == 1, nowhere.stderr
    missing = subprocess.run([REVSENT, "serve", str(tmp_path / "nothing"), "--workers", "2", "--port", str(_free_port())],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("revsent: error:") and len(missing.stderr.strip().splitlines()) == 1, missing.stderr


def test_workers_stop_when_their_parent_is_killed(model_dir):
    proc, url = start_server(model_dir, "--workers", "2")
    workers = _children(proc)
    try:
        assert len(workers) == 2, workers
        proc.kill()  # SIGKILL: nothing passes a signal on
        proc.wait(10)
        deadline = time.time() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers outlived their parent"
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _stop(proc) -> str:
    """SIGTERM, then what the server wrote to stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[1]
    finally:
        proc.kill()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_workers_on_port_0_share_the_port_the_system_chose_and_say_which(model_dir):
    proc = _serve(model_dir, "--workers", "2", "--port", "0")
    try:
        lines = []
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
        deadline, match = time.time() + 60, None
        while time.time() < deadline and not match and proc.poll() is None:
            match = next(filter(None, (re.search(r"2 workers serving on http://127\.0\.0\.1:(\d+)", line)
                                       for line in list(lines))), None)
            time.sleep(0.1)
        assert match, lines
        port = int(match.group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        listening = _listening(_children(proc), port, 2)
        assert len(listening) == 2, listening  # both workers on the one port (each took a port of its own before)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        time.sleep(0.5)  # the reader thread takes the last lines
        assert not any("Traceback" in line for line in lines)
    finally:
        proc.kill()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_the_port_is_held_while_the_workers_load_so_a_second_server_is_refused(model_dir):
    port = _free_port()
    first = _serve(model_dir, "--workers", "2", "--port", port, "--log-level", "warning")
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # what another server's check finds: the port taken, and since when
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    break
            time.sleep(0.02)
        # taken before any worker listens: the parent holds it from its check on (before, it was
        # free until the workers had loaded their models, and a second server could join them)
        assert not _listening(_children(first), port, 1, seconds=0), "the port was free until the workers listened"
        second = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2",
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and second.stderr.startswith(f"revsent: error: cannot listen on 127.0.0.1:{port}")
        assert len(_listening(_children(first), port, 2)) == 2  # the first server goes on
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert "Traceback" not in _stop(first)
    finally:
        first.kill()
