"""Whose request it is, for the waiting room: the key's name and weight, and its priority class,
which a request may lower (``X-LLM-Priority: batch``) but never raise.

With the replicas on vLLM's priority scheduler (``LLM_PRIORITY_SCHEDULING``), the class also
goes to vLLM as the request's ``priority`` (lower is served first), so the engine orders its
own queue the same way; any ``priority`` the client sent is replaced.
"""

from __future__ import annotations

from microservice.auth.keys import ApiKey
from microservice.config.keys_file import PRIORITY_CLASSES, PriorityClass
from microservice.errors import PriorityNotAllowed, RequestInvalid
from microservice.upstream.model_call import ANYONE, ModelCall, Tenant

PRIORITY_HEADER = "x-llm-priority"
VLLM_PRIORITY: dict[PriorityClass, int] = {"interactive": 0, "batch": 1}


def _asked(header: str | None) -> PriorityClass | None:
    if header is None:
        return None
    value = header.strip().lower()
    for name in PRIORITY_CLASSES:
        if value == name:
            return name
    raise RequestInvalid(
        f"X-LLM-Priority: {header[:32]!r} is not a priority class; give one of "
        f"{', '.join(PRIORITY_CLASSES)}",
        param="X-LLM-Priority",
    )


def tenant_of(key: ApiKey | None, header: str | None) -> Tenant:
    """The request's tenant; 422 for a header that names no class, 403 for one above the
    key's class."""
    asked = _asked(header)
    own: PriorityClass = key.priority if key is not None else "interactive"
    if asked is not None and PRIORITY_CLASSES.index(asked) < PRIORITY_CLASSES.index(own):
        name = key.name if key is not None else ""
        raise PriorityNotAllowed(
            f"the API key `{name}` is a {own} key: a request may lower its priority class, "
            "never raise it",
            param="X-LLM-Priority",
        )
    priority = asked or own
    if key is None:
        return ANYONE if priority == "interactive" else Tenant(priority=priority)
    return Tenant(key.name, key.weight, priority)


def send_priority(call: ModelCall) -> None:
    """The tenant's class as vLLM's ``priority`` (only with its priority scheduler on)."""
    call.body["priority"] = VLLM_PRIORITY[call.tenant.priority]
