"""The FastAPI application: its routes, its error answers, and the model's start and stop with the application.

    POST /v1/predict   {"texts": [...]} or {"text": "..."}  ->  label, class probabilities, known words per text
    POST /v1/explain   the same body  ->  also each word's attribution (explain.py)
    GET  /v1/model     classes, preset, settings, metrics; ``about``: the model in a line for the page
    GET  /healthz      the process is up;  GET /readyz: 503 until the model is loaded
    GET  /metrics      Prometheus text format;  GET /docs: OpenAPI;  GET /: the web page

Errors are JSON ``{"error": ..., "type": ...}``: 413 for too many texts, too long a text or too large a body,
422 for malformed JSON, wrong types or an empty list, 429 when the queue is full, 503 while loading. Nothing a
client sends gives a 500.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .batcher import MicroBatcher, QueueFull
from .fastpath import FastPath
from .metrics import Metrics
from .middleware import Accounting
from .schemas import (ClientError, ExplanationsOut, PredictionsOut, TextsIn, error_response, predictions_json,
                      request_texts)
from .service import Service
from .settings import ServeConfig

WEB_PAGE = Path(__file__).with_name("static") / "index.html"


def create_app(config: ServeConfig, service: Service | None = None) -> FastAPI:
    """The FastAPI application for ``config`` (the model is loaded at start-up, off the event loop)."""
    config = config.check()
    service = service or Service(config)
    stats = Metrics()
    model = ModelCalls(config, service, stats)
    app = _App(FastPath(config, lambda: service.ready, model.predictions, stats), title="revsent",
               description="Sentiment predictions and word-level explanations from an LSTM model.",
               version=__version__, lifespan=model.lifespan)
    app.add_middleware(Accounting, max_body=config.max_body, metrics=stats)
    _add_error_handlers(app)
    _add_model_routes(app, config, service, model)
    _add_info_routes(app, config, service, stats)
    return app


class _App(FastAPI):
    """FastAPI, with ``POST /v1/predict`` offered to the fast path before FastAPI's own middleware and routing."""

    def __init__(self, fast_path: FastPath, **settings):
        super().__init__(**settings)
        self.fast_path = fast_path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/v1/predict" and scope["method"] == "POST":
            receive = await self.fast_path(scope, receive, send)
            if receive is None:
                return
        await super().__call__(scope, receive, send)


class ModelCalls:
    """The application's way to the model: a micro-batcher, made when the application starts (the model is
    loaded then too, unless it already is) and stopped when it stops."""

    def __init__(self, config: ServeConfig, service: Service, stats: Metrics):
        self.config, self.service, self.stats = config, service, stats
        self.batcher: MicroBatcher | None = None

    @asynccontextmanager
    async def lifespan(self, app):
        config, service = self.config, self.service
        batcher = MicroBatcher(lambda texts: service.predict(texts), config.max_batch, config.max_wait_ms / 1000,
                               config.max_queue, on_batch=self.stats.batch_texts.observe, executor=service.thread)
        self.stats.watch_queue(lambda: batcher.waiting)
        batcher.start()
        self.batcher = batcher
        loading = None
        if not service.ready:
            loading = asyncio.get_running_loop().run_in_executor(service.thread, service.load)
        yield
        if loading is not None and not loading.done():
            loading.cancel()
        await batcher.stop()

    async def predictions(self, texts: list[str]) -> bytes:
        """The JSON answer to /v1/predict for ``texts``; ClientError 429 when too many texts wait already."""
        try:
            scores = await self.batcher.submit(texts)
        except QueueFull as exc:
            raise ClientError(429, str(exc), "queue_full") from None
        classifier = self.service.classifier
        return predictions_json(classifier.classes_, scores.proba, classifier.threshold_, scores.known_words)

    async def explanations(self, texts: list[str]) -> list[dict]:
        # one explanation is dozens of model calls: it runs on the model's thread, between batches
        return await self.batcher.on_model_thread(self.service.explain, texts)


def _texts_of(body: TextsIn, config: ServeConfig, service: Service) -> list[str]:
    """The texts of a request the model can take: 503 while it is not loaded, then ``request_texts``' limits."""
    if not service.ready:
        why = "the model is still loading" if service.error is None else f"the model failed to load: {service.error}"
        raise ClientError(503, why, "not_ready")
    return request_texts(body.text, body.texts, config)


def _add_model_routes(app: FastAPI, config: ServeConfig, service: Service, model: ModelCalls) -> None:
    @app.post("/v1/predict", summary="Label and class probabilities of each text", response_model=PredictionsOut)
    async def predict(body: TextsIn) -> Response:
        texts = _texts_of(body, config, service)
        return Response(await model.predictions(texts), media_type="application/json")

    @app.post("/v1/explain", summary="Predictions with each word's attribution", response_model=ExplanationsOut)
    async def explain(body: TextsIn) -> dict:
        texts = _texts_of(body, config, service)
        if config.backend != "torch":
            raise ClientError(501, "explanations need gradients: serve with --backend torch for /v1/explain",
                              "not_supported")
        most = max(1, config.max_batch)
        if len(texts) > most:
            raise ClientError(413, f"{len(texts)} texts to explain; at most {most} per request", "too_many_texts")
        return {"explanations": await model.explanations(texts)}


def _add_info_routes(app: FastAPI, config: ServeConfig, service: Service, stats: Metrics) -> None:
    @app.get("/v1/model", summary="The model: classes, preset, settings, metrics, and what it was trained on")
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
        return error_response(503, "the model is still loading" if service.error is None else service.error,
                              "not_ready")

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return stats.response()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(422, _problems(exc.errors()) or "invalid request", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), "http_error")

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError):
        return exc.response()


def _problems(errors) -> str:
    """pydantic's complaints as one line: ``where: what`` each, ``body`` for the body as a whole."""
    problems = []
    for item in errors:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(problems)
