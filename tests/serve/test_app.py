"""The HTTP API: predictions and explanations, client mistakes as JSON errors, readiness, metrics, the page."""
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from revsent import Classifier
from revsent.serve import ServeConfig, Service, create_app

from .conftest import wait_ready


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
    large = client.post("/v1/predict", content=b'{"text": "' + b"a" * 3000 + b'"}',
                        headers={"content-type": "application/json"})
    assert large.status_code == 413 and large.json()["type"] == "body_too_large"
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()["error"]
    assert client.get("/v1/predict").status_code == 405


def test_a_failing_model_is_a_500_and_counted(model_dir):
    class Broken(Service):
        def predict(self, texts):
            raise RuntimeError("out of memory")

    config = ServeConfig(str(model_dir))
    with TestClient(create_app(config, Broken(config)), raise_server_exceptions=False) as client:
        wait_ready(client)
        assert client.post("/v1/predict", json={"text": "good"}).status_code == 500  # the fast path
        # FastAPI's route
        assert client.post("/v1/predict", json={"text": None, "texts": ["good"]}).status_code == 500
        assert client.get("/readyz").status_code == 200  # the server goes on
        assert 'revsent_requests_total{route="/v1/predict",status="500"} 2.0' in client.get("/metrics").text


def test_full_queue_is_429(model_dir):
    with TestClient(create_app(ServeConfig(str(model_dir), max_queue=2))) as client:
        wait_ready(client)
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
        wait_ready(client)
        assert client.post("/v1/predict", json={"text": "good"}).status_code == 200


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
