"""What every request passes through: the body-size limit and the request metrics, as plain ASGI.

Plain ASGI costs a fraction of what Starlette's ``BaseHTTPMiddleware`` does per request, and the event loop's
time per request bounds the server's throughput.
"""
from __future__ import annotations

import time

from .metrics import Metrics
from .schemas import error_response


def declared_size(scope) -> bytes | None:
    """The request's content-length header as sent (None without one)."""
    return next((value for name, value in scope["headers"] if name == b"content-length"), None)


def fits(size: bytes, max_body: int) -> bool:
    """Whether a declared content-length is a number of at most ``max_body`` bytes."""
    return size.isdigit() and int(size) <= max_body


async def read_body(receive, most: int | None = None) -> bytes | None:
    """The whole request body; None when the client went away before sending it all, or once it
    passes ``most`` bytes (nothing more is read: a large body is refused, not buffered)."""
    chunks, seen, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        seen += len(chunk)
        if most is not None and seen > most:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replaying(body: bytes, receive):
    """A ``receive`` that gives ``body`` once, then the connection's own messages (a disconnect)."""
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class Accounting:
    """Answers 413 for a body declared larger than ``max_body``, or sent in chunks past it, and counts every
    HTTP request in ``metrics`` by the route it matched ("unmatched" for none) and the status it got."""

    def __init__(self, app, max_body: int, metrics: Metrics):
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        size = declared_size(scope)
        too_large = error_response(413, f"the request body is larger than {self.max_body} bytes", "body_too_large")
        try:
            if size is not None and not fits(size, self.max_body):
                await too_large(scope, receive, sending)
            elif size is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body = await read_body(receive, self.max_body)
                if body is None:  # too large (or the client left, when the answer goes nowhere)
                    await too_large(scope, receive, sending)
                else:
                    await self.app(scope, replaying(body, receive), sending)
            else:
                await self.app(scope, receive, sending)
        finally:  # a handler that raised is a 500 (answered by Starlette's outer middleware), counted here too
            # the router put the matched route in the scope
            self.metrics.record(getattr(scope.get("route"), "path", "unmatched"), status, started)
