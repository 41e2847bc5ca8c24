"""HTTP serving: ``revsent serve MODEL`` (FastAPI + uvicorn).

    POST /v1/predict   {"texts": [...]} or {"text": "..."}  ->  label and class probabilities per text
    POST /v1/explain   the same body  ->  also each word's attribution (explain.py)
    GET  /v1/model     classes, preset, settings, metrics
    GET  /healthz      the process is up;  GET /readyz: 503 until the model is loaded
    GET  /metrics      Prometheus text format;  GET /docs: OpenAPI;  GET /: the web page

Concurrent requests are merged into one model call (``MicroBatcher``: up to ``max_batch`` texts,
waiting at most ``max_wait_ms`` for more, less once as many requests came as last time), run on a
worker thread so that the event loop keeps serving. Errors are JSON ``{"error": ..., "type": ...}``:
413 for too many texts, too long a text or too large a body, 422 for malformed JSON, wrong types
or an empty list, 429 when the queue is full, 503 while loading. Nothing a client sends gives a 500.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

WEB_PAGE = Path(__file__).with_name("web") / "index.html"


@dataclass(frozen=True)
class ServeConfig:
    model: str
    max_batch: int = 64  # texts per model call; 1 turns micro-batching off (each request alone)
    max_wait_ms: float = 2.0  # the longest the first request of a batch waits for others (bench/RESULTS.md: 2 against 5)
    max_texts: int = 256  # texts per request (413 above)
    max_chars: int = 50_000  # characters per text (413 above)
    max_body: int = 4 << 20  # bytes per request body (413 above)
    max_queue: int = 4096  # texts waiting for the model (429 above)
    threads: int | None = None  # threads for the model (None: all cores)
    backend: str = "torch"  # torch, or onnx: the model's ONNX export on onnxruntime (no PyTorch; no explanations)

    def check(self) -> "ServeConfig":
        from .errors import ConfigError

        for name in ("max_batch", "max_texts", "max_chars", "max_body", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be >= 0; got {self.max_wait_ms}")
        from .export import BACKENDS

        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        return self


class TextsIn(BaseModel):
    """One text (``text``) or several (``texts``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Great food, friendly staff."]}]})
    text: StrictStr | None = Field(default=None, description="one review")
    texts: list[StrictStr] | None = Field(default=None, description="several reviews")

    @model_validator(mode="after")
    def one_of(self):
        if (self.text is None) == (self.texts is None):
            raise ValueError("give either 'text' (a string) or 'texts' (a list of strings)")
        if self.texts is not None and not self.texts:
            raise ValueError("'texts' is empty; give at least one text")
        return self


class PredictionOut(BaseModel):
    label: str = Field(description="the most probable class")
    probabilities: dict[str, float] = Field(description="each class's probability")


class PredictionsOut(BaseModel):
    predictions: list[PredictionOut]


class _Middleware:
    """An ASGI middleware that hands each request to ``handler(scope, receive, send, app)``."""

    def __init__(self, app, handler):
        self.app, self.handler = app, handler

    async def __call__(self, scope, receive, send):
        await self.handler(scope, receive, send, self.app)


class QueueFull(Exception):
    pass


class MicroBatcher:
    """Merges concurrent requests into model calls of at most ``max_batch`` texts.

    A call starts when the batch is full, ``max_wait`` seconds after its first request came, or as
    soon as it holds as many requests as the call before it and no more are queued. With N clients
    each sending again when answered, that is the moment all N are in: waiting out ``max_wait``
    would only idle the model (bench/RESULTS.md, "Serving"). When fewer come than last time, the
    batch waits out ``max_wait`` as before, and the next one expects as many as it got.
    A request is never split: one larger than ``max_batch`` runs alone. ``run`` (texts -> (n, C))
    runs on ``executor``'s one worker thread (the model's: see ``model_thread``), never on the event loop.
    """

    def __init__(self, run: Callable[[list[str]], np.ndarray], max_batch: int, max_wait: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda n: None, executor: ThreadPoolExecutor | None = None):
        self.run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait, max_queue
        self.on_batch = on_batch
        self.waiting = 0  # texts queued, not yet running
        self._queue: asyncio.Queue = asyncio.Queue()
        self._carry: tuple | None = None
        self._expected = 1 << 30  # requests in the last call: a batch that has as many goes at once (none yet)
        self._executor = executor or model_thread()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def on_model_thread(self, fn: Callable, *args):
        """Run ``fn(*args)`` on the model's thread, between batches (explanations do)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, texts: list[str]) -> np.ndarray:
        if self.waiting + len(texts) > self.max_queue:
            raise QueueFull(f"{self.waiting} texts are waiting for the model (at most {self.max_queue}); retry later")
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        self._queue.put_nowait((texts, future))
        return await future

    async def _next(self, timeout: float | None):
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._next(None)]
            count = len(group[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                if len(group) >= self._expected and self._queue.empty():
                    break
                try:
                    item = await self._next(deadline - loop.time())
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if count + len(item[0]) > self.max_batch:
                    self._carry = item  # first in the next batch
                    break
                group.append(item)
                count += len(item[0])
            self._expected = len(group)
            texts = [text for item, _ in group for text in item]
            self.waiting -= len(texts)
            self.on_batch(len(texts))
            try:
                proba = await loop.run_in_executor(self._executor, self.run, texts)
            except Exception as exc:  # the model failed: every request of the batch hears it
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for item, future in group:
                if not future.done():  # a client that went away has cancelled its future
                    future.set_result(proba[start: start + len(item)])
                start += len(item)


def model_thread() -> ThreadPoolExecutor:
    """The one thread that loads the model and runs all of its work.

    PyTorch's CPU kernels run in OpenMP thread teams, one team per thread that calls them. Once
    two threads have called (loading on one, predicting on another), libgomp manages more threads
    than there are cores and stops spinning between parallel regions; an LSTM enters one region
    per time step, so every step then waits for sleeping threads to wake. Measured on 2 cores
    (batches of 32 IMDB reviews, the default model): 681 reviews/s loaded and run on one thread,
    135 loaded on one and run on another.
    """
    return ThreadPoolExecutor(1, thread_name_prefix="revsent-model")


class ClientError(Exception):
    def __init__(self, status: int, message: str, kind: str):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class Service:
    """The model behind the routes: loaded once (``load``, off the event loop), predicting in batches."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.ready = False
        self.error: str | None = None
        self.classifier = None
        self.info: dict[str, Any] = {}
        self.thread = model_thread()  # load, predict and explain all run here

    def load(self) -> None:
        try:
            if self.config.backend == "onnx":
                from .export import OnnxClassifier

                self.classifier = OnnxClassifier.load(self.config.model, self.config.threads)
            else:
                from .api import Classifier
                from .device import set_threads

                set_threads(self.config.threads)
                self.classifier = Classifier.load(self.config.model)
        except Exception as exc:  # reported by /readyz; the CLI loads once before serving, so this is rare
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        path = Path(self.config.model)
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else None
        cfg = self.classifier.config_
        self.info = {"model": str(path), "classes": self.classifier.classes_, "preset": cfg.preset,
                     "settings": cfg.to_dict(), "metrics": metrics, "backend": self.config.backend}
        # The model, vocabulary and libraries are long-lived: out of the collector's sight, so that
        # the full collections that request garbage triggers do not walk them again and again.
        gc.freeze()
        self.ready = True

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.classifier.predict_proba(texts)

    def explain(self, texts: list[str]) -> list[dict]:
        return [e.to_dict() for e in self.classifier.explain(texts)]


def create_app(config: ServeConfig, service: Service | None = None):
    """The FastAPI application for ``config`` (the model is loaded at start-up, off the event loop)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.exceptions import HTTPException as StarletteHTTPException

    config = config.check()
    service = service or Service(config)
    registry = CollectorRegistry()
    requests_total = Counter("revsent_requests", "HTTP requests by route and status", ["route", "status"], registry=registry)
    latency = Histogram("revsent_request_seconds", "Request latency by route", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    batch_sizes = Histogram("revsent_batch_texts", "Texts per model call", registry=registry,
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
    queued = Gauge("revsent_queue_texts", "Texts waiting for the model", registry=registry)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app):
        batcher = MicroBatcher(lambda texts: service.predict(texts), config.max_batch, config.max_wait_ms / 1000,
                               config.max_queue, on_batch=batch_sizes.observe, executor=service.thread)
        queued.set_function(lambda: batcher.waiting)
        batcher.start()
        state["batcher"] = batcher
        loading = None
        if not service.ready:
            loading = asyncio.get_running_loop().run_in_executor(service.thread, service.load)
        yield
        if loading is not None and not loading.done():
            loading.cancel()
        await batcher.stop()

    class App(FastAPI):
        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/v1/predict" and scope["method"] == "POST":
                receive = await fast_predict(scope, receive, send)
                if receive is None:
                    return
            await super().__call__(scope, receive, send)

    app = App(title="revsent", description="Sentiment predictions and word-level explanations from an LSTM model.",
              version=_version(), lifespan=lifespan)

    def error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)

    def declared_size(scope) -> bytes | None:
        """The request's content-length header as sent (None without one)."""
        return next((value for name, value in scope["headers"] if name == b"content-length"), None)

    def within_limit(size: bytes) -> bool:
        return size.isdigit() and int(size) <= config.max_body

    def record(route: str, status: int, started: float) -> None:
        requests_total.labels(route, str(status)).inc()
        latency.labels(route).observe(time.perf_counter() - started)

    async def account(scope, receive, send, inner):
        """Body-size limit and metrics around every request: plain ASGI, which costs a fraction of
        Starlette's BaseHTTPMiddleware per request (measured: the event loop is the server's bottleneck)."""
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        size = declared_size(scope)
        try:
            if size is not None and not within_limit(size):
                await error(413, f"the request body is larger than {config.max_body} bytes", "body_too_large")(scope, receive, sending)
            else:
                await inner(scope, receive, sending)
        finally:  # a handler that raised is a 500 (answered by Starlette's outer middleware), counted here too
            record(getattr(scope.get("route"), "path", "unmatched"), status, started)  # the router put the matched route in the scope

    app.add_middleware(_Middleware, handler=account)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for item in exc.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return error(422, "; ".join(problems) or "invalid request", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), "http_error")

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError):
        return error(exc.status, exc.message, exc.kind, {"Retry-After": "1"} if exc.status in (429, 503) else None)

    def texts_of(body: TextsIn) -> list[str]:
        if not service.ready:
            raise ClientError(503, "the model is still loading" if service.error is None else f"the model failed to load: {service.error}", "not_ready")
        texts = [body.text] if body.text is not None else list(body.texts)
        if len(texts) > config.max_texts:
            raise ClientError(413, f"{len(texts)} texts in one request; at most {config.max_texts}", "too_many_texts")
        for i, text in enumerate(texts):
            if len(text) > config.max_chars:
                raise ClientError(413, f"text {i} has {len(text)} characters; at most {config.max_chars}", "text_too_long")
        return texts

    def predictions(texts: list[str], proba: np.ndarray) -> list[dict]:
        classes = service.classifier.classes_
        return [{"label": classes[int(p.argmax())], "probabilities": {c: float(v) for c, v in zip(classes, p)}}
                for p in proba]

    def well_formed(body: bytes) -> list[str] | None:
        """The texts of a valid /v1/predict body within the limits; None for anything else."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or len(obj) != 1:
            return None
        texts = [obj["text"]] if "text" in obj else obj.get("texts")
        if not isinstance(texts, list) or not 0 < len(texts) <= config.max_texts:
            return None
        if not all(isinstance(text, str) and len(text) <= config.max_chars for text in texts):
            return None
        return texts

    async def fast_predict(scope, receive, send):
        """``POST /v1/predict`` with a well-formed body, answered without FastAPI's middleware,
        routing and validation: the event loop's time per request bounds the server's throughput
        (bench/RESULTS.md). Returns None once answered; otherwise a ``receive`` that replays the
        body to the FastAPI route, which answers everything else (errors, not ready) as before."""
        started = time.perf_counter()
        size = declared_size(scope)
        if not service.ready or size is None or not within_limit(size):
            return receive
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():  # the body once, then the connection's own messages (a disconnect)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        texts = well_formed(body)
        if texts is None:
            return replay
        status = 500  # until answered: a model failure propagates, and uvicorn answers 500 and logs it
        try:
            proba = await state["batcher"].submit(texts)
            payload = orjson.dumps({"predictions": predictions(texts, proba)})
            status = 200
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
        except QueueFull as exc:
            status = 429
            await error(429, str(exc), "queue_full", {"Retry-After": "1"})(scope, replay, send)
        finally:
            record("/v1/predict", status, started)
        return None

    @app.post("/v1/predict", summary="Label and class probabilities of each text", response_model=PredictionsOut)
    async def predict(body: TextsIn) -> Response:
        texts = texts_of(body)
        try:
            proba = await state["batcher"].submit(texts)
        except QueueFull as exc:
            raise ClientError(429, str(exc), "queue_full") from None
        # serialised here, not validated against the response model: the hot path of the server
        return Response(orjson.dumps({"predictions": predictions(texts, proba)}), media_type="application/json")

    @app.post("/v1/explain", summary="Predictions with each word's attribution")
    async def explain(body: TextsIn) -> dict:
        texts = texts_of(body)
        if config.backend != "torch":
            raise ClientError(501, "explanations need gradients: serve with --backend torch for /v1/explain", "not_supported")
        if len(texts) > max(1, config.max_batch):
            raise ClientError(413, f"{len(texts)} texts to explain; at most {max(1, config.max_batch)} per request", "too_many_texts")
        # one explanation is dozens of model calls: it runs on the model's thread, between batches
        result = await state["batcher"].on_model_thread(service.explain, texts)
        return {"explanations": result}

    @app.get("/v1/model", summary="The model: classes, preset, settings and metrics")
    async def model_info() -> dict:
        if not service.ready:
            raise ClientError(503, "the model is still loading", "not_ready")
        return {**service.info, "serving": asdict(config)}

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: 503 until the model is loaded")
    async def readyz():
        if service.ready:
            return {"status": "ready"}
        return error(503, "the model is still loading" if service.error is None else service.error, "not_ready")

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))

    return app


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the server until SIGINT/SIGTERM (in-flight requests finish first)."""
    import uvicorn

    config = config.check()
    if workers > 1:
        serve_workers(config, host, port, workers, log_level)
        return
    uvicorn.run(create_app(config, _loaded(config)), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30)


def _loaded(config: ServeConfig) -> Service:
    """The service with its model loaded, before any socket listens: a bad model is a clear error at
    start, not a 503 forever."""
    service = Service(config)
    service.thread.submit(service.load).result()
    return service


def serve_workers(config: ServeConfig, host: str, port: int, workers: int, log_level: str) -> None:
    """``workers`` server processes on one port, each with its own model and its own listening socket.

    The sockets share the port through SO_REUSEPORT, so the kernel spreads connections evenly over
    the processes. Processes accepting from one shared socket (uvicorn's own ``--workers``) take
    whatever they wake up first for: 28 of 32 keep-alive connections went to one of two, measured.
    The parent only supervises: SIGINT and SIGTERM go on to the workers, which finish their
    requests; a worker that fails (a model that does not load) stops the others, with its error.
    """
    import multiprocessing
    import signal
    import socket

    from .errors import ConfigError, RevsentError

    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers > 1 needs Linux, whose SO_REUSEPORT spreads connections over the workers; "
                          "run one process per port instead")
    # A port in use is an error here: a second server must not quietly share it (SO_REUSEPORT). The
    # port is then held, bound but not listening (it takes no connections), until the end: another
    # server's check finds it taken even while the workers are still loading their models.
    with _bound(host, port) as check:
        port = check.getsockname()[1]  # --port 0: the port the system chose, for every worker
    hold = _bound(host, port, share=True, reuse_address=False)
    context = multiprocessing.get_context("spawn")
    reported = context.Value("b", 0)  # the first worker to fail prints its error; the others, the same one, do not
    ready = context.Value("i", 0)  # workers listening
    processes = [context.Process(target=_worker, args=(asdict(config), host, port, log_level, os.getpid(), reported, ready))
                 for _ in range(workers)]
    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight

    # The workers start with SIGINT ignored (they inherit that, and make themselves a process group
    # of their own first thing): a terminal's Ctrl-C while they start reaches the parent alone.
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, stop)
    announced = False
    try:
        for process in processes:
            if not stopping:
                process.start()
        signal.signal(signal.SIGINT, stop)
        if stopping:  # a signal came while they started: those started after it stop too
            stop(stopping[0], None)
        while True:
            codes = [p.exitcode for p in processes if p.pid is not None]  # one look decides both questions below
            failed = [code for code in codes if code not in (None, 0, -signal.SIGTERM)]
            if failed and not stopping:  # one failed: the others stop too
                stop(signal.SIGTERM, None)
                for process in processes:
                    process.join(60)
                if reported.value:  # its one-line error is printed: exit with its code
                    raise SystemExit(failed[0])
                raise RevsentError(f"a server process stopped (exit code {failed[0]}); the others were stopped too")
            if all(code is not None for code in codes):
                return
            if not announced and ready.value == workers and log_level in ("trace", "debug", "info"):
                shown = f"[{host}]" if ":" in host else host
                print(f"revsent: {workers} workers serving on http://{shown}:{port} (Ctrl+C to stop)", file=sys.stderr,
                      flush=True)
                announced = True
            time.sleep(0.2)
    finally:
        hold.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(settings: dict, host: str, port: int, log_level: str, parent: int, reported, ready) -> None:
    """One of :func:`serve_workers`' processes: its model, its socket on the shared port, uvicorn."""
    os.setpgrp()  # a terminal's Ctrl-C reaches the parent alone, which passes it on once (a second would cut requests off)
    import signal
    import threading

    import uvicorn

    from .errors import RevsentError

    def orphaned():  # the parent was killed outright (SIGKILL): stop as on SIGTERM, not hold the port forever
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()
    config = ServeConfig(**settings)
    try:
        service = _loaded(config)
        sock = _bound(host, port, share=True)  # the parent holds the port; SO_REUSEPORT lets its workers in
        sock.listen(2048)  # uvicorn's backlog
    except RevsentError as exc:
        with reported.get_lock():
            if not reported.value:
                reported.value = 1
                print(f"revsent: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    server = uvicorn.Server(uvicorn.Config(create_app(config, service), log_level=log_level, timeout_graceful_shutdown=30))
    with ready.get_lock():
        ready.value += 1
    server.run(sockets=[sock])


def _bound(host: str, port: int, share: bool = False, reuse_address: bool = True):
    """A TCP socket bound to ``host:port``; a port that cannot be had is a one-line error.

    ``reuse_address``: SO_REUSEADDR, as uvicorn's (a closed server's connections do not block the
    port); ``share``: SO_REUSEPORT, so that the workers' sockets can all bind the port."""
    import socket

    from .errors import ConfigError

    sock = None
    try:
        # the address family as uvicorn picks it for one process: IPv6 where the host has a colon
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:  # socket.gaierror too: a host that does not resolve
        if sock is not None:
            sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _version() -> str:
    from . import __version__

    return __version__
