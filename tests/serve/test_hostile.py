"""`revsent serve` as a hostile client meets it, on 127.0.0.1 only: raw sockets for what HTTP libraries will
not send (chunked bodies past the limit, lying lengths, broken request lines, half-sent requests), odd
content types and Unicode, a bounded flood and slow clients. Every answer is a 4xx (or the 200 of a
well-formed request), never a 5xx; the server logs no traceback; and it predicts afterwards exactly as
before."""
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import start_server

LIMITS = ["--max-texts", "8", "--max-chars", "200", "--max-body", "2000", "--max-queue", "64"]
PROBE = {"texts": ["great friendly food", "rude awful service", "zzyzx"]}


@pytest.fixture(scope="module")
def server(model_dir):
    proc, url = start_server(model_dir, *LIMITS)
    before = httpx.post(url + "/v1/predict", json=PROBE).json()
    host, port = url.removeprefix("http://").split(":")
    yield url, (host, int(port))
    try:
        # what every test leaves behind: the same answers as before it, and no server error logged
        assert httpx.post(url + "/v1/predict", json=PROBE, timeout=30).json() == before
    finally:
        proc.terminate()
        proc.wait(30)
    log = proc.stderr.read()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-2000:]


def _raw(address, data: bytes, *, timeout: float = 10, hang_up: bool = False) -> bytes:
    """Sends DATA as it is on one connection (then stops sending, with HANG_UP); the bytes the server
    answers until it closes or goes quiet."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _request(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _chunked(body: bytes, size: int = 300) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/explain"])
def test_chunked_bodies_are_counted_as_they_come(server, route):
    _, address = server
    chunked = ("Content-Type: application/json", "Transfer-Encoding: chunked")
    small = _raw(address, _request(route, _chunked(b'{"text": "great food"}'), *chunked))
    assert _status(small) == 200, small
    for size in (2_500, 200_000):  # just past --max-body, and far past it
        big = _raw(address, _request(route, _chunked(b'{"text": "' + b"a" * size + b'"}'), *chunked))
        assert _status(big) == 413 and b"body_too_large" in big, big[:300]


def test_lengths_that_lie_are_client_errors_or_closed_connections(server):
    _, address = server
    huge = _raw(address, _request("/v1/predict", b"{}", "Content-Type: application/json", "Content-Length: 999999999999"))
    assert _status(huge) == 413
    # announces more than it sends, then closes: nothing to answer, and the server goes on
    short = _raw(address, _request("/v1/predict", b'{"text": "go', "Content-Type: application/json", "Content-Length: 500"),
                 hang_up=True)
    assert short == b"" or 400 <= _status(short) < 500
    both = _raw(address, _request("/v1/predict", _chunked(b'{"text": "good"}'), "Content-Type: application/json",
                                  "Content-Length: 17", "Transfer-Encoding: chunked"))
    assert both == b"" or _status(both) < 500


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n", b"POST /v1/predict HTTP/9.9\r\n\r\n", b"POST  HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"\x00\xff\xfe" * 50 + b"\r\n\r\n",
    b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200_000 + b"\r\n\r\n",
])
def test_broken_requests_are_refused_at_the_http_level(server, data):
    answer = _raw(server[1], data)
    assert answer == b"" or 400 <= _status(answer) < 500, answer[:200]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "", "application/json; charset=latin-1"])
def test_other_content_types_are_never_server_errors(server, content_type):
    url, _ = server
    headers = {"content-type": content_type} if content_type else {}
    expected = httpx.post(url + "/v1/predict", json={"text": "great food"}).json()
    for body in (b'{"text": "great food"}', b"text=great+food", b"<text>great food</text>"):
        response = httpx.post(url + "/v1/predict", content=body, headers=headers)
        assert response.status_code < 500, (content_type, body, response.text)
        if response.status_code == 200:  # what it took is what a JSON client sends
            assert body.startswith(b"{") and response.json() == expected


@pytest.mark.parametrize("text", ["\x00\x01\x1f", "\u202egreat\u202c food", "👍🏽 great food 🍕", "e\u0301\u0301\u0301",
                                  "\ufeffgreat food", "\udfff\ud800", "\U0010ffff" * 50, "ﬁne ＦＯＯＤ", "\u2028\u2029\x85"])
@pytest.mark.parametrize("route", ["/v1/predict", "/v1/explain"])
def test_odd_unicode_is_answered(server, route, text):
    url, _ = server
    body = json.dumps({"text": text}).encode()  # ASCII with escapes, so lone surrogates travel too
    response = httpx.post(url + route, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    raw_utf8 = httpx.post(url + route, content=json.dumps({"text": text}, ensure_ascii=False).encode("utf-8", "replace"),
                          headers={"content-type": "application/json"})
    assert raw_utf8.status_code < 500, raw_utf8.text


def test_a_bounded_flood_is_answered_or_turned_away_never_failed(server):
    url, _ = server
    body = {"texts": ["great friendly food and staff"] * 8}

    def post(_):
        try:
            return httpx.post(url + "/v1/predict", json=body, timeout=60).status_code
        except httpx.HTTPError as exc:  # a connection the server could not take yet is the client's to retry
            return type(exc).__name__

    with ThreadPoolExecutor(48) as pool:
        statuses = list(pool.map(post, range(400)))
    assert statuses.count(200) > 0
    assert set(statuses) <= {200, 429, "ConnectError", "ReadError", "RemoteProtocolError"}, set(statuses)
    assert not any(isinstance(s, int) and s >= 500 for s in statuses)


def test_slow_clients_do_not_hold_up_the_others(server):
    url, address = server
    slow = []
    try:
        for i in range(30):  # half-sent requests: a header line, or a body that stops part-way
            sock = socket.create_connection(address, timeout=10)
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" if i % 2 else
                         _request("/v1/predict", b'{"text": "gre', "Content-Type: application/json",
                                  "Content-Length: 40"))
            slow.append(sock)
        for sock in slow[:10]:  # and one byte at a time from some of them
            sock.sendall(b"X")
        started = time.perf_counter()
        for _ in range(5):
            response = httpx.post(url + "/v1/predict", json=PROBE, timeout=10)
            assert response.status_code == 200
        assert time.perf_counter() - started < 10  # answered while the slow ones wait, not after them
    finally:
        for sock in slow:
            sock.close()
