"""Every failure the service answers, as a type: its HTTP status, its OpenAI error ``type`` and
``code``, and the one JSON error envelope ``{"error": {"message", "type", "param", "code"}}``
that every error answer has, before or during a stream, so the openai SDK reports it properly.

Connectors raise ``ModelServerError`` subclasses; request checks raise ``RequestInvalid``;
``api.error_answers`` turns any of them into its answer. The ``type`` strings of model-server
failures (``upstream_*``) are part of the wire contract clients match on.
"""

from __future__ import annotations

from typing import Any

import orjson


class ServiceError(Exception):
    """A failure with a known HTTP answer."""

    status = 500
    error_type = "internal_error"
    code: str | None = None  # OpenAI's error code where it has one; else the status
    retry_after: int | None = None  # seconds, sent as Retry-After when set
    headers: tuple[tuple[str, str], ...] = ()  # more headers of the answer

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RequestInvalid(ServiceError):
    status = 422
    error_type = "invalid_request_error"


class BodyNotJson(RequestInvalid):
    status = 400


class BodyTooLarge(RequestInvalid):
    status = 413


class OverContext(RequestInvalid):
    """A token budget (``max_tokens`` and kin) the model's context can never give: a model
    with a longer context may still answer it (a fallback)."""


class FieldsConflict(RequestInvalid):
    """Two fields that cannot go together (an old and a new name for one thing)."""

    status = 400


class InvalidApiKey(ServiceError):
    """No key, or not a key of the keys file (the message never repeats what was sent)."""

    status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"
    headers = (("WWW-Authenticate", "Bearer"),)


class ModelNotAllowed(ServiceError):
    status = 403
    error_type = "permission_error"
    code = "model_not_allowed"


class PriorityNotAllowed(ServiceError):
    """A request asked for a higher priority class than its key has."""

    status = 403
    error_type = "permission_error"
    code = "priority_not_allowed"


class ModelNotFound(ServiceError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class WrongModelKind(RequestInvalid):
    """A chat request for an embedding model, or the other way round."""

    status = 400
    code = "model_not_supported"


class MediaNotSupported(RequestInvalid):
    """Images (or audio, video) sent to a model that takes text only."""

    status = 400
    code = "media_not_supported"


class RemoteMediaRefused(RequestInvalid):
    """A media part by http(s) URL while ``LLM_REMOTE_MEDIA`` is off: vLLM would fetch it."""

    code = "remote_media_refused"


class KeyRateLimited(ServiceError):
    """The key's requests or tokens per minute are used up; other keys are not affected."""

    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, retry_after: int, headers: tuple[tuple[str, str], ...]
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers


class BudgetExceeded(KeyRateLimited):
    """The key's token budget for the UTC day or month is used up, until the period resets."""

    error_type = "budget_exceeded"
    code = "budget_exceeded"


class ModelServerError(ServiceError):
    """vLLM (the model server) failed us; subclasses say how."""

    status = 502
    error_type = "upstream_error"


class ModelServerUnreachable(ModelServerError):
    status = 503
    error_type = "upstream_unavailable"

    @classmethod
    def at(cls, endpoint: str, error: Exception) -> ModelServerUnreachable:
        return cls(f"model server at {endpoint} is unreachable: {error}")


class ModelServerTimeout(ModelServerError):
    status = 504
    error_type = "upstream_timeout"

    @classmethod
    def at(cls, endpoint: str) -> ModelServerTimeout:
        return cls(f"model server at {endpoint} did not answer in time")


class ModelServerRejected(ModelServerError):
    """The model server refused the request (4xx): the client's fault, its message kept."""

    error_type = "invalid_request_error"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ModelServerFailed(ModelServerError):
    """The model server answered 5xx or something that is not its API."""


class ModelServerConnectionLost(ModelServerFailed):
    """The connection to the replica broke (reset, closed early): it is likely gone."""

    @classmethod
    def at(cls, endpoint: str, error: Exception) -> ModelServerConnectionLost:
        return cls(f"model server at {endpoint} failed: {type(error).__name__}: {error}")


class ModelServerStalled(ModelServerFailed):
    """The replica answered neither the request nor its checks for the stall limit: it is
    frozen (a stopped process, a hung device), and its request is taken elsewhere."""

    @classmethod
    def at(cls, endpoint: str, silent_s: float) -> ModelServerStalled:
        return cls(f"model server at {endpoint} answered nothing for {silent_s:g} s")


class NoHealthyReplica(ModelServerUnreachable):
    """No replica is in rotation: all are down or still loading."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdapterUnavailable(NoHealthyReplica):
    """No replica of the base model holds the adapter, and it cannot be loaded (no ``path``)."""


class AdapterLoadFailed(ModelServerError):
    """A replica could not load the adapter at run time: a wrong ``path``, a rank over the
    replica's limit, run-time loading off. The operator's to fix: tried on no other replica."""


class Overloaded(ServiceError):
    """Admission control: every replica is at its in-flight limit and the queue is full, or the
    request waited in it too long. Answered at once, never absorbed."""

    status = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, reason: str, retry_after: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = reason  # queue_full, queue_timeout
        self.retry_after = retry_after


def error_body(error: ServiceError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code if error.code is not None else error.status,
        }
    }


def sse_error_event(error: ServiceError) -> bytes:
    """The in-band error a stream ends with (before ``[DONE]``) instead of just stopping."""
    return b"data: " + orjson.dumps(error_body(error)) + b"\n\n"
