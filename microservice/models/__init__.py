"""The models this service serves: each with its replica pool, the dispatcher that sends calls
to it, what vLLM told us about it, and its readiness (``health``); a request's ``model`` is
looked up in ``served_models``."""
