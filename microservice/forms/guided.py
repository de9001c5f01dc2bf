"""The guided-decoding fields of vLLM up to 0.10, mapped to the ``structured_outputs`` that
replaced them: vLLM 0.32 ignores ``guided_*`` with a log line ("output will NOT be
constrained"), so a client written for the old fields would silently get free text.

``guided_json``, ``guided_regex``, ``guided_choice`` and ``guided_grammar`` become
``structured_outputs.json`` / ``regex`` / ``choice`` / ``grammar``; ``guided_whitespace_pattern``
becomes ``whitespace_pattern`` beside them. They are read at the top level of the body or in a
literal ``extra_body`` object (what some clients send), and taken out of the body.
"""

from __future__ import annotations

from typing import Any

from microservice.errors import FieldsConflict

GUIDED = {
    "guided_json": "json",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "grammar",
}
OPTIONS = {"guided_whitespace_pattern": "whitespace_pattern"}
NEW = "structured_outputs"


def _take(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The old fields found (top level, then ``extra_body``), removed from the body."""
    found: dict[str, Any] = {}
    extra = data.get("extra_body")
    for old in names:
        if old in data:
            found[old] = data.pop(old)
        if isinstance(extra, dict) and old in extra:
            found.setdefault(old, extra.pop(old))
    if isinstance(extra, dict) and not extra:
        del data["extra_body"]
    return found


def map_guided_fields(data: dict[str, Any]) -> None:
    """``data`` with its old guided fields turned into ``structured_outputs``; 400 naming the
    fields when it also has ``structured_outputs`` or asks for two kinds of constraint."""
    constraints = _take(data, GUIDED)
    options = _take(data, OPTIONS)
    if not constraints:
        return  # a whitespace pattern alone constrains nothing: dropped, as vLLM 0.10 did
    extra = data.get("extra_body")
    if NEW in data or (isinstance(extra, dict) and NEW in extra):
        names = ", ".join(sorted(constraints))
        raise FieldsConflict(
            f"{names} and {NEW}: send one (the guided_* fields are vLLM's old names for {NEW})",
            param=sorted(constraints)[0],
        )
    if len(constraints) > 1:
        names = " and ".join(sorted(constraints))
        raise FieldsConflict(
            f"{names}: send one kind of guided decoding", param=sorted(constraints)[1]
        )
    ((old, value),) = constraints.items()
    mapped = {GUIDED[old]: value, **{OPTIONS[k]: v for k, v in options.items()}}
    data[NEW] = mapped
