"""The HTTP surface: the routes (``routes``: a model request read top to bottom), the one
function that answers a model call (``answer``), the model routes served past Starlette's
stack (``direct_routes``), per-request bookkeeping (``request_context``), failures as HTTP
answers (``error_answers``) and the OpenAPI document (``openapi``)."""
