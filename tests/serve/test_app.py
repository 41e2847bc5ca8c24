"""The HTTP API: predictions and explanations, client mistakes as JSON errors, readiness, metrics, the page."""
import json
import threading
from pathlib import Path

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


def _chunks(body: bytes, size: int = 500):
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_a_chunked_body_is_held_to_the_same_limit(client):
    """No content-length: the body is counted as it arrives, and refused once past --max-body."""
    for route in ("/v1/predict", "/v1/explain"):
        small = client.post(route, content=_chunks(b'{"text": "great friendly food"}'),
                            headers={"content-type": "application/json"})
        assert small.status_code == 200 and "content-length" not in small.request.headers, small.text
        large = client.post(route, content=_chunks(b'{"text": "' + b"a" * 3000 + b'"}'),
                            headers={"content-type": "application/json"})
        assert large.status_code == 413 and large.json()["type"] == "body_too_large"
    assert client.post("/v1/predict", json={"text": "great food"}).status_code == 200  # and it serves on


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/explain"])
def test_a_lone_surrogate_is_a_character_like_any_other(client, route):
    body = b'{"text": "great \\udfff food"}'  # a JSON escape of a lone surrogate
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    if route == "/v1/explain":
        assert [t["text"] for t in response.json()["explanations"][0]["tokens"]] == ["great", "\ufffd", "food"]


def test_explain_endpoint(client):
    response = client.post("/v1/explain", json={"text": "great friendly food, rude staff"})
    assert response.status_code == 200
    explanation = response.json()["explanations"][0]
    assert [t["text"] for t in explanation["tokens"]] == ["great", "friendly", "food,", "rude", "staff"]
    assert explanation["label"] in ("positive", "negative")
    total = sum(t["attribution"] for t in explanation["tokens"])
    assert abs(total - (explanation["margin"] - explanation["baseline_margin"])) <= abs(explanation["delta"]) + 1e-4


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
UNKNOWN = "zzyzx qwxv"  # no word the models know


def test_predictions_count_the_words_the_model_knows_both_ways(client, model_dir):
    body = json.dumps({"texts": ["great friendly food", UNKNOWN, "great zzyzx", ""]}).encode()
    fast = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    route = client.post("/v1/predict", content=iter([body]), headers={"content-type": "application/json"})
    assert fast.status_code == route.status_code == 200
    assert [p["known_words"] for p in fast.json()["predictions"]] == [3, 0, 1, 0]
    assert fast.json() == route.json()
    # the text read nothing: its probabilities are the model's prior, the same for every such text
    rows = fast.json()["predictions"]
    assert rows[1]["probabilities"] == pytest.approx(rows[3]["probabilities"], abs=1e-6)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "known_words" in schema["PredictionOut"]["required"]
    assert "vocabulary knows" in schema["PredictionOut"]["properties"]["known_words"]["description"]
    assert "known_words" in schema["ExplanationOut"]["properties"]


def test_explanations_count_the_words_the_model_knows(client):
    rows = client.post("/v1/explain", json={"texts": ["great friendly food, rude staff", UNKNOWN]}).json()
    assert [e["known_words"] for e in rows["explanations"]] == [5, 0]
    assert {"margin", "baseline_margin", "delta"} <= set(rows["explanations"][0])  # the other figures kept
    assert {"word", "lstm", "ngrams"} <= set(rows["explanations"][0]["tokens"][0])


def test_model_info_says_what_the_model_learnt_from(client):
    about = client.get("/v1/model").json()["about"]
    # fitted in Python: no training files, no metrics.json
    assert about == {"data": None, "classes": ["negative", "positive"], "test_accuracy": None, "n_test": None,
                     "domain": "general"}


def test_the_onnx_backend_counts_known_words_and_describes_its_model():
    package = FIXTURES / "model-dense-wide" / "onnx"
    with TestClient(create_app(ServeConfig(str(package), backend="onnx", threads=1))) as client:
        wait_ready(client)
        rows = client.post("/v1/predict", json={"texts": ["a great film", UNKNOWN]}).json()["predictions"]
        assert [r["known_words"] for r in rows] == [3, 0]
        about = client.get("/v1/model").json()["about"]
    assert about == {"data": "IMDB movie reviews (the bundled sample)", "classes": ["negative", "positive"],
                     "test_accuracy": 0.6375, "n_test": 80, "domain": "movies"}


@pytest.mark.parametrize("data, metrics, expected", [
    (dict(paths=("yelp_academic_dataset_review.json",)), None,
     ("yelp_academic_dataset_review.json", "restaurants")),
    (dict(paths=("yelp.tar",), category="Restaurants"), None, ("yelp.tar, category 'Restaurants'", "restaurants")),
    (dict(paths=("yelp.tar",), category="Hotels & Travel"), None, ("yelp.tar, category 'Hotels & Travel'", "general")),
    (dict(paths=("rt",)), None, ("Rotten Tomatoes movie-review sentences (the bundled sample)", "movies")),
    (dict(paths=()), {"accuracy": 0.9, "n_test": 10}, ("IMDB movie reviews (the bundled sample)", "movies")),
    (dict(paths=("data/reviews.csv",)), None, ("reviews.csv", "general")),
])
def test_about_names_the_data_and_its_domain(data, metrics, expected):
    from revsent.config import Config
    from revsent.serve.service import about

    cfg = Config.from_preset("seed", **data)
    got = about(cfg, ["negative", "positive"], metrics)
    assert (got["data"], got["domain"]) == expected
    assert got["test_accuracy"] == (metrics or {}).get("accuracy")


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/explain"])
def test_hostile_bodies_are_client_errors(client, route):
    nested = b"[" * 1900 + b"]" * 1900  # within --max-body, deeper than any parser's recursion limit
    cases = [(nested, "application/json"), (b'{"text": ' + nested[:900] + nested[-900:] + b"}", "application/json"),
             (b"\xff\xfe\x00", "application/json"), (b"", "application/json"),
             (b'{"text": "good", "text": 5}', "application/json"), (b'{"texts": [' + b'"a",' * 300 + b'"a"]}',
                                                                   "application/json")]
    for body, content_type in cases:
        response = client.post(route, content=body, headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (body[:40], response.status_code, response.text[:200])
        assert response.json()["error"]
    for method in ("PUT", "DELETE", "PATCH"):
        assert client.request(method, route, json={"text": "good"}).status_code == 405
    assert client.post(route, json={"text": "great food"}).status_code == 200  # and it serves on
