"""The model's one thread: loading, predictions and explanations all run on it, off the event loop."""
import threading

from fastapi.testclient import TestClient

from revsent.serve import ServeConfig, Service, create_app

from .conftest import wait_ready


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
    ``batcher.model_thread``): loading, predictions and explanations share one thread, off the loop."""
    config = ServeConfig(str(model_dir))
    service = _ThreadRecorder(config)
    with TestClient(create_app(config, service)) as client:  # loaded by the app's start-up
        wait_ready(client)
        _use_every_kind_of_work(client)
    assert set(service.threads) == {"load", "predict", "explain"}
    assert len(set.union(*service.threads.values())) == 1
    assert threading.get_ident() not in service.threads["load"]

    import uvicorn

    from revsent.serve import run

    apps, services = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr(run, "Service", lambda config: services.append(_ThreadRecorder(config)) or services[-1])
    run.serve(config)  # `revsent serve`: loaded before listening
    with TestClient(apps[0]) as client:
        _use_every_kind_of_work(client)
    assert set(services[0].threads) == {"load", "predict", "explain"}
    assert len(set.union(*services[0].threads.values())) == 1
    assert threading.get_ident() not in services[0].threads["load"]
