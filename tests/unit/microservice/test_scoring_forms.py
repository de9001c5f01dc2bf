"""The rerank and score forms: what makes pairs, the clear 422 for what does not, the body vLLM
gets, and the tokens such a request reserves (every pair, nothing generated)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from microservice import paths
from microservice.errors import RequestInvalid
from microservice.forms import parse
from microservice.forms.reservation import PROMPT_TOKENS, reserved_tokens
from microservice.forms.scoring import scored_pairs
from microservice.upstream.model_call import RequestIds

IDS = RequestIds("r")


def body(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def test_rerank_passes_every_field_to_vllm_with_the_served_model() -> None:
    form = parse.rerank(body({"model": "r", "query": "q", "documents": ["a", "b"], "top_n": 1,
                              "truncate_prompt_tokens": 8}))  # fmt: skip
    call = form.to_model_server("served", IDS, max_model_len=512, may_stream=True)
    assert call.path == paths.RERANK
    assert call.body == {"model": "served", "query": "q", "documents": ["a", "b"], "top_n": 1,
                         "truncate_prompt_tokens": 8}  # fmt: skip
    assert form.requested_model == "r" and form.answer_shape().form == "rerank"


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"documents": ["a"]}, "query"),
        ({"query": "q"}, "documents"),
        ({"query": "q", "documents": []}, "documents"),
        ({"query": "", "documents": ["a"]}, "query"),
        ({"query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
    ],
)
def test_rerank_refuses_what_is_no_query_against_documents(
    value: dict[str, Any], param: str
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse.rerank(body(value))
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("value", "pairs"),
    [
        ({"text_1": "q", "text_2": ["a", "b"]}, [("q", "a"), ("q", "b")]),
        ({"text_1": ["q", "p"], "text_2": ["a", "b"]}, [("q", "a"), ("p", "b")]),
        ({"queries": "q", "documents": "a"}, [("q", "a")]),
        ({"queries": ["q"], "items": ["a", "b"]}, [("q", "a"), ("q", "b")]),
        ({"data_1": "q", "data_2": ["a"]}, [("q", "a")]),
    ],
)
def test_score_reads_each_of_vllms_field_pairs(
    value: dict[str, Any], pairs: list[tuple[str, str]]
) -> None:
    call = parse.score(body(value)).to_model_server("m", IDS, max_model_len=512, may_stream=True)
    assert call.path == paths.SCORE and scored_pairs(call.body) == pairs


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"text_1": "q"}, "text_2"),
        ({"queries": "q"}, "text_1"),
        ({"text_1": [], "text_2": ["a"]}, "text_1"),
        ({"text_1": "q", "text_2": ["a", ""]}, "text_2"),
        ({"text_1": ["q", "p", "o"], "text_2": ["a", "b"]}, "text_1"),
        ({"text_1": 3, "text_2": "a"}, "text_1"),
    ],
)
def test_score_refuses_texts_that_make_no_pairs(value: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse.score(body(value))
    assert (caught.value.param or "").split(".")[0] == param  # a union names its member too


def test_a_scoring_request_reserves_each_pair_and_generates_nothing() -> None:
    rerank = parse.rerank(body({"query": "four", "documents": ["ab", "abc"], "max_tokens": 99}))
    call = rerank.to_model_server("m", IDS, max_model_len=512, may_stream=True)
    assert reserved_tokens(call, 512) == (4 + 2 + PROMPT_TOKENS) + (4 + 3 + PROMPT_TOKENS)
    assert reserved_tokens(call, 8) == 8 + 8  # each pair at most the context
    multimodal = {"query": "q", "documents": [{"content": [{"type": "image_url"}]}]}
    call = parse.rerank(body(multimodal)).to_model_server("m", IDS, max_model_len=64,
                                                           may_stream=True)  # fmt: skip
    assert reserved_tokens(call, 64) == 64  # not measurable: the context
    score = parse.score(body({"text_1": ["ab", "c"], "text_2": ["d", "ef"]}))
    call = score.to_model_server("m", IDS, max_model_len=512, may_stream=True)
    assert reserved_tokens(call, 512) == (3 + PROMPT_TOKENS) * 2
