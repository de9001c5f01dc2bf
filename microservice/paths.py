"""The service's HTTP paths, spelled once. The model paths are vLLM's own: a request to one of
them is sent to the replica at the same path."""

from __future__ import annotations

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
RERANK = "/v1/rerank"
SCORE = "/v1/score"
MODELS = "/v1/models"
HEALTH_CHECK = "/v1/health_check"
LIVENESS = "/health"
METRICS = "/metrics"

MODEL_PATHS = (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, RERANK, SCORE)
ALL = frozenset({*MODEL_PATHS, MODELS, HEALTH_CHECK, LIVENESS, METRICS})

# vLLM's own, asked by the replica probes: ready once the model is loaded, what it serves, load.
VLLM_HEALTH = "/health"
VLLM_MODELS = MODELS
VLLM_METRICS = METRICS
VLLM_TOKENIZE = "/tokenize"  # the prompt's token ids, rendered as its request would be
VLLM_LOAD_LORA = "/v1/load_lora_adapter"  # with VLLM_ALLOW_RUNTIME_LORA_UPDATING
