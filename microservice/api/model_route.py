"""One model request, top to bottom: the caller, its body read into its form, the model it
names, the caller admitted to it with the tokens the call reserves, the call answered, by the
model or, when it cannot, by its fallbacks (docs/tenancy.md).

A request falls back to the next model of the list, before any byte of an answer, when
the model has no healthy replica or each one it tried failed it, its waiting room refuses, or
the request is over its context length; a fallback the key may not use is passed over. The
key's limits are admitted once, against the model asked for; whichever model answers settles
the reservation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from microservice.api.answer import answer
from microservice.api.state import ServiceState, service_state
from microservice.auth.admission import Admission
from microservice.auth.guard import Caller
from microservice.auth.priority import PRIORITY_HEADER, send_priority, tenant_of
from microservice.config.catalog import ModelKind
from microservice.errors import (
    BodyTooLarge,
    MediaNotSupported,
    ModelServerError,
    ModelServerRejected,
    OverContext,
    Overloaded,
    ServiceError,
)
from microservice.forms.media import refuse_remote_media
from microservice.forms.reservation import reserved_tokens
from microservice.forms.shape import ModelRequest
from microservice.models.served_models import ServedModel
from microservice.observability import audit
from microservice.routing.dispatch import retryable
from microservice.upstream.model_call import ModelCall, RequestIds, Tenant

CONTEXT_REFUSAL = "maximum context length"  # in vLLM's 400 for a prompt over the context
TEXT_ONLY_REFUSAL = "is not a multimodal model"  # vLLM's 400 for media sent to a text model


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"body is {length} bytes; the limit is {limit}", param="body")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes", param="body")
    return bytes(body)


def fallback_reason(error: ServiceError) -> str | None:
    """Why another model may answer where this one failed; None: it may not."""
    if isinstance(error, ModelServerError) and retryable(error):
        return "unavailable"  # no replica was up, or each one tried failed, before any byte
    if isinstance(error, Overloaded):
        return "overloaded"
    if isinstance(error, ModelServerRejected) and error.status == 404:
        return "unavailable"  # its replicas are up, but serve other models
    if isinstance(error, ModelServerRejected) and CONTEXT_REFUSAL in error.message:
        return "context"
    if isinstance(error, OverContext):
        return "context"  # the form's own check: max_tokens over the context
    return None


class ModelRoute:
    """The request's state while it goes from model to model."""

    def __init__(
        self, request: Request, service: ServiceState, form: ModelRequest, tenant: Tenant
    ) -> None:
        self._request = request
        self._service = service
        self._form = form
        self._tenant = tenant

    async def call_for(self, model: ServedModel) -> tuple[ModelCall, int | None]:
        """The model's call (its served name, its context), or 422 for a budget over it."""
        settings = self._service.settings
        max_model_len = await model.learn_context_length()
        self._form.check_tokens(max_model_len)
        call = self._form.to_model_server(
            model.served_name,
            RequestIds(self._request.state.request_id, self._request.headers.get("x-session-id")),
            max_model_len=max_model_len,
            may_stream=not (settings.llm_disable_streaming or settings.llm_output_guard_exists),
        )
        call = replace(call, tenant=self._tenant, adapter=model.adapter)
        if settings.llm_priority_scheduling:
            send_priority(call)
        return call, max_model_len

    async def first_call(self, models: list[ServedModel]) -> tuple[int, ModelCall, int | None]:
        """The first model whose context holds the request's token budget, its call and its
        context length; the first model's 422 when none does."""
        refusal: OverContext | None = None
        for i, model in enumerate(models):
            try:
                return (i, *await self.call_for(model))
            except OverContext as error:
                refusal = refusal or error
                if i + 1 < len(models):
                    self._fell_back(models, i, "context")
        assert refusal is not None
        raise refusal

    def _fell_back(self, models: list[ServedModel], i: int, reason: str) -> None:
        self._service.metrics.fell_back(models[i].name, models[i + 1].name, reason).inc()
        audit.fallback(models[0].name)

    async def answer(
        self, models: list[ServedModel], start: int, call: ModelCall, admission: Admission
    ) -> Response:
        """The answer of ``models[start]`` (its ``call`` made), or of the models after it in
        order; the last refusal stands."""
        shape = self._form.answer_shape()
        for i in range(start, len(models)):
            model = models[i]
            try:
                if i > start:
                    call, _ = await self.call_for(model)
                return await answer(
                    self._request, self._service, served=model, call=call,
                    admission=admission, shape=shape,
                )  # fmt: skip
            except ServiceError as error:
                if isinstance(error, ModelServerRejected) and TEXT_ONLY_REFUSAL in error.message:
                    raise MediaNotSupported(
                        f"the model `{model.name}` takes text only: send no image, audio or "
                        "video parts, or ask a model that takes them",
                        param="messages",
                    ) from None
                reason = fallback_reason(error)
                if reason is None or i + 1 == len(models):
                    raise
                self._fell_back(models, i, reason)
        raise AssertionError("unreachable: the last model's failure is raised")


def usable(caller: Caller, models: list[ServedModel]) -> list[ServedModel]:
    """The model asked for, and the fallbacks the key may use."""
    key = caller.key
    return [models[0], *(m for m in models[1:] if key is None or key.may_use(m.name))]


async def model_route(
    request: Request, read: Callable[[bytes], ModelRequest], kind: ModelKind
) -> Response:
    """The request answered; a call that ends before its answer settles its reservation here,
    a stream at its end (``answer``)."""
    service = service_state(request)
    settings = service.settings
    caller = service.guard.identify(request.headers.get("authorization"))
    audit.caller(caller.key.name if caller.key is not None else None)
    form = read(await read_body(request, settings.llm_max_body_bytes))
    audit.asked(form.requested_model, form.answer_shape().form)
    served = service.models.get(form.requested_model, kind)
    route = ModelRoute(
        request, service, form, tenant_of(caller.key, request.headers.get(PRIORITY_HEADER))
    )
    models = usable(caller, service.models.with_fallbacks(served))
    start, call, max_model_len = await route.first_call(models)
    if not settings.llm_remote_media:
        refuse_remote_media(call.body)
    admission = await service.guard.admit(caller, served.name, reserved_tokens(call, max_model_len))
    if admission.headers:
        request.state.response_headers = admission.headers  # the request context adds them
    try:
        return await route.answer(models, start, call, admission)
    except BaseException:
        admission.settle(None)  # ended before an answer: the reservation goes back
        raise
