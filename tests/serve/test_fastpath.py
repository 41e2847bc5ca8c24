"""The fast path of POST /v1/predict: well-formed bodies answered without FastAPI, the rest by its route."""


def test_bodies_off_the_fast_path_get_the_same_answers(client):
    """Well-formed bodies skip FastAPI (fastpath.FastPath); the rest replay to its route, alike."""
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
