"""What a request may hold and what an answer holds: the bodies' schemas, the one check of a request's texts,
and the JSON error every client mistake gets.

``request_texts`` is the only place that decides whether a request's texts are acceptable and words why not:
the FastAPI route calls it after pydantic has checked the JSON types (``TextsIn``), and the fast path, which
parses without pydantic, calls it to decide what it may answer itself.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from starlette.responses import JSONResponse

from ..metrics import decide

if TYPE_CHECKING:
    from .settings import ServeConfig


class ClientError(Exception):
    """A request the server cannot answer as asked: ``status``, a message that says why, and its ``kind``."""

    def __init__(self, status: int, message: str, kind: str):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind

    def response(self) -> JSONResponse:
        # a full queue and a model still loading are passing states: the same request can succeed a moment later
        retry = {"Retry-After": "1"} if self.status in (429, 503) else None
        return error_response(self.status, self.message, self.kind, retry)


def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    """The body of every error: ``{"error": message, "type": kind}``."""
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


def texts_given(text: str | None, texts: list[str] | None) -> list[str]:
    """The texts of a body that gives ``text`` or ``texts``; ValueError when it gives both, neither, or no text.

    A ValueError, not a ClientError: ``TextsIn`` raises it during validation, so pydantic words it as it words
    the body's other mistakes."""
    if (text is None) == (texts is None):
        raise ValueError("give either 'text' (a string) or 'texts' (a list of strings)")
    if texts is not None and not texts:
        raise ValueError("'texts' is empty; give at least one text")
    return [_encodable(t) for t in ([text] if text is not None else texts)]


SURROGATES = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (valid JSON escapes such as ``"\\udfff"``, but no character: UTF-8 cannot
    write them, so an answer that echoes the text's words would fail) replaced by U+FFFD."""
    return text if text.isascii() else SURROGATES.sub("\ufffd", text)


def request_texts(text: str | None, texts: list[str] | None, config: ServeConfig) -> list[str]:
    """The texts of a request, within ``config``'s limits: the one check that the routes and the fast path share.

    Raises ValueError as ``texts_given`` does, and ClientError 413 for too many texts or too long a text."""
    texts = texts_given(text, texts)
    if len(texts) > config.max_texts:
        raise ClientError(413, f"{len(texts)} texts in one request; at most {config.max_texts}", "too_many_texts")
    for i, item in enumerate(texts):
        if len(item) > config.max_chars:
            raise ClientError(413, f"text {i} has {len(item)} characters; at most {config.max_chars}", "text_too_long")
    return texts


class TextsIn(BaseModel):
    """One text (``text``) or several (``texts``)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"texts": ["Great food, friendly staff."]}]})
    text: StrictStr | None = Field(default=None, description="one review")
    texts: list[StrictStr] | None = Field(default=None, description="several reviews")

    @model_validator(mode="after")
    def one_of(self):
        texts_given(self.text, self.texts)
        return self


KNOWN_WORDS = ("how many words of the text the model's vocabulary knows; 0: the model read nothing of it and "
               "the label is its prior, a guess")


class PredictionOut(BaseModel):
    label: str = Field(description="the most probable class")
    probabilities: dict[str, float] = Field(description="each class's probability")
    known_words: int = Field(ge=0, description=KNOWN_WORDS)


class PredictionsOut(BaseModel):
    predictions: list[PredictionOut]


class TokenOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(description="the span of the original text")
    start: int = Field(description="its character offset in the text")
    attribution: float = Field(description="the word's share of the explained margin (for the label when > 0)")
    in_model: bool = Field(description="whether the model read this word")


class ExplanationOut(PredictionOut):
    model_config = ConfigDict(extra="allow")  # the explanation's other figures (margins, each branch's share)
    tokens: list[TokenOut] = Field(description="each word of the text, in order")


class ExplanationsOut(BaseModel):
    explanations: list[ExplanationOut]


def predictions_json(classes: list[str], proba: np.ndarray, threshold: float | None = None,
                     known_words: np.ndarray | None = None) -> bytes:
    """``PredictionsOut`` as JSON, written here rather than validated against the model by FastAPI: both ways to
    /v1/predict, the server's busiest route, answer with it. Labels by the model's ``threshold`` where it has one;
    ``known_words`` (n,) is each text's count of words the vocabulary knows."""
    return orjson.dumps({"predictions": [
        {"label": classes[int(k)], "probabilities": {c: float(v) for c, v in zip(classes, p)}, "known_words": int(n)}
        for k, p, n in zip(decide(proba, threshold), proba, known_words)]})
