"""``POST /v1/predict`` answered without FastAPI's middleware, routing and pydantic validation.

The event loop's time per request bounds the server's throughput (bench/RESULTS.md), so the busiest route
skips what it can of FastAPI's work. The fast path parses the body with orjson and answers only what it
can answer in full: a body in the common form that passes ``schemas.request_texts``, the check the FastAPI
route makes too, while the model is loaded. Anything else (a client's mistake, another form of body, a body
without a content-length, the model still loading) goes on to the route with its body replayed, so that the
route alone words a client's mistakes.
"""
from __future__ import annotations

import time
from typing import Awaitable, Callable

import orjson

from .metrics import Metrics
from .middleware import declared_size, fits, read_body, replaying
from .schemas import ClientError, request_texts
from .settings import ServeConfig


def parse(body: bytes, config: ServeConfig) -> list[str] | None:
    """The texts of a body the fast path may answer: a JSON object with one key, ``text`` (a string) or
    ``texts`` (a list of strings), whose texts pass ``request_texts``; None for any other body."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or len(obj) != 1:
        return None
    text, texts = obj.get("text"), obj.get("texts")
    # the JSON types that TextsIn's fields hold (pydantic words these mistakes, on the route)
    if not (text is None or isinstance(text, str)):
        return None
    if not (texts is None or isinstance(texts, list) and all(isinstance(item, str) for item in texts)):
        return None
    try:
        return request_texts(text, texts, config)
    except (ValueError, ClientError):
        return None


class FastPath:
    """The fast path of one application: ``ready()`` says whether the model is loaded, ``predictions(texts)``
    gives the JSON answer (as the route's), raising ClientError when the queue is full."""

    def __init__(self, config: ServeConfig, ready: Callable[[], bool],
                 predictions: Callable[[list[str]], Awaitable[bytes]], metrics: Metrics):
        self.config, self.ready, self.predictions, self.metrics = config, ready, predictions, metrics

    async def __call__(self, scope, receive, send):
        """Answer a ``POST /v1/predict`` if the fast path can. Returns None once it is answered (or the client
        went away); otherwise the ``receive`` that the FastAPI route is to read the request from."""
        started = time.perf_counter()
        size = declared_size(scope)
        if not self.ready() or size is None or not fits(size, self.config.max_body):
            return receive
        body = await read_body(receive)
        if body is None:  # the client went away
            return None
        replay = replaying(body, receive)
        texts = parse(body, self.config)
        if texts is None:
            return replay
        await self._answer(texts, scope, replay, send, started)
        return None

    async def _answer(self, texts: list[str], scope, receive, send, started: float) -> None:
        status = 500  # until answered: a model failure propagates, and uvicorn answers 500 and logs it
        try:
            payload = await self.predictions(texts)
            status = 200
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
        except ClientError as exc:  # the queue is full
            status = exc.status
            await exc.response()(scope, receive, send)
        finally:
            self.metrics.record("/v1/predict", status, started)
