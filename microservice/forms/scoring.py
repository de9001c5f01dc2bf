"""The scoring forms of a reranker (a cross-encoder served by vLLM, ``kind: rerank``):
``POST /v1/rerank`` (a query against documents, Jina's and Cohere's shape, as vLLM answers it)
and ``POST /v1/score`` (pairs of texts). How a RAG pipeline reorders what retrieval found.

Checked for what this service must understand (the model, texts that make pairs); every other
field (``top_n``, ``truncate_prompt_tokens``, ``instruction``...) reaches vLLM as sent, and
vLLM's answer comes back as it is.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from microservice import paths
from microservice.errors import RequestInvalid
from microservice.forms.openai import PassThrough, passed_through
from microservice.upstream.model_call import ModelCall, RequestIds

# One text to score: a string, or vLLM's multimodal content ({"content": [parts]}).
ScoreText = str | dict[str, Any]
ScoreTexts = ScoreText | list[ScoreText]
# The field pairs vLLM's /score reads, in the order it tries them.
SCORE_PAIRS = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"),
               ("text_1", "text_2"))  # fmt: skip


def as_list(value: ScoreTexts) -> list[ScoreText]:
    return value if isinstance(value, list) else [value]


def pairs(first: ScoreTexts, second: ScoreTexts) -> list[tuple[ScoreText, ScoreText]]:
    """The pairs vLLM scores: one first text against each second one (1:N), or one by one
    (N:N)."""
    firsts, seconds = as_list(first), as_list(second)
    if len(firsts) == 1:
        return [(firsts[0], text) for text in seconds]
    return list(zip(firsts, seconds, strict=True))


class _Scoring(BaseModel):
    """A scoring body goes to vLLM's route of the same name as it came (``path``), and the
    answer comes back as vLLM gave it (``shape``)."""

    model_config = ConfigDict(extra="allow")
    path: ClassVar[str]
    shape: ClassVar[str]

    model: str | None = None

    @property
    def requested_model(self) -> str | None:
        return self.model

    def check_tokens(self, max_model_len: int | None) -> None:
        """Nothing is generated; vLLM refuses a pair over the context itself, naming it."""

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        return passed_through(self, served_name, ids, self.path)

    def answer_shape(self) -> PassThrough:
        return PassThrough(self.shape)


class RerankRequest(_Scoring):
    path = paths.RERANK
    shape = "rerank"
    query: ScoreText
    documents: ScoreTexts
    top_n: int = Field(0, ge=0, description="How many of the best documents to return; 0: all.")

    @field_validator("query", "documents")
    @classmethod
    def _not_empty(cls, value: ScoreTexts) -> ScoreTexts:
        if value in ("", []):
            raise ValueError("must not be empty")
        return value


class ScoreRequest(_Scoring):
    """Two lists of texts: 1:N (one text against each of the others) or N:N (pairwise); named
    ``text_1``/``text_2``, ``queries`` with ``documents`` or ``items``, or ``data_1``/``data_2``,
    as vLLM reads them (``parse.score`` checks that one pair is whole)."""

    path = paths.SCORE
    shape = "score"

    text_1: ScoreTexts | None = None
    text_2: ScoreTexts | None = None


def score_pair_fields(body: dict[str, Any]) -> tuple[str, str] | None:
    """The two fields of a score body that hold its texts; None: no whole pair."""
    for first, second in SCORE_PAIRS:
        if body.get(first) is not None and body.get(second) is not None:
            return first, second
    return None


def check_score_texts(body: dict[str, Any]) -> None:
    """422 naming the field for texts that make no pairs (vLLM's own 400 says less)."""
    fields = score_pair_fields(body)
    if fields is None:
        raise RequestInvalid(
            "give the texts to score as `text_1` and `text_2` (or `queries` with `documents` "
            "or `items`, or `data_1` and `data_2`)",
            param="text_2" if body.get("text_1") is not None else "text_1",
        )
    first, second = (as_list(body[name]) for name in fields)
    for name, texts in zip(fields, (first, second), strict=True):
        if not texts or "" in texts:
            raise RequestInvalid(f"{name}: must not be empty", param=name)
    if len(first) not in (1, len(second)):
        raise RequestInvalid(
            f"{fields[0]}: give one text or as many as `{fields[1]}` ({len(second)})",
            param=fields[0],
        )


def scored_pairs(body: dict[str, Any]) -> list[tuple[ScoreText, ScoreText]]:
    """The pairs a rerank or a (checked) score body asks vLLM to score."""
    fields = ("query", "documents") if "query" in body else score_pair_fields(body)
    return [] if fields is None else pairs(body[fields[0]], body[fields[1]])
