"""HTTP serving: ``revsent serve MODEL`` (FastAPI + uvicorn).

    settings.py    ServeConfig: the ``revsent serve`` options, checked before anything starts
    schemas.py     the request and answer bodies, the one check of a request's texts, the JSON errors
    service.py     Service: the model, loaded once and asked for predictions and explanations
    batcher.py     MicroBatcher: concurrent requests merged into model calls on the model's one thread
    metrics.py     the Prometheus metrics
    middleware.py  the body-size limit and the request metrics around every request (plain ASGI)
    fastpath.py    POST /v1/predict for well-formed bodies, parsed without FastAPI or pydantic
    app.py         create_app: the routes, the error answers, the model's start and stop with the application
    run.py         serve: one uvicorn process, or several on one port under a supervising parent
    static/        the web page served at /
"""
from .batcher import MicroBatcher, QueueFull
from .run import serve
from .service import Service
from .settings import ServeConfig


def __getattr__(name: str):
    # FastAPI is imported with the app, not before: a bad model or option fails without waiting for it
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'revsent.serve' has no attribute {name!r}")


__all__ = ["MicroBatcher", "QueueFull", "ServeConfig", "Service", "create_app", "serve"]
