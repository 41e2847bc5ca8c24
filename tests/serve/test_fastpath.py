"""The fast path of POST /v1/predict and the FastAPI route: one check of a request's texts, the same answers.

A body with a content-length goes to the fast path first; a streamed body (no content-length) goes to the
FastAPI route alone, so posting a body both ways compares the two."""
import json

import pytest

from revsent.serve import ServeConfig
from revsent.serve.fastpath import parse
from revsent.serve.schemas import ClientError, TextsIn, request_texts

from .conftest import LIMITS

CONFIG = ServeConfig("model", **LIMITS)  # the `client` fixture's limits
JSON = {"content-type": "application/json"}


def _both_ways(client, body: bytes):
    """The answers to ``body`` through the fast path (when it takes it) and through the FastAPI route alone."""
    return (client.post("/v1/predict", content=body, headers=JSON),
            client.post("/v1/predict", content=iter([body]), headers=JSON))


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


MISTAKES = {  # a bad body: the status and type of its error
    "too many texts": ({"texts": ["x"] * (LIMITS["max_texts"] + 1)}, 413, "too_many_texts"),
    "a too-long text": ({"texts": ["ok", "a" * (LIMITS["max_chars"] + 1)]}, 413, "text_too_long"),
    "an empty list": ({"texts": []}, 422, "invalid_request"),
    "a non-string item": ({"texts": ["fine", 3]}, 422, "invalid_request"),
    "neither text nor texts": ({"txt": "a"}, 422, "invalid_request"),
    "both": ({"text": "a", "texts": ["b"]}, 422, "invalid_request"),
    "no object": (["great food"], 422, "invalid_request"),
}


@pytest.mark.parametrize("body, status, kind", list(MISTAKES.values()), ids=list(MISTAKES))
def test_a_bad_body_gets_the_same_error_either_way(client, body, status, kind):
    raw = json.dumps(body).encode()
    assert parse(raw, CONFIG) is None  # not the fast path's to answer
    fast, route = _both_ways(client, raw)
    assert fast.status_code == route.status_code == status, fast.text
    assert fast.json() == route.json() and fast.json()["type"] == kind
    assert fast.headers.get("retry-after") == route.headers.get("retry-after") is None


@pytest.mark.parametrize("text, texts", [
    (None, ["x"] * (LIMITS["max_texts"] + 1)),
    ("a" * (LIMITS["max_chars"] + 1), None),
    (None, ["ok", "a" * (LIMITS["max_chars"] + 1)]),
])
def test_the_limits_are_worded_by_the_one_check(client, text, texts):
    with pytest.raises(ClientError) as caught:
        request_texts(text, texts, CONFIG)
    for response in _both_ways(client, json.dumps({"text": text} if texts is None else {"texts": texts}).encode()):
        assert response.status_code == caught.value.status
        assert response.json() == {"error": caught.value.message, "type": caught.value.kind}


@pytest.mark.parametrize("body, text, texts", [
    ({"texts": []}, None, []),
    ({}, None, None),
    ({"text": "a", "texts": ["b"]}, "a", ["b"]),
])
def test_which_texts_a_body_gives_is_worded_by_the_one_check(client, body, text, texts):
    """Neither, both or an empty list: the check's ValueError, as pydantic words a body's mistakes."""
    with pytest.raises(ValueError) as caught:
        request_texts(text, texts, CONFIG)
    for response in _both_ways(client, json.dumps(body).encode()):
        assert response.status_code == 422
        assert response.json() == {"error": f"body: Value error, {caught.value}", "type": "invalid_request"}


ACCEPTED = [
    {"text": "great food"},
    {"text": ""},
    {"texts": ["great food", "rude staff"]},
    {"texts": ["x"] * LIMITS["max_texts"]},  # at the limits: accepted by both
    {"text": "a" * LIMITS["max_chars"]},
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_the_fast_path_takes_what_the_route_accepts_with_the_same_texts(body):
    raw = json.dumps(body).encode()
    checked = TextsIn.model_validate_json(raw)
    expected = body.get("texts", [body.get("text")])
    assert parse(raw, CONFIG) == request_texts(checked.text, checked.texts, CONFIG) == expected


@pytest.mark.parametrize("raw", [
    b'{"texts": ["unclosed', b"", b"null", b'"text"', b"\xff",
    b'{"text": null, "texts": ["a"]}',  # valid, but not the common form: the route answers it
    b'{"texts": "abc"}', b'{"text": ["a"]}', b'{"texts": [null]}', b'{"text": 3}',
])
def test_the_fast_path_leaves_every_other_body_to_the_route(raw):
    assert parse(raw, CONFIG) is None
