"""What the serving tests share: a tiny model, an application on it, and `revsent serve` run as a user runs it."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from revsent import Classifier
from revsent.serve import ServeConfig, create_app

from ..conftest import NEGATIVE, POSITIVE, TINY

TEXTS, LABELS = POSITIVE * 4 + NEGATIVE * 4, ["positive"] * 24 + ["negative"] * 24


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model"
    Classifier(preset="seed", **{**TINY, "ngram_buckets": 1000}).fit(TEXTS, LABELS).save(path)
    return path


# the limits of the `client` fixture's application, small enough to be crossed in a test
LIMITS = dict(max_texts=8, max_chars=200, max_body=2000)


@pytest.fixture
def client(model_dir):
    with TestClient(create_app(ServeConfig(str(model_dir), **LIMITS))) as client:
        wait_ready(client)
        yield client


def wait_ready(client, seconds=30):
    deadline = time.time() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.time() < deadline, "the model did not load"
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REVSENT = str(Path(sys.executable).parent / "revsent")  # the console script, as a user runs it


def serve_process(*args) -> subprocess.Popen:
    """``revsent serve ARGS --threads 1`` as its own process; its stderr is a pipe."""
    return subprocess.Popen([REVSENT, "serve", *map(str, args), "--threads", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def start_server(model_dir, *extra):
    """``revsent serve`` as a user runs it, on 127.0.0.1; returns (process, base URL) once ready."""
    port = free_port()
    proc = serve_process(model_dir, "--port", port, "--log-level", "warning", *extra)
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
